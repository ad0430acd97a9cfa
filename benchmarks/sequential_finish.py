"""The sequential refit on the parallel refit's own modules: how much of the gap it closes.

For each fidelity target, every class's module is tuned with the default (parallel
least-squares) refit; the same units are then refitted sequentially
(``--compensation sequential``'s refit, ``decompose/sequential.py``). Both sets of modules
are linked back in parallel and evaluated on the test split: same MACs, two losses. The
ratio of the gaps, (1 - f_seq) / (1 - f_par), is what ``decompose/polish.py`` relaxes the
parallel search by. Results go to ``benchmarks/results/NAME.json``.

    python -m benchmarks.sequential_finish --model models/resnet8_fmnist.onnx \
        --data ../shared/data/fashion-mnist --targets 0.985,0.97,0.95
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.decompose_curve import RESULTS, evaluate_linked
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.criteria import class_concern
from onnxdecomp.decompose.head import AppendLogOddsPass
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import classification_report, model_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--targets", default="0.985,0.97,0.95")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()

    runner = Runner(args.model, device="cpu")
    shape, dtype = runner.input.shape, runner.input.dtype
    calib = fit_to_input(load_data(args.data, "train", limit=args.calib), shape, dtype)
    test = fit_to_input(load_data(args.data, "test"), shape, dtype)
    parent_top1 = classification_report(runner.run(test.x)[0], test.y)["top1"]
    rows = []
    for target in [float(v) for v in args.targets.split(",")]:
        dec = Decomposer(args.model, calib.x, calib.y,
                         Settings(fidelity=target, align="auto"))
        k_all = dec.parent.num_classes
        t0 = time.perf_counter()
        tuned = [dec.tune(k) for k in range(k_all)]
        t_par = time.perf_counter() - t0
        refitted = []
        for k, module in enumerate(tuned):
            seq = dec.build_for(class_concern(dec.profile, k), module.keep,
                                AppendLogOddsPass(k, k_all), compensation="sequential",
                                removed=module.removed)
            refitted.append(dec.measure(seq))
        t_seq = time.perf_counter() - t0 - t_par
        f_par = np.array([m.fidelity for m in tuned])
        f_seq = np.array([m.fidelity for m in refitted])
        gap = 1 - f_par
        row = {
            "target": target,
            "macs": round(float(np.mean([model_stats(m.proto).macs for m in tuned]))
                          / dec.parent.macs, 4),
            "fidelity_parallel": round(float(f_par.mean()), 4),
            "fidelity_sequential": round(float(f_seq.mean()), 4),
            "gap_ratio": round(float(np.mean((1 - f_seq)[gap > 0] / gap[gap > 0])), 3)
            if (gap > 0).any() else None,
            "loss_parallel_pp": round(100 * (parent_top1 - evaluate_linked(
                [m.proto for m in tuned], test.x, test.y)["top1"]), 2),
            "loss_sequential_pp": round(100 * (parent_top1 - evaluate_linked(
                [m.proto for m in refitted], test.x, test.y)["top1"]), 2),
            "tune_seconds": round(t_par, 1), "sequential_seconds": round(t_seq, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = args.name or f"finish_{Path(args.model).stem}"
    out = {"model": args.model, "data": args.data, "calibration": calib.source,
           "test": test.source, "parent_top1": parent_top1,
           "command": "python -m benchmarks.sequential_finish " + " ".join(
               f"--{k} {v}" for k, v in vars(args).items() if v is not None),
           "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{name}: parent top-1 {100 * parent_top1:.2f}% ({test.source})")
    print("| target | MACs | fidelity parallel | fidelity sequential | gap ratio | loss parallel "
          "pp | loss sequential pp |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {100 * r['macs']:.1f}% | {r['fidelity_parallel']:.4f} | "
              f"{r['fidelity_sequential']:.4f} | {r['gap_ratio']} | {r['loss_parallel_pp']:.2f}"
              f" | {r['loss_sequential_pp']:.2f} |")


if __name__ == "__main__":
    main()
