"""Sub-task reuse (the MwT / MODA protocol): class subsets of a model linked by union.

For every class pair and ``--subsets`` random subsets of each size 3 .. K-1 (and all K
classes), the union ``onnxdecomp link`` builds with its defaults (the decomposition's
settings: refit criterion, lstsq refit unless ``--compensation``, fidelity 0.99; calibration
= up to 1,000 training samples of the linked classes, stratified, seed 0, exactly what
``link`` reads through the manifest) is evaluated on the test samples of those classes:
accuracy against the parent restricted to the subset's logits, MACs, and latency (ONNX
Runtime CPU, 1 thread, batch 64: the median of 20 ratios to the parent timed back to back)
as fractions of the parent's.

    python -m benchmarks.link_reuse --model models/lenet5_mnist.onnx \\
        --data ../shared/data/mnist [--compensation sequential] [--subsets 10] [--name N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.common import command, write_result
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.data.load import _stratified_subsample
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.link.union import UnionBuilder
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats


def seconds(runner: Runner, x: np.ndarray) -> float:
    """Wall time of one batch."""
    t0 = time.perf_counter()
    runner.run(x, batch_size=len(x))
    return time.perf_counter() - t0


def latency(runner: Runner, x: np.ndarray, runs: int = 20) -> float:
    """Median seconds of one batch after a warm-up."""
    seconds(runner, x)
    return float(np.median([seconds(runner, x) for _ in range(runs)]))


def latency_ratio(model, parent: Runner, x: np.ndarray, runs: int = 20) -> float:
    """Median over ``runs`` of (model's time / parent's time), the two timed back to back.

    A parent timed once at the start and divided into every later figure carries the load
    of that moment into all of them; timed in pairs, a slow spell slows both.
    """
    runner = Runner(model, device="cpu", threads=1)
    seconds(runner, x)

    def pair() -> float:
        parent_s = seconds(parent, x)  # the parent first, then the model
        return seconds(runner, x) / parent_s

    return float(np.median([pair() for _ in range(runs)]))


def subsets(k: int, per_size: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    out = list(itertools.combinations(range(k), 2))
    for size in range(3, k):
        seen: set[tuple[int, ...]] = set()
        while len(seen) < min(per_size, len(list(itertools.combinations(range(k), size)))):
            seen.add(tuple(sorted(rng.choice(k, size=size, replace=False).tolist())))
        out.extend(sorted(seen))
    return out + [tuple(range(k))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--compensation", default="lstsq")
    ap.add_argument("--fidelity", type=float, default=0.99)
    ap.add_argument("--align", default="auto", help="kept channel multiple (auto: the tool's)")
    ap.add_argument("--subsets", type=int, default=10, help="random subsets of each size")
    ap.add_argument("--pairs", type=int, default=None, help="only the first N pairs")
    ap.add_argument("--sizes", default=None, help="only subsets of these sizes, e.g. 10")
    ap.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                    help="unions step their groups down their aligned counts (decompose.refine); "
                    "default: pairs only, as link does")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    runner = Runner(args.model, device="cpu")
    shape, dtype = runner.input.shape, runner.input.dtype
    train = fit_to_input(load_data(args.data, "train"), shape, dtype)
    test = fit_to_input(load_data(args.data, "test"), shape, dtype)
    logits = runner.run(test.x)[0]
    k = logits.shape[1]
    batch = test.x[:64]
    parent_runner = Runner(args.model, device="cpu", threads=1)
    parent_latency = latency(parent_runner, batch)
    parent_macs = model_stats(args.model).macs
    todo = subsets(k, args.subsets, seed=0)
    if args.pairs is not None:
        pairs = [s for s in todo if len(s) == 2][: args.pairs]
        todo = pairs + [s for s in todo if len(s) != 2]
    if args.sizes:
        todo = [s for s in todo if len(s) in {int(v) for v in args.sizes.split(",")}]
    rows = []
    for classes in todo:
        t0 = time.perf_counter()
        idx = np.flatnonzero(np.isin(train.y, classes))
        cal = idx[_stratified_subsample(train.y[idx], args.calib, 0)]
        align = args.align if args.align == "auto" else int(args.align)
        dec = Decomposer(args.model, train.x[cal], train.y[cal],
                         Settings(compensation=args.compensation, device="cpu", align=align))
        module = UnionBuilder(dec, refine=args.refine).tune(classes, args.fidelity)
        build_s = time.perf_counter() - t0
        mask = np.isin(test.y, classes)
        chosen = np.array(classes)
        parent_pred = chosen[logits[mask][:, list(classes)].argmax(axis=1)]
        linked_pred = chosen[Runner(module.proto, device="cpu").run(test.x[mask])[0]
                             .argmax(axis=1)]
        p_acc = float(np.mean(parent_pred == test.y[mask]))
        l_acc = float(np.mean(linked_pred == test.y[mask]))
        row = {"classes": list(classes), "size": len(classes), "keep": module.keep,
               "fidelity": round(module.fidelity, 4),
               "macs": round(model_stats(module.proto).macs / parent_macs, 4),
               "latency": round(latency_ratio(module.proto, parent_runner, batch), 4),
               "parent_top1": round(p_acc, 4), "linked_top1": round(l_acc, 4),
               "loss_pp": round(100 * (p_acc - l_acc), 2), "test_samples": int(mask.sum()),
               "build_seconds": round(build_s, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    name = args.name or f"reuse_{Path(args.model).stem}_{args.compensation}"
    res = {"model": args.model, "data": args.data, "compensation": args.compensation,
           "align": dec.align,
           "fidelity": args.fidelity, "parent_macs": parent_macs,
           "parent_latency_ms": round(1000 * parent_latency, 3),
           "latency_setup": f"ONNX Runtime CPU, 1 thread, batch 64, median of 20 ratios to the "
                            f"parent timed back to back; "
                            f"{platform.processor() or platform.machine()}, {date.today()}",
           "rows": rows, "command": command("link_reuse", args, negatable=("refine",))}
    write_result(name, res)


if __name__ == "__main__":
    main()
