"""MAC rules per op: multiply-accumulates of one top-level node for one sample.

A shape a rule needs but that is unknown or symbolic raises :class:`OnnxDecompError` naming
the node and op (plus the shape-inference failure, when there was one); nothing is guessed.
"""

from __future__ import annotations

import math
from typing import NoReturn

import numpy as np
import onnx_ir as ir

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import RNN_GATES, is_default_domain
from onnxdecomp.stats.shapes import Dim, dims, fmt_shape


class ShapeLookup:
    """Static shapes of a node's inputs and outputs, or a one-line error naming the node and,
    when shape inference failed, its failure (``infer_error``)."""

    def __init__(self, infer_error: str | None) -> None:
        self.infer_error = infer_error

    def dims(self, value: ir.Value) -> list[Dim] | None:
        return dims(value)

    def get(self, node: ir.Node, label: str, index: int, output: bool = False) -> list[int]:
        values = node.outputs if output else node.inputs
        value = values[index] if index < len(values) else None
        name = (value.name or "") if value is not None else ""
        shape = self.dims(value) if value is not None and name else None
        if shape is not None and all(isinstance(d, int) for d in shape):
            return shape  # type: ignore[return-value]
        self.fail(node, label, name, shape)

    def fail(self, node: ir.Node, label: str, name: str, shape: list[Dim] | None) -> NoReturn:
        if not name:
            what = "missing"
        else:
            what = "unknown" if shape is None else f"not static {fmt_shape(shape)}"
        self.mismatch(node, f"shape of {label} {name!r} is {what}")

    def mismatch(self, node: ir.Node, detail: str) -> NoReturn:
        msg = f"cannot count MACs of node {node.name or '(unnamed)'!r} ({node.op_type}): {detail}"
        if self.infer_error:
            msg += f" (shape inference failed: {self.infer_error})"
        raise OnnxDecompError(msg)


def _conv(node: ir.Node, sh: ShapeLookup, w: int) -> int:
    wshape = sh.get(node, "weight", w)
    out = sh.get(node, "output", 0, output=True)
    # W is [Cout, Cin/groups, k...]: dim 1 is already the per-group input channels.
    return math.prod(out) * wshape[1] * math.prod(wshape[2:])


def _conv_transpose(node: ir.Node, sh: ShapeLookup) -> int:
    xshape = sh.get(node, "input", 0)
    wshape = sh.get(node, "weight", 1)
    # W is [Cin, Cout/groups, k...]: each input element is scattered to Cout/groups * k outputs.
    return math.prod(xshape) * wshape[1] * math.prod(wshape[2:])


