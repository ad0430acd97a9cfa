"""Reuse and replacement with the recurrent CLINC150 intent classifiers.

- reuse: subsets of intents of the LSTM model union-linked (``link``'s default for modules
  of one parent) into smaller sub-task models: top-1 against the parent restricted to the
  same intents, on the test sentences of those intents, and MACs.
- replace: an intent of the LSTM model decided by the GRU model's module (raw log-odds,
  ``replace`` without ``--calibrate``). The intents are the three where the GRU model's F1
  beats the LSTM model's most on the validation split (the test split only measures).

Modules come from ``onnxdecomp decompose`` with its defaults (1,000 training sentences).

    python -m benchmarks.recurrent_reuse [--subsets 5] [--size 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.link_models import WORK, class_scores, modules_of, predict
from models.text import CLINC_VOCAB, Vocab, clinc_arrays, write_npz
from onnxdecomp import link, replace
from onnxdecomp.stats import model_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
LSTM, GRU = "models/clinc_lstm.onnx", "models/clinc_gru.onnx"


def f1_per_class(pred: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    return np.array([class_scores(pred, y, c)["f1"] for c in range(k)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsets", type=int, default=5)
    ap.add_argument("--size", default="5,15", help="subset sizes")
    args = ap.parse_args()
    vocab = Vocab.load(CLINC_VOCAB)
    k = len(vocab.classes)
    # The calibration file stays: union linking reads it again through the manifest.
    WORK.mkdir(parents=True, exist_ok=True)
    train = WORK / "clinc150_train.npz"
    write_npz(train, *clinc_arrays(DATA, "train", vocab), vocab.classes)
    x, y = clinc_arrays(DATA, "test", vocab)
    xv, yv = clinc_arrays(DATA, "val", vocab)
    lstm_dir, gru_dir = modules_of(LSTM, str(train)), modules_of(GRU, str(train))
    parent_pred = predict(LSTM, x)
    reuse = reuse_rows(LSTM, lstm_dir, k, args.size, args.subsets,
                       np.random.default_rng(0), x, y)
    gain = f1_per_class(predict(GRU, xv), yv, k) - f1_per_class(predict(LSTM, xv), yv, k)
    targets = [int(c) for c in np.argsort(-gain)[:3]]
    replaced = []
    for c in targets:
        result = replace(LSTM, [(c, gru_dir / f"class_{c:03d}.onnx")], device="cpu")
        before = class_scores(parent_pred, y, c)
        after = class_scores(predict(result.proto, x), y, c)
        row = {"intent": vocab.classes[c], "class": c,
               "val_f1_gain_of_gru": round(float(gain[c]), 4), "lstm": before,
               "gru": class_scores(predict(GRU, x), y, c), "replaced": after,
               "top1_change_pp": round(100 * (after["top1"] - before["top1"]), 2)}
        print(json.dumps(row), flush=True)
        replaced.append(row)
    out = {"command": "python -m benchmarks.recurrent_reuse " + " ".join(
        f"--{a} {v}" for a, v in vars(args).items()),
        "parent": LSTM, "donor": GRU, "reuse": reuse, "replace": replaced}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recurrent_reuse.json").write_text(json.dumps(out, indent=1) + "\n")


def reuse_rows(parent: str, folder: Path, k: int, sizes: str, subsets: int,
               rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """``subsets`` random subsets of each of the comma-separated ``sizes`` of the ``k``
    classes, each a ``subset_row`` (printed as it comes)."""
    parent_macs, rows = model_stats(parent).macs, []
    for size in [int(s) for s in sizes.split(",")]:
        for _ in range(subsets):
            classes = sorted(rng.choice(k, size, replace=False).tolist())
            rows.append(subset_row(parent, folder, classes, x, y, parent_macs))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def subset_row(parent: str, folder: Path, classes: list[int], x: np.ndarray, y: np.ndarray,
               parent_macs: int) -> dict:
    """``classes``' modules of ``folder`` union-linked: top-1 on their test samples against
    the parent restricted to them, and MACs."""
    result = link([folder / f"class_{c:03d}.onnx" for c in classes], device="cpu")
    mask = np.isin(y, classes)
    sub = predict(result.proto, x[mask])  # indices into ``classes``
    got = float(np.mean(np.array(classes)[sub] == y[mask]))
    want = float(np.mean(parent_pred_restricted(parent, x[mask], classes) == y[mask]))
    return {"classes": classes, "top1": round(got, 4),
            "parent_restricted_top1": round(want, 4), "loss_pp": round(100 * (want - got), 2),
            "macs_fraction": round(model_stats(result.proto).macs / parent_macs, 4),
            "test_samples": int(mask.sum())}


def parent_pred_restricted(model: str, x: np.ndarray, classes: list[int]) -> np.ndarray:
    """The parent's decision among ``classes`` only (argmax of their logits)."""
    from onnxdecomp.runtime import Runner

    z = Runner(model, device="cpu").run(x)[0]
    return np.array(classes)[z[:, classes].argmax(axis=1)]


if __name__ == "__main__":
    main()
