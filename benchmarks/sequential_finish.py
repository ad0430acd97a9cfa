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
from onnx.numpy_helper import to_array

from benchmarks.common import command, write_result
from benchmarks.decompose_curve import evaluate_linked
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
    ap.add_argument("--probe-timing", type=int, default=3, metavar="K",
                    help="also time class K's sequential build at keep 0.6 with its probes "
                    "cut at final activations and run from the input (-1: skip)")
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
    timing = probe_timing(dec, args.probe_timing) if args.probe_timing >= 0 else None
    name = args.name or f"finish_{Path(args.model).stem}"
    out = {"model": args.model, "data": args.data, "calibration": calib.source,
           "test": test.source, "parent_top1": parent_top1, "probe_timing": timing,
           "command": command("sequential_finish", args), "rows": rows}
    write_result(name, out)
    print(f"\n{name}: parent top-1 {100 * parent_top1:.2f}% ({test.source})")
    print("| target | MACs | fidelity parallel | fidelity sequential | gap ratio | loss parallel "
          "pp | loss sequential pp |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {100 * r['macs']:.1f}% | {r['fidelity_parallel']:.4f} | "
              f"{r['fidelity_sequential']:.4f} | {r['gap_ratio']} | {r['loss_parallel_pp']:.2f}"
              f" | {r['loss_sequential_pp']:.2f} |")
    if timing:
        print(f"\nclass {timing['class']} at keep {timing['keep']}: sequential build "
              f"{timing['cut_seconds']} s with cut probes, {timing['full_seconds']} s run "
              f"from the input; same weights: {timing['same_weights']}")


def probe_timing(dec: Decomposer, k: int, keep: float = 0.6) -> dict:
    """Seconds of one sequential build with the probes cut at final activations and with
    every probe run from the input (as before the cuts), and whether the weights agree."""
    k_all = dec.parent.num_classes
    concern, head = class_concern(dec.profile, k), AppendLogOddsPass(k, k_all)
    removed = dec.build_for(concern, keep, head, compensation="lstsq").removed
    dec.build_for(concern, keep, head, compensation="sequential", removed=removed)  # caches
    seq, found = dec._sequential, {}
    for cut in (True, False):
        seq.cut, saved = cut, seq.cut
        t0 = time.perf_counter()
        proto = dec.build_for(concern, keep, head, compensation="sequential",
                              removed=removed).proto
        found[cut] = (time.perf_counter() - t0, {t.name: to_array(t).tobytes() for t in
                                                 proto.graph.initializer})
        seq.cut = saved
    return {"class": k, "keep": keep, "cut_seconds": round(found[True][0], 2),
            "full_seconds": round(found[False][0], 2),
            "same_weights": found[True][1] == found[False][1]}


if __name__ == "__main__":
    main()
