"""The allocator's descent traced: what the held-out statistics say against the test loss.

The allocator (``decompose --macs``) steps classes down the keep grid by the composed
cross-entropy per MAC saved. This traces one descent to ``--floor`` and records, after every
step, the mean module MACs, the composed cross-entropy's rise over the parent's and the
composed decisions' agreement with the parent's on the held-out calibration samples; at
every ``--every`` of MACs it also links the chosen modules and measures the top-1 loss on the
test split. It is the evidence for the default's stopping rule: which held-out statistic
marks where the test loss starts to grow, on every kind of zoo model.

    python -m benchmarks.descent_path --model models/lenet5_mnist.onnx \\
        --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import command, write_result
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.allocate import composed_loss
from onnxdecomp.runtime import Runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--test-data", default=None, help="test data (default --data)")
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--floor", type=float, default=0.25, help="descend to these mean MACs")
    ap.add_argument("--every", type=float, default=0.05, help="test loss every this of MACs")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()

    runner = Runner(args.model, device="cpu")
    shape, dtype = runner.input.shape, runner.input.dtype
    calib = fit_to_input(load_data(args.data, "train", limit=args.calib), shape, dtype)
    test = fit_to_input(load_data(args.test_data or args.data, "test"), shape, dtype)
    parent_logits = runner.run(test.x)[0]
    parent_top1 = float(np.mean(parent_logits.argmax(axis=1) == test.y))
    t0 = time.perf_counter()
    dec = Decomposer(args.model, calib.x, calib.y, Settings())
    if dec.parent.per_step:
        raise SystemExit("descent_path scores whole samples: a tagger's steps are not traced")
    candidate, built = dec.candidates()
    base = dec.hold_logodds.astype(np.float64)
    parent_pred = base.argmax(axis=1)
    base_ce = composed_loss(base, parent_pred)
    test_scores: dict[tuple[int, int], np.ndarray] = {}
    steps, checks = [], []
    next_check = [1.0 + 1e-9]

    def test_loss(idx: dict[int, int]) -> float:
        cols = []
        for k in sorted(idx):
            if (k, idx[k]) not in test_scores:
                proto = built[k, idx[k]][1].proto
                test_scores[k, idx[k]] = Runner(proto, device="cpu").run(test.x)[0][:, 0]
            cols.append(test_scores[k, idx[k]])
        pred = np.stack(cols, axis=1).argmax(axis=1)
        return round(100 * (parent_top1 - float(np.mean(pred == test.y))), 2)

    def on_step(idx, scores, macs) -> None:
        row = {"step": len(steps), "macs": round(macs, 4),
               "ce_rise": round(composed_loss(scores, parent_pred) - base_ce, 5),
               "agreement": round(float(np.mean(scores.argmax(axis=1) == parent_pred)), 4),
               "min_keep_index": min(idx.values()), "max_keep_index": max(idx.values())}
        steps.append(row)
        if macs <= next_check[0]:
            row = {**row, "test_loss_pp": test_loss(idx)}
            checks.append(row)
            print(json.dumps(row), flush=True)
            next_check[0] = macs - args.every

    dec.allocate(list(range(dec.parent.num_classes)), args.floor, on_step,
                 (candidate, built))
    name = args.name or Path(args.model).stem
    out = {"model": args.model, "data": args.data, "calibration": calib.source,
           "test": test.source, "parent_top1": parent_top1,
           "holdout_samples": dec.n_holdout, "seconds": round(time.perf_counter() - t0, 1),
           "command": command("descent_path", args), "checks": checks, "steps": steps}
    write_result(f"descent_{name}", out)


if __name__ == "__main__":
    main()
