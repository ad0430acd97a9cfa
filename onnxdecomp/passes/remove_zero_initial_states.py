"""RemoveZeroInitialStatesPass: a recurrent op's all-zero initial state is its default."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import RNN_GATES, const_array, is_default_domain

INITIAL_STATES = (5, 6)  # initial_h, initial_c
# Ops that keep a tensor that is zero everywhere zero everywhere, whatever else they do.
_ZERO_PRESERVING = ("Slice", "Squeeze", "Unsqueeze", "Reshape", "Cast", "Identity", "Expand",
                    "Transpose", "Gather", "Tile")


def is_zero(value: ir.Value | None, depth: int = 8) -> bool:
    """Whether ``value`` is provably zero everywhere, from constants alone."""
    if value is None or depth == 0:
        return False
    a = const_array(value)
    if a is not None:
        return not np.any(a)
    node = value.producer()
    if node is None or not is_default_domain(node.domain):
        return False
    if node.op_type == "ConstantOfShape":
        attr = node.attributes.get("value")
        return attr is None or not np.any(attr.as_tensor().numpy())
    if node.op_type in _ZERO_PRESERVING:
        return is_zero(node.inputs[0], depth - 1)
    if node.op_type == "Concat":  # tf2onnx's bidirectional state: both directions' zeros
        return all(is_zero(v, depth - 1) for v in node.inputs)
    return False


class RemoveZeroInitialStatesPass(ir.passes.InPlacePass):
    """Drop the initial_h / initial_c inputs of RNN, GRU and LSTM nodes that are zero
    everywhere: exporters build them with the layer's hidden size baked into constants
    (``ConstantOfShape(Concat(D, N, H))``), which pruning would have to rewrite, while an
    absent initial state means zeros by the ONNX spec.

    Requires: nothing. Ensures: every remaining initial state is not provably zero; the
    nodes that built the dropped ones are left for RemoveUnusedNodesPass.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in model.graph:
            if node.op_type not in RNN_GATES or not is_default_domain(node.domain):
                continue
            for i in INITIAL_STATES:
                if len(node.inputs) > i and node.inputs[i] is not None and \
                        is_zero(node.inputs[i]):
                    node.replace_input_with(i, None)
                    modified = True
            n = len(node.inputs)
            while n > 3 and node.inputs[n - 1] is None:
                n -= 1
            if n != len(node.inputs):
                node.resize_inputs(n)
        return ir.passes.PassResult(model, modified)
