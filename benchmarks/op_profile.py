"""Where a model's time goes in ONNX Runtime: kernel time per node, from the session's own
profiler, for a parent and its modules side by side.

    python -m benchmarks.op_profile MODEL.onnx [MODULE.onnx ...] [--batch 64] [--runs 100]

Each model runs ``--runs`` times on random inputs (CPU, 1 thread, after a warm-up) with
profiling on; printed per model: total kernel time per run, then the ``--top`` nodes by
time, each with its op (as ONNX Runtime runs it, after its own rewrites: ``Conv`` on NCHWc
blocks, ``ReorderInput``/``ReorderOutput`` between layouts, fused ops) and its share of the
first model's time for the node of the same name (not for the reorders, which ONNX Runtime
numbers as it inserts them). That is how a module whose latency falls
behind its MACs shows why: a first conv whose 2 kept channels run as one 16-channel block,
a normalisation whose cost follows the elements.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort


def node_times(path: str, batch: int, runs: int) -> dict[tuple[str, str], float]:
    """Mean kernel microseconds per run of each node, keyed by (node name, op)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.gettempdir(), "onnxdecomp-op-profile")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in i.shape]
        dtype = np.int64 if "int64" in i.type else np.float32
        feed[i.name] = np.random.default_rng(0).random(shape).astype(dtype)
    session.run(None, feed)  # warm-up: profiled too, each node's first event is skipped
    for _ in range(runs):
        session.run(None, feed)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    total: dict[tuple[str, str], float] = collections.Counter()
    seen: dict[tuple[str, str], int] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = (e["name"][: -len("_kernel_time")], e["args"]["op_name"])
            seen[key] += 1
            if seen[key] > 1:
                total[key] += e["dur"]
    return {k: total[k] / (seen[k] - 1) for k in total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    first: dict[str, float] = {}  # the first model's time per node name
    first_whole = 0.0
    for i, path in enumerate(args.models):
        times = node_times(path, args.batch, args.runs)
        whole = sum(times.values())
        if i == 0:
            first, first_whole = {name: t for (name, _), t in times.items()}, whole
        print(f"{path}: {whole:.0f} us per run (batch {args.batch}, 1 thread)"
              + (f", {whole / first_whole:.3f} of the first" if i else ""))
        for (name, op), t in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
            # ORT numbers the layout reorders it inserts: same name, another tensor
            ref = f"  {t / first[name]:.2f} of the first's" if i and first.get(name) and \
                not op.startswith("Reorder") else ""
            print(f"  {op:<20} {name[:48]:<48} {t:9.1f} us{ref}")


if __name__ == "__main__":
    main()
