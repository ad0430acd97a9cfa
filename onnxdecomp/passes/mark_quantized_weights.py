"""MarkQuantizedWeightsPass: remember which dense layers had int8 weights, to quantise their
pruned weights again (``QuantizeWeightsPass``)."""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain

# Model metadata, internal: node name -> {"axis": a, "per_channel": bool, "qmax": 127 or 64}.
# Modules inherit it from the normalised parent; provenance.stamp drops it from what is
# written.
QUANTIZED_WEIGHTS = "onnxdecomp.quantized_weights"
_DENSE = ("Conv", "Gemm", "MatMul")


def symmetric_bound(*quantized: np.ndarray) -> int:
    """The bound of symmetric int8 weights: 127, or 64 where the quantiser reduced the range
    (``reduce_range=True``). Their largest |q| is the bound, by the scale's construction
    (max|w| / bound); all-zero weights say nothing: 127."""
    return int(max(np.abs(q.astype(np.int32)).max() for q in quantized)) or 127


class MarkQuantizedWeightsPass(ir.passes.InPlacePass):
    """Record the dense layers whose weight is ``DequantizeLinear`` of a constant int8 tensor
    with zero points 0 (ONNX Runtime's symmetric QDQ weights).

    The normalisation folds that dequantisation (the channel rules and the refit work on
    float weights); a module's weights are quantised again, per channel as before, once
    pruned and refit. Requires: constants lifted, not yet folded. Ensures: the model's
    metadata names those layers (``QUANTIZED_WEIGHTS``); the graph is unchanged.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        marked: dict[str, dict] = {}
        for node in model.graph:
            if node.op_type != "DequantizeLinear" or not is_default_domain(node.domain):
                continue
            q, scale = const_array(node.inputs[0]), const_array(node.inputs[1])
            zero = const_array(node.inputs[2]) if len(node.inputs) > 2 and \
                node.inputs[2] is not None else np.zeros(1, np.int8)
            if q is None or scale is None or zero is None or q.dtype != np.int8 or np.any(zero):
                continue
            uses = list(node.outputs[0].uses())
            if not uses or any(u.node.op_type not in _DENSE or u.idx != 1 for u in uses):
                continue
            qmax = symmetric_bound(q)
            for use in uses:
                marked[use.node.name] = {"axis": node.attributes.get_int("axis", 1),
                                         "per_channel": bool(scale.size > 1), "qmax": qmax}
        if marked:
            model.metadata_props[QUANTIZED_WEIGHTS] = json.dumps(marked, sort_keys=True)
        return ir.passes.PassResult(model, bool(marked))