def _gemm(node: ir.Node, sh: ShapeLookup) -> int:
    b = sh.get(node, "input B", 1)
    a = sh.dims(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    inner = 0 if node.attributes.get_int("transA", 0) else 1
    if a is not None and len(a) == 2 and len(b) == 2 and isinstance(a[1 - inner], int) \
            and not isinstance(a[inner], int):  # a symbolic inner size is the weight's
        a = list(a)
        a[inner] = b[1] if node.attributes.get_int("transB", 0) else b[0]
    else:
        a = sh.get(node, "input A", 0)
    if len(a) != 2 or len(b) != 2:
        sh.mismatch(node, f"inputs must be 2-D, got {fmt_shape(a)} and {fmt_shape(b)}")
    m, k = (a[1], a[0]) if node.attributes.get_int("transA", 0) else (a[0], a[1])
    k_b, n = (b[1], b[0]) if node.attributes.get_int("transB", 0) else (b[0], b[1])
    if k != k_b:  # e.g. a Reshape hard-coding the original batch: refuse rather than guess
        sh.mismatch(node, f"inner dimensions differ: {fmt_shape(a)} x {fmt_shape(b)}")
    return m * n * k


def _matmul(node: ir.Node, sh: ShapeLookup, a_idx: int, b_idx: int) -> int:
    b = sh.get(node, "input B", b_idx)
    a_value = node.inputs[a_idx] if a_idx < len(node.inputs) else None
    a_dims = sh.dims(a_value) if a_value is not None else None
    if a_dims and len(b) >= 2 and all(isinstance(d, int) for d in a_dims[:-1]):
        # A's inner size is B's rows (a computed reshape can leave it symbolic).
        a = [*a_dims[:-1], b[-2]] if not isinstance(a_dims[-1], int) else a_dims
    else:
        a = sh.get(node, "input A", a_idx)
    # numpy semantics: a 1-D operand is a row (A) or column (B) vector, not batched.
    if not a or not b:
        sh.mismatch(node, "scalar operand")
    m, k, a_batch = (1, a[0], []) if len(a) == 1 else (a[-2], a[-1], a[:-2])
    k_b, n, b_batch = (b[0], 1, []) if len(b) == 1 else (b[-2], b[-1], b[:-2])
    try:
        batch = math.prod(np.broadcast_shapes(tuple(a_batch), tuple(b_batch)))
    except ValueError:
        batch = -1
    if k != k_b or batch < 0:
        sh.mismatch(node, f"shapes do not multiply: {fmt_shape(a)} x {fmt_shape(b)}")
    return batch * m * n * k


def _recurrent(node: ir.Node, sh: ShapeLookup) -> tuple[int, bool]:
    """From X's shape when shape inference knows it; else from the weights alone, per sample
    and per time step (a stacked layer fed through reshapes often has no inferred shape)."""
    x_value = node.inputs[0] if node.inputs else None
    x_name = (x_value.name or "") if x_value is not None else ""
    x = sh.dims(x_value) if x_value is not None and x_name else None
    w = sh.get(node, "W", 1)
    r = sh.get(node, "R", 2)
    if len(w) != 3 or len(r) != 3:
        sh.mismatch(node, f"W and R must be 3-D, got {fmt_shape(w)} and {fmt_shape(r)}")
    dirs, gh, inp = w
    hidden = r[2]
    gates = RNN_GATES[node.op_type]
    if gh != gates * hidden:
        sh.mismatch(node, f"W {fmt_shape(w)} and R {fmt_shape(r)} do not fit")
    seq_axis, batch_axis = (1, 0) if node.attributes.get_int("layout", 0) == 1 else (0, 1)
    if x is None or len(x) != 3 or not isinstance(x[batch_axis], int):
        return dirs * gates * (hidden * inp + hidden * hidden), True
    seq, batch = x[seq_axis], x[batch_axis]
    if isinstance(x[2], int) and x[2] != inp:  # a symbolic feature size is W's
        sh.mismatch(node, f"X {fmt_shape(x)}, W {fmt_shape(w)}, R {fmt_shape(r)} do not fit")
    # Peephole and bias adds are element-wise, and sequence_lens is ignored: an upper bound.
    per_step = batch * dirs * gates * (hidden * inp + hidden * hidden)
    if isinstance(seq, int):
        return seq * per_step, False
    return per_step, True  # symbolic sequence length: an honest per-step count


def _einsum(node: ir.Node, sh: ShapeLookup) -> int:
    """An Einsum of two or more operands: one multiply-accumulate for every combination of
    its letters' values (``"nk,ko->no"``: n * k * o, a MatMul's count); of one operand (a
    transpose, a sum, a trace) none. Broadcast ``...`` counts its largest extent."""
    if len(node.inputs) < 2:
        return 0
    terms = node.attributes.get_string("equation", "").replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for i, term in enumerate(terms.split(",")):
        shape = sh.get(node, f"input {i}", i)
        explicit = term.replace("...", "")
        if len(explicit) > len(shape):
            sh.mismatch(node, f"equation term {term!r} has more letters than {fmt_shape(shape)}")
        if "..." in term:  # its axes: shape[start:end], the letters after it the last ones
            start = term.index("...")
            end = len(shape) - (len(term) - start - 3)
            sizes["..."] = max(sizes.get("...", 1), math.prod(shape[start:end]))
            shape = shape[:start] + shape[end:]
        for letter, d in zip(explicit, shape):
            sizes[letter] = max(sizes.get(letter, 1), d)  # 1 broadcasts
    return math.prod(sizes.values())


def node_macs(node: ir.Node, sh: ShapeLookup) -> tuple[int, bool]:
    """(MACs, per_step) of one node; 0 for ops that are not counted."""
    if not is_default_domain(node.domain):
        return 0, False
    op = node.op_type
    if op in ("Conv", "ConvInteger"):
        return _conv(node, sh, 1), False
    if op == "QLinearConv":
        return _conv(node, sh, 3), False
    if op == "ConvTranspose":
        return _conv_transpose(node, sh), False
    if op == "Gemm":
        return _gemm(node, sh), False
    if op in ("MatMul", "MatMulInteger"):
        return _matmul(node, sh, 0, 1), False
    if op == "QLinearMatMul":
        return _matmul(node, sh, 0, 3), False
    if op == "Einsum":
        return _einsum(node, sh), False
    if op in RNN_GATES:
        return _recurrent(node, sh)
    return 0, False
