"""FoldReshapeTargetsPass: a Reshape target computed from shapes becomes a constant."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.passes.shape_values import ShapeValues, same_dynamic_dim


class FoldReshapeTargetsPass(ir.passes.InPlacePass):
    """Replace a computed Reshape target by a constant one that means the same.

    TorchScript writes ``x.view(x.size(0), -1)`` and ``w.view(n, c, 1, 1)`` as targets built
    from Shape, Gather, Unsqueeze and Concat. Onnx's data propagation does not always see
    through them (not at opset 13 and below), and a target the channel rules cannot read
    stops the analysis. Entry by entry, a static dimension is a number and the input's own
    dynamic dimension at the same index is 0 (Reshape copies it); -1 stays. As a constant,
    the target is what the dynamo exporter writes: shape inference reads it, and pruning
    patches the channel count in it.

    Requires: shapes inferred. Ensures: such targets are initializers; a target with any
    other dynamic entry (another tensor's dimension, elsewhere) is left as it is, and so is
    a Reshape with allowzero.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type != "Reshape" or not is_default_domain(node.domain):
                continue
            if len(node.inputs) < 2 or const_array(node.inputs[1]) is not None:
                continue
            if node.attributes.get_int("allowzero", 0):
                continue
            target = _constant_target(node.inputs[0], values.entries(node.inputs[1]))
            if target is None:
                continue
            node.replace_input_with(1, new_initializer(
                graph, f"{node.inputs[1].name}_folded", np.array(target, dtype=np.int64)))
            modified = True
        return ir.passes.PassResult(model, modified)


def _constant_target(x: ir.Value, entries) -> list[int] | None:
    """The entries as Reshape numbers, or None when one is dynamic and not x's own."""
    if entries is None or x.shape is None:
        return None
    dims = list(x.shape)
    out = []
    for i, e in enumerate(entries):
        if isinstance(e, int):
            out.append(e)  # a computed 0 copies x's dimension just as a constant one does
        elif i < len(dims) and same_dynamic_dim(dims[i], e):
            out.append(0)
        else:
            return None
    return out if out.count(-1) <= 1 else None
