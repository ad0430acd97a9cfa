"""FuseDynamicQuantizationPass: a module's layers back in the integer form of its dynamically
quantised parent."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, input_at, new_initializer, replace_node
from onnxdecomp.passes.quantize_weights import quantize_symmetric
from onnxdecomp.passes.rewrite_dynamic_quantization import DYNAMIC_QUANTIZED


class FuseDynamicQuantizationPass(ir.passes.InPlacePass):
    """The inverse of ``RewriteDynamicQuantizationPass`` for the layers it recorded.

    A dense layer or conv reading DQ(xq, xs, xz) and DQ(Wq, Ws, 0) (its weight quantised
    again by ``QuantizeWeightsPass``) becomes quantize_dynamic's chain

        y = Cast(MatMulInteger(xq, Wq, xz, 0)) * Mul(xs, Ws) [+ bias]    (ConvInteger alike)

    which ONNX Runtime runs with integer kernels (it fuses the chain into
    DynamicQuantizeMatMul); a Gemm's transposed weight is transposed back. An LSTM that was
    a DynamicQuantizeLSTM is one again, its W and R quantised as the parent's were:
    symmetric int8 (scale = max|w| / qmax, the parent's bound: 127, or 64 for a reduced
    range; per direction or per gate row), else asymmetric
    uint8 over [min(w, 0), max(w, 0)] as ONNX Runtime computes it. Unchanged weights come
    back as the parent's integers. Requires: the normalised parent's metadata. Ensures: the
    recorded layers of that form compute with integer ops.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        recorded = json.loads(model.metadata_props.get(DYNAMIC_QUANTIZED, "{}"))
        graph, modified = model.graph, False
        for node in list(graph):
            spec = recorded.get(node.name)
            if spec is None:
                continue
            if node.op_type == "LSTM" and spec["op"] == "LSTM":
                _lstm(graph, node, spec)
                model.opset_imports.setdefault("com.microsoft", 1)
                modified = True
            elif node.op_type in ("Gemm", "MatMul", "Conv"):
                modified |= _dense(graph, node)
        return ir.passes.PassResult(model, modified)


def _dq_parts(value: ir.Value) -> tuple[ir.Node, list[ir.Value | None]] | None:
    node = value.producer()
    if node is None or node.op_type != "DequantizeLinear":
        return None
    return node, [input_at(node, i) for i in range(3)]


def _dense(graph: ir.Graph, node: ir.Node) -> bool:
    x_parts, w_parts = _dq_parts(node.inputs[0]), _dq_parts(node.inputs[1])
    if x_parts is None or w_parts is None or "axis" in x_parts[0].attributes:
        return False
    (xq, xs, xz), (wq, ws, wz) = x_parts[1], w_parts[1]
    w, scale = const_array(wq), const_array(ws)
    zero = np.zeros(1, np.int8) if wz is None else const_array(wz)
    if w is None or scale is None or zero is None or np.any(zero) or w.dtype != np.int8:
        return False
    a = node.attributes
    conv = node.op_type == "Conv"
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if node.op_type == "Gemm":
        if a.get_int("transA", 0) or a.get_float("alpha", 1.0) != 1.0 or \
                (bias is not None and a.get_float("beta", 1.0) != 1.0):
            return False
        if a.get_int("transB", 0):
            w = np.ascontiguousarray(w.T)  # per-channel scales run along N either way
    name = node.name
    scale = scale.reshape(-1)
    if conv and scale.size > 1:
        scale = scale.reshape(-1, 1, 1)  # over [N, M, H, W]: per output channel
    w_int = new_initializer(graph, f"{name}_weight_quantized", w)
    w_zero = new_initializer(graph, f"{name}_weight_zero_point", np.zeros((), np.int8))
    w_scale = new_initializer(graph, f"{name}_weight_scale", scale.astype(np.float32)
                              if scale.size > 1 else scale.reshape(()).astype(np.float32))
    attrs = dict(a.items()) if conv else {}
    integer = ir.node("ConvInteger" if conv else "MatMulInteger",
                      [xq, w_int, xz, w_zero], attributes=attrs, name=f"{name}_quant")
    cast = ir.node("Cast", [integer.outputs[0]], attributes={"to": ir.DataType.FLOAT},
                   name=f"{name}_cast")
    scales = ir.node("Mul", [xs, w_scale], name=f"{name}_scales_mul")
    out = ir.node("Mul", [cast.outputs[0], scales.outputs[0]], name=f"{name}_scaled")
    added = [integer, cast, scales, out]
    if bias is not None:
        b = bias
        if conv:
            arr = const_array(bias)
            if arr is None:
                return False
            b = new_initializer(graph, f"{name}_bias_reshaped", arr.reshape(1, -1, 1, 1))
        added.append(ir.node("Add", [out.outputs[0], b], name=f"{name}_bias_add"))
    for i, n in enumerate(added):
        n.outputs[0].name = f"{name}_integer_{i}"
    replace_node(graph, node, added)
    return True


def quantize_lstm_weight(w: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """An LSTM weight [D, 4H, in] as DynamicQuantizeLSTM's (q [D, in, 4H], scale, zero
    point), per direction ([D]) or per gate row ([D, 4H]) as ``spec`` says."""
    t = np.ascontiguousarray(w.transpose(0, 2, 1)).astype(np.float32)
    axes = (1,) if spec["per_channel"] else (1, 2)
    if spec["symmetric"] and spec["dtype"] == "int8":
        q, scale = quantize_symmetric(t, axes, spec.get("qmax", 127))
        zero = np.zeros(scale.shape, np.int8)
    else:
        lo = np.minimum(t.min(axis=axes, keepdims=True), 0)
        hi = np.maximum(t.max(axis=axes, keepdims=True), 0)
        scale = np.where(hi > lo, (hi - lo) / np.float32(255), np.float32(1)).astype(np.float32)
        zero = np.clip(np.rint(-lo / scale), 0, 255).astype(np.uint8)
        q = np.clip(np.rint(t / scale) + zero, 0, 255).astype(np.uint8)
    shape = (t.shape[0], -1) if spec["per_channel"] else (t.shape[0],)
    return q, scale.reshape(shape), zero.reshape(shape)


def _lstm(graph: ir.Graph, node: ir.Node, spec: dict) -> None:
    inputs = [input_at(node, i) for i in range(8)]
    extra = []
    for i, tag in ((1, "W"), (2, "R")):
        q, scale, zero = quantize_lstm_weight(const_array(inputs[i]), spec)
        inputs[i] = new_initializer(graph, f"{node.name}_{tag}_quantized", q)
        extra += [new_initializer(graph, f"{node.name}_{tag}_scale", scale),
                  new_initializer(graph, f"{node.name}_{tag}_zero_point", zero)]
    quant = ir.node("DynamicQuantizeLSTM", inputs + extra, domain="com.microsoft",
                    attributes=dict(node.attributes.items()), num_outputs=len(node.outputs),
                    name=node.name)
    replace_node(graph, node, [quant])
