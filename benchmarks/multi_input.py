"""A model with two inputs: the CLINC150 transformer (``input_ids``, ``attention_mask``).

- defaults: ``onnxdecomp decompose`` without options (1,000 training sentences), the 150
  modules linked back with ``link --mode parallel``: top-1 on the test split against the
  parent's, mean module MACs.
- reuse: random subsets of intents union-linked (``link``'s default for one parent's
  modules): top-1 on the test sentences of those intents against the parent restricted to
  them, and MACs.
- replace: an intent of the model decided by its own module (``replace`` without
  ``--calibrate``, raw log-odds): top-1 change on the whole test split.
- heads pinned: the defaults again with attention kept whole (the MatMul rule of two
  activations as it was before heads became units), to show what pruning heads brings.
- optimised: the defaults on the model as ONNX Runtime's transformer optimiser writes it
  (``onnxruntime.transformers.optimizer``, model type bert: com.microsoft ops, unfused by
  ``UnfuseTransformerOpsPass``).

The data are ``.npz`` files with one array per input, named after it
(``python -m models.text clinc150 --attention-mask``).

    python -m benchmarks.multi_input [--subsets 5] [--size 5,15] [--replace 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.link_models import WORK, modules_of, predict
from benchmarks.recurrent_reuse import reuse_rows
from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz
from onnxdecomp import link, replace
from onnxdecomp.data import load_data
from onnxdecomp.stats import model_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "models/clinc_transformer.onnx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsets", type=int, default=5)
    ap.add_argument("--size", default="5,15", help="subset sizes")
    ap.add_argument("--replace", type=int, default=3, help="intents replaced by their module")
    args = ap.parse_args()
    vocab = Vocab.load(CLINC_VOCAB)
    k = len(vocab.classes)
    WORK.mkdir(parents=True, exist_ok=True)
    # The calibration file stays: union linking reads it again through the manifest.
    train, test = WORK / "clinc150_mask_train.npz", WORK / "clinc150_mask_test.npz"
    for split, path in (("train", train), ("test", test)):
        write_npz(path, *clinc_arrays(DATA, split, vocab), vocab.classes, attention_mask=True)
    ds = load_data(str(test), "test")
    x, y = ds.x, ds.y  # records: one field per input
    shutil.rmtree(WORK / "clinc_transformer_defaults", ignore_errors=True)  # timed afresh
    start = time.perf_counter()
    folder = modules_of(MODEL, str(train), "_defaults")
    seconds = time.perf_counter() - start
    manifest = json.loads((folder / "manifest.json").read_text())
    parent_pred = predict(MODEL, x)
    parent_top1 = float(np.mean(parent_pred == y))
    defaults = {"parent_top1": round(parent_top1, 4),
                **linked_back(folder, x, y, parent_top1),
                "align": manifest["settings"]["align"], "decompose_s": round(seconds, 1),
                "inputs": list(x.dtype.names), "test_samples": len(y)}
    print(json.dumps(defaults), flush=True)
    pinned = heads_pinned(train, x, y, parent_top1)
    print(json.dumps(pinned), flush=True)
    optimised = optimised_defaults(train, x, y, parent_top1)
    print(json.dumps(optimised), flush=True)
    rng = np.random.default_rng(0)
    reuse = reuse_rows(MODEL, folder, k, args.size, args.subsets, rng, x, y)
    replaced = []
    for c in sorted(rng.choice(k, args.replace, replace=False).tolist()):
        result = replace(MODEL, [(c, folder / f"class_{c:03d}.onnx")], device="cpu")
        pred = predict(result.proto, x)
        row = {"intent": vocab.classes[c], "class": c,
               "top1": round(float(np.mean(pred == y)), 4),
               "loss_pp": round(100 * float(np.mean(parent_pred == y) - np.mean(pred == y)), 2)}
        print(json.dumps(row), flush=True)
        replaced.append(row)
    out = {"command": "python -m benchmarks.multi_input " + " ".join(
        f"--{a} {v}" for a, v in vars(args).items()),
        "model": MODEL, "defaults": defaults, "heads_pinned": pinned,
        "optimised": optimised, "reuse": reuse, "replace": replaced}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multi_input.json").write_text(json.dumps(out, indent=1) + "\n")


def linked_back(folder: Path, x: np.ndarray, y: np.ndarray, parent_top1: float) -> dict:
    """The modules of ``folder`` linked side by side: top-1, loss against the parent and the
    mean module MACs of its manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    top1 = float(np.mean(predict(link([folder], mode="parallel", device="cpu").proto, x) == y))
    return {"linked_top1": round(top1, 4),
            "loss_pp": round(100 * (round(parent_top1, 4) - round(top1, 4)), 2),
            "mean_macs": round(float(np.mean([m["macs_fraction"]
                                              for m in manifest["modules"]])), 4)}


