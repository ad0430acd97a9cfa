"""RewriteQOperatorPass: ONNX Runtime's QOperator quantised ops as QDQ around float ops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import (
    const_array,
    input_at,
    is_default_domain,
    new_initializer,
    replace_node,
)

_MS = "com.microsoft"


@dataclass(frozen=True)
class QOp:
    """How one quantised op reads: ``float_op`` on its quantised inputs, each a triple of
    input positions (value, scale, zero point); ``weight``: the triple whose per-channel
    scale runs along the output channels (axis by ``weight_axis``); ``bias``: the position
    of an int32 bias quantised at scale(input 0) * scale(weight); ``out``: the positions of
    the output's scale and zero point (None, or no scale given: the op outputs floats)."""

    float_op: str
    inputs: tuple[tuple[int, int, int], ...]
    out: tuple[int, int] | None
    weight: int | None = None
    bias: int | None = None
    keep: tuple[str, ...] = ()  # attributes the float op takes


QOPS: dict[tuple[str, str], QOp] = {
    ("", "QLinearConv"): QOp("Conv", ((0, 1, 2), (3, 4, 5)), (6, 7), weight=1, bias=8,
                             keep=("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                   "strides")),
    ("", "QLinearMatMul"): QOp("MatMul", ((0, 1, 2), (3, 4, 5)), (6, 7), weight=1),
    (_MS, "QGemm"): QOp("Gemm", ((0, 1, 2), (3, 4, 5)), (7, 8), weight=1, bias=6,
                        keep=("alpha", "transA", "transB")),
    (_MS, "QLinearAdd"): QOp("Add", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    (_MS, "QLinearMul"): QOp("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    (_MS, "QLinearGlobalAveragePool"): QOp("GlobalAveragePool", ((0, 1, 2),), (3, 4)),
    (_MS, "QLinearAveragePool"): QOp("AveragePool", ((0, 1, 2),), (3, 4), keep=(
        "auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")),
    (_MS, "QLinearLeakyRelu"): QOp("LeakyRelu", ((0, 1, 2),), (3, 4), keep=("alpha",)),
    (_MS, "QLinearSigmoid"): QOp("Sigmoid", ((0, 1, 2),), (3, 4)),
}


class RewriteQOperatorPass(ir.passes.InPlacePass):
    """Write each QOperator op (``quantize_static(..., quant_format=QOperator)``:
    QLinearConv, QLinearMatMul, and ONNX Runtime's QGemm, QLinearAdd, QLinearMul,
    QLinearGlobalAveragePool, ...) as DequantizeLinear of its inputs, the float op, and
    QuantizeLinear of its output: the same arithmetic, y = Q(op(DQ(x), DQ(w)) + DQ(b)),
    where DQ(b) = b * scale(x) * scale(w) (the int32 bias's own scale).

    The channel rules, the profile and the refit then see float layers whose weights are
    dequantised int8 constants: the QDQ form, which ``MarkQuantizedWeightsPass`` records
    and ``QuantizeWeightsPass`` writes back as int8 in the modules (ONNX Runtime fuses QDQ
    into its int8 kernels). A node with computed scales, channels-last pooling or an
    attribute its float op lacks is left as it is (the channel rules then name it).

    Requires: constants lifted to initializers, opset >= 13 where a scale is per channel.
    Ensures: none of the ops of ``QOPS`` that qualify remain.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            spec = qop_spec(node)
            if spec is None or not _qualifies(node, spec):
                continue
            _rewrite(graph, node, spec)
            modified = True
        return ir.passes.PassResult(model, modified)


def qop_spec(node: ir.Node) -> QOp | None:
    """How ``node`` reads, when it is one of the QOperator ops of ``QOPS``."""
    if node.domain == _MS:
        return QOPS.get((_MS, node.op_type))
    return QOPS.get(("", node.op_type)) if is_default_domain(node.domain) else None


def _qualifies(node: ir.Node, spec: QOp) -> bool:
    extra = set(node.attributes) - set(spec.keep)
    if extra - {"channels_last"} or node.attributes.get_int("channels_last", 0):
        return False
    scales = [t[1] for t in spec.inputs] + ([spec.out[0]] if _quantized_out(node, spec) else [])
    return all(const_array(input_at(node, i)) is not None for i in scales)


def _quantized_out(node: ir.Node, spec: QOp) -> bool:
    """Whether the op outputs integers (QGemm without y_scale outputs floats)."""
    return spec.out is not None and input_at(node, spec.out[0]) is not None


def _rewrite(graph: ir.Graph, node: ir.Node, spec: QOp) -> None:
    name, added = node.name or node.op_type, []

    def dequantized(triple: tuple[int, int, int], axis: int | None, tag: str) -> ir.Value:
        x, scale, zero = (input_at(node, i) for i in triple)
        attrs = {"axis": axis} if axis is not None and const_array(scale).size > 1 else {}
        dq = ir.node("DequantizeLinear", [x, scale] + ([zero] if zero is not None else []),
                     attributes=attrs, name=f"{name}_dq_{tag}")
        dq.outputs[0].name = f"{name}_dq_{tag}"
        added.append(dq)
        return dq.outputs[0]

    weight_axis = _weight_axis(node, spec)
    floats = [dequantized(t, weight_axis if i == spec.weight else 1, str(i))
              for i, t in enumerate(spec.inputs)]
    bias = input_at(node, spec.bias) if spec.bias is not None else None
    if bias is not None:
        x_scale = const_array(input_at(node, spec.inputs[0][1]))
        w_scale = const_array(input_at(node, spec.inputs[spec.weight][1]))
        scale = new_initializer(graph, f"{name}_bias_scale",
                                (x_scale * w_scale).astype(np.float32).reshape(-1))
        dq = ir.node("DequantizeLinear", [bias, scale],
                     attributes={"axis": 0} if scale.const_value.size > 1 else {},
                     name=f"{name}_dq_bias")
        dq.outputs[0].name = f"{name}_dq_bias"
        added.append(dq)
        floats.append(dq.outputs[0])
    attrs = {k: v for k, v in node.attributes.items() if k in spec.keep}
    op = ir.node(spec.float_op, floats, attributes=attrs, name=name)
    op.outputs[0].name = f"{name}_float"
    added.append(op)
    if _quantized_out(node, spec):
        scale, zero = input_at(node, spec.out[0]), input_at(node, spec.out[1])
        added.append(ir.node("QuantizeLinear", [op.outputs[0]] + (
            [scale, zero] if zero is not None else [scale]), name=f"{name}_q"))
    replace_node(graph, node, added)


def _weight_axis(node: ir.Node, spec: QOp) -> int:
    """The weight axis of the output channels: Conv's 0, Gemm's 0 when B is transposed,
    else the last (MatMul's and Gemm's [K, N])."""
    if spec.float_op == "Conv":
        return 0
    if spec.float_op == "Gemm" and node.attributes.get_int("transB", 0):
        return 0
    return 1
