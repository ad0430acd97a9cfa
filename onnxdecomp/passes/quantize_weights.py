"""QuantizeWeightsPass: a module's pruned float weights back to int8 where its parent's were."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, new_initializer
from onnxdecomp.passes.mark_quantized_weights import QUANTIZED_WEIGHTS


def quantize_symmetric(w: np.ndarray, axes: tuple[int, ...] | None,
                       qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """``w`` as int8 q with w ~ q * scale, scale = max|w| / qmax over ``axes`` (None: the
    whole tensor; 1 where that is 0), kept at w's rank: ONNX Runtime's symmetric weights,
    qmax 127 or 64 for a reduced range."""
    absmax = np.max(np.abs(w), axis=axes, keepdims=True)
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
    return np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8), scale


class QuantizeWeightsPass(ir.passes.InPlacePass):
    """Quantise the weights of the layers ``MarkQuantizedWeightsPass`` recorded: symmetric
    int8, scale = max|w| / qmax per output channel (per tensor where the parent's was; qmax
    the parent's bound, 127, or 64 for a reduced range),
    read through ``DequantizeLinear`` as the parent read them.

    A weight nothing changed comes back as the parent's int8 values (its largest entry is
    +-qmax times its scale); a refit one is quantised afresh. Requires: the model's metadata
    from the normalised parent. Ensures: those layers' weights are int8 initializers behind
    DequantizeLinear; biases stay float.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        marked = json.loads(model.metadata_props.get(QUANTIZED_WEIGHTS, "{}"))
        graph = model.graph
        modified = False
        for node in list(graph):
            spec = marked.get(node.name)
            w = const_array(node.inputs[1]) if spec and len(node.inputs) > 1 else None
            if w is None or w.dtype != np.float32:
                continue
            axis = spec["axis"] % w.ndim
            others = tuple(a for a in range(w.ndim) if a != axis)
            q, scale = quantize_symmetric(w, others if spec["per_channel"] else None,
                                          spec.get("qmax", 127))
            scale = scale.reshape(-1) if spec["per_channel"] else scale.reshape(())
            base = node.inputs[1].name
            inputs = [new_initializer(graph, f"{base}_quantized", q),
                      new_initializer(graph, f"{base}_scale", scale),
                      new_initializer(graph, f"{base}_zero_point", np.zeros_like(scale,
                                                                                 np.int8))]
            dq = ir.node("DequantizeLinear", inputs=inputs, name=f"{node.name}_weight",
                         attributes={"axis": axis} if spec["per_channel"] else {})
            dq.outputs[0].name = f"{base}_dequantized"
            graph.insert_before(node, dq)
            node.replace_input_with(1, dq.outputs[0])
            modified = True
        return ir.passes.PassResult(model, modified)
