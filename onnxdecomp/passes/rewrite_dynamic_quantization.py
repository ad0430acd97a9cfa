"""RewriteDynamicQuantizationPass: ONNX Runtime's dynamically quantised layers as float layers
reading DequantizeLinear of their quantised inputs."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import (
    const_array,
    input_at,
    is_default_domain,
    new_initializer,
    only_use,
    replace_node,
)
from onnxdecomp.passes.mark_quantized_weights import symmetric_bound

_MS = "com.microsoft"
# Model metadata, internal: the name of each layer this pass rewrote -> how it was quantised
# ({"op": "MatMul" | "Conv"}, or an LSTM's {"op": "LSTM", "dtype", "per_channel",
# "symmetric"}); FuseDynamicQuantizationPass writes the modules' layers back so.
DYNAMIC_QUANTIZED = "onnxdecomp.dynamic_quantized"
_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


class RewriteDynamicQuantizationPass(ir.passes.InPlacePass):
    """``quantize_dynamic`` writes a dense layer y = x @ W as

        (xq, xs, xz) = DynamicQuantizeLinear(x)
        y = Cast(MatMulInteger(xq, Wq, xz, Wz)) * Mul(xs, Ws)        (ConvInteger alike)

    which is y = DQ(xq, xs, xz) @ DQ(Wq, Ws, Wz): it is rewritten as that, the float op
    reading DequantizeLinear of the activation (its scale computed) and of the constant
    weight. ``MarkQuantizedWeightsPass`` records such weights (int8, zero point 0: ONNX
    Runtime's default) and the folding makes them float for the refit; the modules quantise
    them again and ``FuseDynamicQuantizationPass`` writes the integer ops back. The same
    arithmetic up to float rounding (the integer op sums exactly in int32). ONNX Runtime's
    saved-optimised form, com.microsoft DynamicQuantizeMatMul, reads the same way.

    DynamicQuantizeLSTM (int8 W [D, in, 4H], R [D, H, 4H]; it quantises X and H inside,
    which no standard op writes) becomes an LSTM on the dequantised, transposed weights,
    every rewritten layer is recorded in the metadata (``DYNAMIC_QUANTIZED``) to be written
back in the modules.

    Requires: constants lifted to initializers, not yet folded. Ensures: no MatMulInteger,
    ConvInteger, DynamicQuantizeMatMul or DynamicQuantizeLSTM of that form remains.
    """

    def __init__(self, standard_ops: bool = True) -> None:
        super().__init__()
        self.standard_ops = standard_ops  # False: only the com.microsoft ones (MAC counting)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph, done = model.graph, {}
        for node in list(graph):
            spec = None
            if self.standard_ops and is_default_domain(node.domain) and \
                    node.op_type in ("MatMulInteger", "ConvInteger"):
                spec = _rewrite_integer(graph, node)
            elif node.domain == _MS and node.op_type == "DynamicQuantizeMatMul":
                spec = _rewrite_dynamic_matmul(graph, node)
            elif node.domain == _MS and node.op_type == "DynamicQuantizeLSTM":
                spec = _rewrite_lstm(graph, node)
            if spec is not None:
                done[node.name] = spec
        if done:
            model.metadata_props[DYNAMIC_QUANTIZED] = json.dumps(done, sort_keys=True)
        return ir.passes.PassResult(model, bool(done))


def is_dynamic_quantized(node: ir.Node) -> bool:
    """Whether ``node`` is one of the com.microsoft ops this pass rewrites."""
    return node.domain == _MS and node.op_type in ("DynamicQuantizeMatMul",
                                                    "DynamicQuantizeLSTM")


def _dequantized(q: ir.Value, scale: ir.Value, zero: ir.Value | None, name: str,
                 axis: int | None = None) -> ir.Node:
    attrs = {"axis": axis} if axis is not None else {}
    node = ir.node("DequantizeLinear", [q, scale] + ([zero] if zero is not None else []),
                   attributes=attrs, name=name)
    node.outputs[0].name = name
    return node


def _weight_dq(graph: ir.Graph, node: ir.Node, wq: ir.Value, ws: np.ndarray,
               wz: np.ndarray | None, axis: int) -> ir.Node | None:
    """DequantizeLinear of the constant weight ``wq`` at scale ``ws`` (one, or one per output
    channel along ``axis``), or None for another layout of scales."""
    w = const_array(wq)
    flat = ws.reshape(-1)
    if flat.size not in (1, w.shape[axis]):
        return None
    per_channel = flat.size > 1
    scale = flat if per_channel else flat.reshape(())
    zero = np.zeros(scale.shape, w.dtype) if wz is None else wz.reshape(scale.shape)
    base = wq.name or node.name
    return _dequantized(wq, new_initializer(graph, f"{base}_scale", scale),
                        new_initializer(graph, f"{base}_zero_point", zero.astype(w.dtype)),
                        f"{node.name}_dq_weight", axis if per_channel else None)


def _rewrite_integer(graph: ir.Graph, node: ir.Node) -> dict | None:
    """MatMulInteger / ConvInteger in quantize_dynamic's chain (see the pass) as the float op.
    The activation's scale and zero point are DynamicQuantizeLinear's, or constants (a
    quantised embedding table's rows read directly)."""
    xq, wq, xz, wz = (input_at(node, i) for i in range(4))
    if xq is None or const_array(wq) is None:
        return None
    cast = only_use(node.outputs[0])
    if cast is None or cast.op_type != "Cast" or \
            cast.attributes.get_int("to", 0) != ir.DataType.FLOAT:
        return None
    mul = only_use(cast.outputs[0])
    if mul is None or mul.op_type != "Mul":
        return None
    scales = mul.inputs[1] if mul.inputs[0] is cast.outputs[0] else mul.inputs[0]
    smul = scales.producer()
    if smul is None or smul.op_type != "Mul":
        return None
    xs, ws_value = smul.inputs  # quantize_dynamic's order; a computed scale is the input's
    if const_array(xs) is not None and const_array(ws_value) is None:
        xs, ws_value = ws_value, xs
    ws, wzero = const_array(ws_value), (const_array(wz) if wz is not None else None)
    if ws is None or (wz is not None and wzero is None) or not _activation_triple(xq, xs, xz):
        return None
    conv = node.op_type == "ConvInteger"
    if conv and ws.size > 1:
        return None  # a per-channel scale after a conv would broadcast on the last axis
    w_dq = _weight_dq(graph, node, wq, ws, wzero, 0 if conv else 1)
    if w_dq is None:
        return None
    x_dq = _dequantized(xq, xs, xz, f"{node.name}_dq_input")
    attrs = {k: v for k, v in node.attributes.items() if k in _CONV_ATTRS}
    op = ir.node("Conv" if conv else "MatMul", [x_dq.outputs[0], w_dq.outputs[0]],
                 attributes=attrs, name=node.name)
    replace_node(graph, mul, [x_dq, w_dq, op])
    graph.remove([cast, node], safe=True)
    if not smul.outputs[0].uses():
        graph.remove(smul, safe=True)
    return {"op": op.op_type}


def _activation_triple(xq: ir.Value, xs: ir.Value, xz: ir.Value | None) -> bool:
    """Whether (xq, xs, xz) is one DynamicQuantizeLinear's outputs, or xq with a constant
    scalar scale and zero point."""
    dql = xq.producer()
    if dql is not None and dql.op_type == "DynamicQuantizeLinear" and xq is dql.outputs[0]:
        return xs is dql.outputs[1] and (xz is None or xz is dql.outputs[2])
    consts = [const_array(v) for v in (xs, xz) if v is not None]
    return all(c is not None and c.size == 1 for c in consts) and const_array(xs) is not None


def _rewrite_dynamic_matmul(graph: ir.Graph, node: ir.Node) -> dict | None:
    """DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias): A quantised as
    DynamicQuantizeLinear does, times DQ(B), plus the bias."""
    a, wq, ws, wz, bias = (input_at(node, i) for i in range(5))
    scale, zero = const_array(ws), (const_array(wz) if wz is not None else None)
    if const_array(wq) is None or scale is None or (wz is not None and zero is None):
        return None
    w_dq = _weight_dq(graph, node, wq, scale, zero, 1)
    if w_dq is None:
        return None
    dql = ir.node("DynamicQuantizeLinear", [a], num_outputs=3, name=f"{node.name}_quantize")
    for out, tag in zip(dql.outputs, ("quantized", "scale", "zero_point"), strict=True):
        out.name = f"{node.name}_input_{tag}"
    x_dq = _dequantized(*dql.outputs, f"{node.name}_dq_input")
    added = [dql, x_dq, w_dq, ir.node("MatMul", [x_dq.outputs[0], w_dq.outputs[0]],
                                      name=node.name)]
    if bias is not None:
        added[-1].outputs[0].name = f"{node.name}_matmul"
        added.append(ir.node("Add", [added[-1].outputs[0], bias], name=f"{node.name}_bias"))
    replace_node(graph, node, added)
    return {"op": "MatMul"}


def _dequantize_lstm_weight(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None,
                            ) -> np.ndarray | None:
    """[D, in, 4H] quantised with a scale per direction [D] or per gate row [D, 4H] ->
    float [D, 4H, in], an LSTM's layout."""
    d = q.shape[0]
    if scale.size not in (d, d * q.shape[2]):
        return None
    shape = (d, 1, -1) if scale.size > d else (d, 1, 1)
    z = np.zeros(1) if zero is None else zero.reshape(shape).astype(np.float64)
    w = (q.astype(np.float64) - z) * scale.reshape(shape).astype(np.float64)
    return np.ascontiguousarray(w.transpose(0, 2, 1)).astype(np.float32)


def _rewrite_lstm(graph: ir.Graph, node: ir.Node) -> dict | None:
    """DynamicQuantizeLSTM as an LSTM with float weights; its quantisation for the record."""
    inputs = [input_at(node, i) for i in range(12)]
    arrays = [const_array(v) if v is not None else None for v in inputs[8:12]]
    wq, rq = const_array(inputs[1]), const_array(inputs[2])
    if wq is None or rq is None or arrays[0] is None or arrays[2] is None \
            or any(v is not None and a is None for v, a in zip(inputs[8:12], arrays,
                                                                  strict=True)):
        return None
    w = _dequantize_lstm_weight(wq, arrays[0], arrays[1])
    r = _dequantize_lstm_weight(rq, arrays[2], arrays[3])
    if w is None or r is None:
        return None
    head = list(inputs[:8])
    head[1] = new_initializer(graph, f"{node.name}_W", w)
    head[2] = new_initializer(graph, f"{node.name}_R", r)
    while head and head[-1] is None:
        head.pop()
    lstm = ir.node("LSTM", head, attributes=dict(node.attributes.items()),
                   num_outputs=len(node.outputs), name=node.name)
    replace_node(graph, node, [lstm])
    symmetric = all(a is None or not np.any(a) for a in (arrays[1], arrays[3]))
    return {"op": "LSTM", "dtype": str(wq.dtype), "qmax": symmetric_bound(wq, rq),
            "per_channel": bool(arrays[0].size > wq.shape[0]), "symmetric": symmetric}
