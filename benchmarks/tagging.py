"""The part-of-speech taggers (many-to-many): default settings, reuse and replacement.

- default: ``onnxdecomp decompose`` with no option (1,000 training sentences, ``--fidelity
  0.99``, ``--align auto``), the 12 modules linked back with ``link --mode parallel``: token
  accuracy on the CoNLL-2000 test split (padding excluded) against the parent's, and the
  mean module MACs.
- reuse: subsets of tags union-linked (``link``'s default for modules of one parent) into
  one smaller tagger deciding among them: token accuracy on the test tokens of those tags
  against the parent restricted to the same tags, and MACs.
- replace: a tag of the LSTM tagger decided by the bidirectional GRU tagger's module (raw
  log-odds, ``replace`` without ``--calibrate``). The tags are the three where the GRU
  tagger's F1 beats the LSTM's most on the train split (the test split only measures).

    python -m benchmarks.tagging
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.link_models import WORK, class_scores, modules_of
from benchmarks.report import align_cell, replacement_rows
from models.tags import TagVocab, conll_arrays
from models.text import CONLL_VOCAB, write_npz
from onnxdecomp import link, replace
from onnxdecomp.decompose.manifest import read_manifest
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
LSTM, GRU = "models/conll_lstm.onnx", "models/conll_bigru2.onnx"
MODELS = [LSTM, GRU]
SUBSETS = [("NOUN", "VERB"), ("NOUN", "VERB", "ADJ", "ADV"), ("DET", "ADP", "PRON", "CONJ"),
           ("NOUN", "VERB", "ADJ", "ADV", "NUM", "PRON")]


def logits(model, x: np.ndarray) -> np.ndarray:
    return Runner(model, device="cpu").run(x)[0]


def accuracy(z: np.ndarray, y: np.ndarray) -> float:
    steps = y >= 0
    return round(float(np.mean(z.argmax(axis=-1)[steps] == y[steps])), 4)


def tokens(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = y >= 0
    return pred[steps], y[steps]


def main() -> None:
    vocab = TagVocab.load(CONLL_VOCAB)
    WORK.mkdir(parents=True, exist_ok=True)
    train = WORK / "conll2000_train.npz"  # stays: union linking reads it through the manifest
    xt, yt = conll_arrays(DATA, "train", vocab)
    write_npz(train, xt, yt, vocab.tags)
    x, y = conll_arrays(DATA, "test", vocab)
    folders, default = {}, []
    for model in MODELS:
        folders[model] = folder = modules_of(model, str(train))
        manifest = read_manifest(folder / "manifest.json")
        mods = manifest["modules"]
        linked = link([folder], mode="parallel", device="cpu")
        parent, got = accuracy(logits(model, x), y), accuracy(logits(linked.proto, x), y)
        row = {"model": Path(model).stem, "parent_accuracy": parent, "linked_accuracy": got,
               "loss_pp": round(100 * (parent - got), 2),
               "mean_macs": round(sum(m["macs_fraction"] for m in mods) / len(mods), 4),
               "align": manifest["settings"].get("align"),
               "align_recurrent": manifest["settings"].get("align_recurrent"),
               "timing_seconds": manifest.get("timing_seconds")}
        print(json.dumps(row), flush=True)
        default.append(row)
    index = {t: i for i, t in enumerate(vocab.tags)}
    z_lstm = logits(LSTM, x)
    reuse = []
    for subset in SUBSETS:
        classes = [index[t] for t in subset]
        result = link([folders[LSTM] / f"class_{c:02d}.onnx" for c in classes], device="cpu")
        steps = np.isin(y, classes)
        sub = logits(result.proto, x).argmax(axis=-1)  # indices into ``classes``
        got = float(np.mean(np.array(classes)[sub][steps] == y[steps]))
        want = float(np.mean(np.array(classes)[z_lstm[..., classes].argmax(-1)][steps]
                             == y[steps]))
        row = {"tags": list(subset), "accuracy": round(got, 4),
               "parent_restricted_accuracy": round(want, 4),
               "loss_pp": round(100 * (want - got), 2),
               "macs_fraction": round(model_stats(result.proto).macs / model_stats(LSTM).macs,
                                      4),
               "union": {k: result.parts[0].get(k) for k in ("keep", "fidelity")},
               "test_tokens": int(steps.sum())}
        print(json.dumps(row), flush=True)
        reuse.append(row)
    k = len(vocab.tags)
    pl, yl = tokens(logits(LSTM, xt).argmax(-1), yt)
    pg, _ = tokens(logits(GRU, xt).argmax(-1), yt)
    gain = np.array([class_scores(pg, yl, c)["f1"] - class_scores(pl, yl, c)["f1"]
                     for c in range(k)])
    targets = [int(c) for c in np.argsort(-gain)[:3]]
    before_pred, ty = tokens(z_lstm.argmax(-1), y)
    gru_pred, _ = tokens(logits(GRU, x).argmax(-1), y)
    replaced = []
    for c in targets:
        result = replace(LSTM, [(c, folders[GRU] / f"class_{c:02d}.onnx")], device="cpu")
        after_pred, _ = tokens(logits(result.proto, x).argmax(-1), y)
        before, after = class_scores(before_pred, ty, c), class_scores(after_pred, ty, c)
        row = {"tag": vocab.tags[c], "class": c, "train_f1_gain_of_gru": round(float(gain[c]), 4),
               "lstm": before, "gru": class_scores(gru_pred, ty, c), "replaced": after,
               "accuracy_change_pp": round(100 * (after["top1"] - before["top1"]), 2)}
        print(json.dumps(row), flush=True)
        replaced.append(row)
    out = {"command": "python -m benchmarks.tagging", "test_tokens": int((y >= 0).sum()),
           "default": default, "reuse": reuse, "parent": LSTM, "donor": GRU,
           "replace": replaced}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tagging.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()


def report_section(res: dict) -> str:
    """The markdown of ``results/tagging.json`` for ``benchmarks.report``."""
    out = [f"\n## Taggers: default settings, reuse and replacement\n\n`{res['command']}`: "
           "`decompose` without options (1,000 training sentences, `--fidelity 0.99`, "
           "`--align auto`), the 12 modules linked back with `link --mode parallel`; token "
           f"accuracy on the {res['test_tokens']:,} labelled CoNLL-2000 test tokens (padding "
           "excluded).\n\n| model | parent accuracy | linked accuracy | loss pp | mean MACs | "
           "align |\n|---|---|---|---|---|---|\n"]
    for r in res["default"]:
        out.append(f"| {r['model']} | {100 * r['parent_accuracy']:.2f}% | "
                   f"{100 * r['linked_accuracy']:.2f}% | {r['loss_pp']:.2f} | "
                   f"{100 * r['mean_macs']:.1f}% | {align_cell(r)} |\n")
    out.append(f"\nReuse: tags of `{res['parent']}` union-linked into one tagger deciding "
               "among them; accuracy on the test tokens of those tags against the parent "
               "restricted to them.\n\n| tags | accuracy | parent restricted | loss pp | MACs | "
               "tokens |\n|---|---|---|---|---|---|\n")
    for r in res["reuse"]:
        out.append(f"| {','.join(r['tags'])} | {100 * r['accuracy']:.2f}% | "
                   f"{100 * r['parent_restricted_accuracy']:.2f}% | {r['loss_pp']:.2f} | "
                   f"{100 * r['macs_fraction']:.1f}% | {r['test_tokens']:,} |\n")
    out.append(f"\nReplacement: a tag of `{res['parent']}` decided by `{res['donor']}`'s "
               "module (raw log-odds), the tags chosen on the train split; tag F1 and token "
               "accuracy on the test split.\n\n| tag | F1 parent | F1 donor | F1 replaced "
               "(P / R) | accuracy change pp |\n|---|---|---|---|---|\n")
    out.append(replacement_rows(res["replace"], "tag", "accuracy_change_pp"))
    return "".join(out)
