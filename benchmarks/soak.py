"""Soak: decompose, link and evaluate in a loop in one process; memory must not grow.

Each round decomposes the digits CNN (fixed keep, so every round does the same work), links
two modules by union and all of them in parallel, and runs the linked models; the process's
resident memory is read after every round. After a warm-up (the first rounds fill caches),
the growth per round must stay near zero.

    python -m benchmarks.soak [--seconds 180] [--model models/cnn_digits.onnx]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from onnxdecomp import decompose, link
from onnxdecomp.data import DataSpec, fit_to_input
from onnxdecomp.decompose import Settings
from onnxdecomp.runtime import Runner

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--model", default="models/cnn_digits.onnx")
    ap.add_argument("--data", default="sklearn:digits")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    spec = DataSpec(args.data, "train", 1000)
    runner = Runner(args.model, device="cpu")
    ds = fit_to_input(spec.load(), runner.input.shape, runner.input.dtype)
    rounds, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m"
            decompose(args.model, ds.x, ds.y, out, settings=Settings(keep=0.5, device="cpu"),
                      calibration=spec)
            files = sorted(out.glob("class_*.onnx"))
            union = link(files[:2], device="cpu").proto
            parallel = link(files, mode="parallel", device="cpu").proto
            for proto in (union, parallel):
                Runner(proto, device="cpu").run(ds.x[:200])
        gc.collect()
        rounds.append({"round": len(rounds), "seconds": round(time.perf_counter() - t0, 2),
                       "rss_mb": round(rss_mb(), 1)})
        print(json.dumps(rounds[-1]), flush=True)
    steady = rounds[args.warmup:]
    slope = (float(np.polyfit([r["round"] for r in steady], [r["rss_mb"] for r in steady], 1)[0])
             if len(steady) > 2 else float("nan"))
    res = {"model": args.model, "rounds": len(rounds), "seconds": round(args.seconds),
           "rss_mb_first": rounds[0]["rss_mb"], "rss_mb_after_warmup": steady[0]["rss_mb"]
           if steady else None, "rss_mb_last": rounds[-1]["rss_mb"],
           "growth_mb_per_round": round(slope, 3), "per_round": rounds,
           "command": f"python -m benchmarks.soak --seconds {args.seconds:g} --model "
                      f"{args.model}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(res, indent=1) + "\n")
    ok = len(steady) > 2 and slope < 0.5
    print(f"{'PASSED' if ok else 'FAILED'} | {len(rounds)} rounds, RSS {rounds[0]['rss_mb']} -> "
          f"{rounds[-1]['rss_mb']} MB, {slope:.3f} MB per round after {args.warmup} rounds")


if __name__ == "__main__":
    main()
