"""The weights of a dense op (Conv, Gemm, MatMul) in one layout, whatever the op's own.

Gemm computes alpha * A B' + beta * C (B' = B or B^T by transB), MatMul x W, Conv reads
[out, in, kernel...]: every reader here sees [out, in, kernel...] and a [out] bias, with
alpha and beta folded in.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.errors import node_error
from onnxdecomp.irutil import RNN_GATES, const_array, new_initializer


def dense_weight(node: ir.Node) -> np.ndarray:
    """Weights as [out, in, kernel...]; a recurrent op's input weights W [D, G*H, I] as
    [D*G*H, I], rows direction-major."""
    w = const_array(node.inputs[1])
    op = node.op_type
    if op in RNN_GATES:
        return w.reshape(-1, w.shape[-1])
    if op == "Gemm":
        w = w * node.attributes.get_float("alpha", 1.0)
        return w if node.attributes.get_int("transB", 0) else w.T
    if op == "MatMul":
        return w.T
    group = node.attributes.get_int("group", 1) if op == "Conv" else 1
    # A depthwise conv (one input and one output channel per group) keeps its own form; a
    # grouped conv, one with a channel multiplier included (one input channel and several
    # outputs per group: timm's FastViT), is the dense conv it equals.
    if group > 1 and not (w.shape[1] == 1 and w.shape[0] == group):
        return _block_diagonal(w, group)
    return w


def set_dense_gemm(graph: ir.Graph, node: ir.Node, w: np.ndarray, b: np.ndarray,
                   tag: str) -> None:
    """Give the Gemm ``node`` weights ``w`` [out, in] and bias ``b`` [out] as fresh
    initializers (``<node>_<tag>_w``, ``_b``), in the dense form ``dense_weight`` reads:
    transB, alpha 1, beta 1."""
    node.replace_input_with(1, new_initializer(graph, f"{node.name}_{tag}_w", w))
    if len(node.inputs) < 3:
        node.resize_inputs(3)
    node.replace_input_with(2, new_initializer(graph, f"{node.name}_{tag}_b", b))
    for name, value in (("transB", ir.AttrInt64("transB", 1)),
                        ("alpha", ir.AttrFloat32("alpha", 1.0)),
                        ("beta", ir.AttrFloat32("beta", 1.0))):
        node.attributes[name] = value


def _block_diagonal(w: np.ndarray, group: int) -> np.ndarray:
    """A grouped conv's weight [out, in / g, k...] as the dense conv it equals: output
    channel o reads only the input channels of its own group, zeros elsewhere."""
    out, per, *kernel = w.shape
    per_out = out // group
    dense = np.zeros((out, per * group, *kernel), w.dtype)
    for g in range(group):
        dense[g * per_out:(g + 1) * per_out, g * per:(g + 1) * per] = \
            w[g * per_out:(g + 1) * per_out]
    return dense


def dense_bias(node: ir.Node, out: int) -> tuple[np.ndarray, int | None]:
    """(bias as [out] float64, input index of the bias or None when the op has none); for a
    recurrent op the input half Wb of B, the part of the gate pre-activations W x + Wb."""
    if node.op_type in RNN_GATES:
        b = recurrent_bias(node)
        return b[:, :b.shape[1] // 2].reshape(-1).astype(np.float64), None
    if (found := bias_add(node)) is not None:
        add, index = found
        b = np.broadcast_to(const_array(add.inputs[index]).reshape(-1), (out,))
        return b.astype(np.float64), None
    idx = 2 if node.op_type in ("Conv", "Gemm") else None
    if idx is not None and len(node.inputs) > idx and node.inputs[idx] is not None:
        b = const_array(node.inputs[idx])
        if b is None:
            raise node_error(node, "bias is computed, not constant")
        if node.op_type == "Gemm":
            b = np.broadcast_to(b.reshape(-1), (out,)) if b.size in (1, out) else None
            if b is None:
                raise node_error(node, "Gemm bias is not a [M] or scalar constant")
            b = b * node.attributes.get_float("beta", 1.0)
        return b.astype(np.float64), idx
    return np.zeros(out), idx


def bias_add(node: ir.Node) -> tuple[ir.Node, int] | None:
    """(the Add, its operand index) when a MatMul's output goes only into an Add with a
    constant of one value per output feature (or one for all): the bias exporters put after
    a MatMul over a sequence, which has no Gemm to hold it."""
    if node.op_type != "MatMul":
        return None
    y = node.outputs[0]
    uses = list(y.uses())
    if len(uses) != 1 or y.is_graph_output() or uses[0].node.op_type != "Add":
        return None
    add, idx = uses[0].node, 1 - uses[0].idx
    b = const_array(add.inputs[idx]) if len(add.inputs) == 2 else None
    out = const_array(node.inputs[1]).shape[-1]
    if b is None or b.size not in (1, out) or (b.ndim and b.shape[-1] != b.size):
        return None
    return add, idx


def recurrent_bias(node: ir.Node) -> np.ndarray:
    """B [D, 2*G*H] of a recurrent op (Wb then Rb per direction), zeros when it has none."""
    w = const_array(node.inputs[1])
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        return const_array(node.inputs[3])
    return np.zeros((w.shape[0], 2 * w.shape[1]), w.dtype)


def to_op_layout(node: ir.Node, w: np.ndarray) -> np.ndarray:
    """[out, in, kernel...] weights back in the op's own layout (the inverse of dense_weight,
    alpha aside)."""
    op = node.op_type
    if op == "Gemm":
        return w if node.attributes.get_int("transB", 0) else w.T
    if op == "MatMul":
        return w.T
    return w


def consumer_weight(cons) -> np.ndarray:
    """The weights a consumer reads its input columns with, as [out, in, kernel...]: a
    state reader's R [G*H, H] of its direction."""
    if cons.kind == "rnn_state":
        return const_array(cons.node.inputs[2])[cons.direction]
    return dense_weight(cons.node)


def consumer_bias(cons, out: int) -> np.ndarray:
    """The bias that goes with ``consumer_weight``: a state reader's half Rb of B."""
    if cons.kind == "rnn_state":
        return recurrent_bias(cons.node)[cons.direction, out:].astype(np.float64)
    return dense_bias(cons.node, out)[0]
