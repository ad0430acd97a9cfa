"""Wall time of `decompose` (all classes, default settings), split into analysis,
profiling, pruning (ranking, tuning, building) and writing.

    python -m benchmarks.decompose_time --model models/resnet20_cifar10.onnx \
        --data ../shared/data/cifar10-jpg/cifar10-jpg-q75.tar.gz --calib 1000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import command, write_result
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Settings, decompose
from onnxdecomp.runtime import Runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--keep", type=float, default=None)
    args = ap.parse_args()
    r = Runner(args.model, device="cpu")
    t0 = time.perf_counter()
    ds = fit_to_input(load_data(args.data, "train", limit=args.calib), r.input.shape,
                      r.input.dtype)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        man = decompose(args.model, ds.x, ds.y, out, settings=Settings(keep=args.keep))
        total = time.perf_counter() - t0
    res = {
        "model": args.model, "calibration": ds.source, "cores": os.cpu_count(),
        "data_loading_seconds": round(load_s, 1), "decompose_seconds": round(total, 1),
        "split_seconds": man.to_json()["timing_seconds"], "modules": len(man.modules),
        "mean_macs_fraction": round(man.mean_macs, 4),
        "command": command("decompose_time", args),
    }
    write_result(f"time_{Path(args.model).stem}", res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