def heads_pinned(train: Path, x: np.ndarray, y: np.ndarray, parent_top1: float) -> dict:
    """The default decomposition with attention kept whole (in this process, the rule for
    MatMuls of two activations swapped for the pinning one), linked back."""
    from onnxdecomp import decompose
    from onnxdecomp.channels.rules import dense
    from onnxdecomp.data import DataSpec

    spec = DataSpec(str(train), split="train", limit=1000)
    ds = spec.load()
    rule, dense.HEAD_MATMUL = dense.HEAD_MATMUL, dense.PINNING
    try:
        decompose(MODEL, ds.x, ds.y, WORK / "clinc_transformer_pinned", calibration=spec,
                  force=True)
    finally:
        dense.HEAD_MATMUL = rule
    return linked_back(WORK / "clinc_transformer_pinned", x, y, parent_top1)


def optimised_defaults(train: Path, x: np.ndarray, y: np.ndarray, parent_top1: float) -> dict:
    """The default decomposition of the model as ONNX Runtime's transformer optimiser saves
    it, linked back: its fused ops, MACs and the result."""
    from collections import Counter

    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    path = WORK / "clinc_transformer_optimised.onnx"
    optimize_model(MODEL, model_type="bert", num_heads=4, hidden_size=64,
                   opt_level=1).save_model_to_file(str(path))
    fused = Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.domain)
    shutil.rmtree(WORK / "clinc_transformer_optimised", ignore_errors=True)
    folder = modules_of(str(path), str(train))
    manifest = json.loads((folder / "manifest.json").read_text())
    return {"fused_ops": dict(fused), "parent_macs": manifest["parent"]["macs"],
            "parent_macs_unoptimised": model_stats(MODEL).macs,
            **linked_back(folder, x, y, parent_top1)}


def report_section(res: dict) -> str:
    """The markdown of ``results/multi_input.json`` for ``benchmarks.report``."""
    from benchmarks.report import subset_rows

    d = res["defaults"]
    out = [f"\n## A model with two inputs ({', '.join(d['inputs'])})\n\n`{res['command']}`: "
           f"`{res['model']}`, `decompose` without options (1,000 training sentences, the "
           ".npz holding one array per input), the 150 modules linked back with `link --mode "
           f"parallel`, {d['test_samples']} test sentences.\n\n| parent top-1 | linked top-1 "
           "| loss pp | mean MACs | align | decompose s |\n|---|---|---|---|---|---|\n"
           f"| {100 * d['parent_top1']:.2f}% | {100 * d['linked_top1']:.2f}% | "
           f"{d['loss_pp']:.2f} | {100 * d['mean_macs']:.1f}% | {d['align']} | "
           f"{d['decompose_s']:.0f} |\n"]
    if "heads_pinned" in res:
        p = res["heads_pinned"]
        out.append(f"\nWith attention kept whole (heads pinned, as before heads became "
                   f"units): {100 * p['linked_top1']:.2f}% linked, {p['loss_pp']:.2f} pp, "
                   f"{100 * p['mean_macs']:.1f}% of the MACs.\n")
    if "optimised" in res:
        o = res["optimised"]
        ops = ", ".join(f"{k} x{v}" for k, v in o["fused_ops"].items())
        out.append(f"\nThrough ONNX Runtime's transformer optimiser ({ops}): parent MACs "
                   f"{o['parent_macs']:,} ({o['parent_macs_unoptimised']:,} before), "
                   f"{100 * o['linked_top1']:.2f}% linked, {o['loss_pp']:.2f} pp, "
                   f"{100 * o['mean_macs']:.1f}% of the MACs.\n")
    out += ["\nReuse: intents union-linked into a sub-task model, top-1 on the test "
            "sentences of those intents against the parent restricted to them.\n\n"
            "| intents | top-1 | parent restricted | loss pp | MACs |\n|---|---|---|---|---|\n",
            subset_rows(res["reuse"]), "\nReplacement: an intent decided by its own module "
            "(raw log-odds); top-1 on the whole test split.\n\n| intent | top-1 | loss pp |\n"
            "|---|---|---|\n"]
    out.extend(f"| {r['intent']} | {100 * r['top1']:.2f}% | {r['loss_pp']:.2f} |\n"
               for r in res["replace"])
    return "".join(out)


if __name__ == "__main__":
    main()
