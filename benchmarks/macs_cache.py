"""Before/after of ``decompose/shape_macs.py``: the keep search's MACs counted once per
vector of kept counts (after) or once per unit set and class (before, what the search
did until then), the same modules either way.

Each round tunes every class's module twice in fresh Decomposers, the two ways
alternating so that both see the machine as it is; the tuning seconds, the MACs the
search asked for, the modules it built to count them, and whether the two ways chose the
same units.

    python -m benchmarks.macs_cache --model models/resnet20_cifar10.onnx \
        --data ../shared/data/cifar10-jpg/cifar10-jpg-q75.tar.gz --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from benchmarks.common import command, write_result
from onnxdecomp.data import fit_to_input, load_data
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.shape_macs import ShapeMacs
from onnxdecomp.runtime import Runner


class PerUnitSet(ShapeMacs):
    """The earlier cache: one count per unit set (and head), never shared across classes."""

    def key(self, removed, head) -> tuple:
        return (id(head), frozenset(removed))


def tune_all(model: str, x, y, before: bool) -> dict:
    dec = Decomposer(model, x, y, Settings(device="cpu"))
    if before:
        dec.shape_macs = PerUnitSet(dec.parent.cg)
    t0 = time.perf_counter()
    removed = [frozenset(dec.tune(k).removed) for k in range(dec.parent.num_classes)]
    return {"seconds": time.perf_counter() - t0, "asked": dec.shape_macs.asked,
            "counted": dec.shape_macs.counted, "removed": removed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    r = Runner(args.model, device="cpu")
    ds = fit_to_input(load_data(args.data, "train", limit=args.calib), r.input.shape,
                      r.input.dtype)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for way in ("before", "after") if i % 2 == 0 else ("after", "before"):
            runs[way].append(tune_all(args.model, ds.x, ds.y, way == "before"))
            print(way, round(runs[way][-1]["seconds"], 1), flush=True)
    same = all(b["removed"] == a["removed"] for b, a in zip(runs["before"], runs["after"]))
    res = {"model": args.model, "calibration": ds.source, "date": str(date.today()),
           "same_modules": same, "command": command("macs_cache", args)}
    for way, rows in runs.items():
        res[way] = {"seconds": [round(row["seconds"], 1) for row in rows],
                    "median_seconds": round(statistics.median(row["seconds"] for row in rows), 1),
                    "asked": rows[0]["asked"], "counted": rows[0]["counted"]}
    write_result(f"macs_cache_{args.model.rsplit('/', 1)[-1].removesuffix('.onnx')}", res)
    print(res)


if __name__ == "__main__":
    main()


def report_section(res: dict) -> str:
    """The benchmarks README's section for one result file."""
    b, a = res["before"], res["after"]
    return (f"\n## The search's MACs counted once per kept-count vector: {res['model']}\n\n"
            f"`{res['command']}` ({res['date']}; {res['calibration']})\n\n"
            "Tuning every class's module (the keep search and the per-group steps, default "
            "settings, 2 cores), the MACs cache keyed by unit set and class (before) or by "
            "kept counts (after, `decompose/shape_macs.py`), alternating; same units chosen "
            f"by both: {'yes' if res['same_modules'] else 'no'}.\n\n"
            "| | tuning s (each round) | median s | MACs asked | modules built to count them |\n"
            "|---|---|---|---|---|\n"
            f"| before | {', '.join(map(str, b['seconds']))} | {b['median_seconds']} | "
            f"{b['asked']} | {b['counted']} |\n"
            f"| after | {', '.join(map(str, a['seconds']))} | {a['median_seconds']} | "
            f"{a['asked']} | {a['counted']} |\n")
