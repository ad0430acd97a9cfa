"""Does a recurrent op's hidden size need the vector-width alignment convolutions need?

One ONNX RNN, LSTM and GRU op (input 64 features, 20 steps, batch 64, PyTorch's GRU form
``linear_before_reset=1``) timed in ONNX Runtime at hidden sizes from 128 down: latency
and MACs as fractions of the 128-unit op, and their ratio. ``decompose --align auto`` keeps
recurrent hidden units in multiples of ``align.RECURRENT_ALIGN`` from what this prints.

    python -m benchmarks.recurrent_align [--sizes 128,124,...] [--runs 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.decompose.align import resolve_align
from onnxdecomp.runtime import import_ort

RESULTS = Path(__file__).resolve().parent / "results"
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SIZES = (128, 127, 124, 120, 116, 113, 112, 104, 100, 97, 96, 80, 64)


def recurrent_model(op: str, inputs: int, hidden: int, steps: int) -> onnx.ModelProto:
    """One ``op`` over X [steps, N, inputs] with random weights, Y_h as its output."""
    g, rng = GATES[op], np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((0.1 * rng.standard_normal((1, g * hidden, inputs)))
                                .astype(np.float32), "W"),
        numpy_helper.from_array((0.1 * rng.standard_normal((1, g * hidden, hidden)))
                                .astype(np.float32), "R"),
        numpy_helper.from_array(np.zeros((1, 2 * g * hidden), np.float32), "B")]
    attrs = {"hidden_size": hidden}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(op, ["x", "W", "R", "B"], ["Y", "Y_h"], **attrs)
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, None, inputs])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def session(model: onnx.ModelProto, threads: int):
    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def interleaved_ms(sessions: list, x: np.ndarray, rounds: int) -> list[float]:
    """Median ms per session, the sessions timed in turn within each round (a shared
    machine's slow spells then hit every size alike instead of a few of them)."""
    for sess in sessions:
        for _ in range(3):
            sess.run(None, {"x": x})
    times = [[] for _ in sessions]
    for _ in range(rounds):
        for i, sess in enumerate(sessions):
            t0 = time.perf_counter()
            sess.run(None, {"x": x})
            times[i].append(time.perf_counter() - t0)
    return [1e3 * float(np.median(t)) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default="RNN,LSTM,GRU")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    x = np.random.default_rng(1).standard_normal(
        (args.steps, args.batch, args.inputs)).astype(np.float32)
    rows = []
    print("| op | hidden | ms | latency / largest | MACs / largest | ratio |")
    print("|---|---|---|---|---|---|")
    for op in args.ops.split(","):
        sessions = [session(recurrent_model(op, args.inputs, h, args.steps), args.threads)
                    for h in sizes]
        base = None
        for h, ms in zip(sizes, interleaved_ms(sessions, x, args.runs)):
            macs = GATES[op] * (args.inputs * h + h * h)
            base = base or (ms, macs)
            lat, mac = ms / base[0], macs / base[1]
            rows.append({"op": op, "hidden": h, "ms": round(ms, 3), "latency": round(lat, 3),
                         "macs": round(mac, 3), "ratio": round(lat / mac, 3)})
            print(f"| {op} | {h} | {ms:.3f} | {lat:.3f} | {mac:.3f} | {lat / mac:.3f} |",
                  flush=True)
    out = {"command": "python -m benchmarks.recurrent_align", "date": str(datetime.date.today()),
           "device": platform.processor() or platform.machine(), "provider": "CPU",
           "vector_align": resolve_align("auto", "cpu"), "threads": args.threads,
           "batch": args.batch, "steps": args.steps, "inputs": args.inputs,
           "onnxruntime": import_ort().__version__, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recurrent_align.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
