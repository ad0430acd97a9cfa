"""FoldBroadcastShapesPass: Tile repeats and Expand targets computed from shapes become
constants."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.passes.shape_values import Entry, ShapeValues, same_dynamic_dim


class FoldBroadcastShapesPass(ir.passes.InPlacePass):
    """Replace a computed Tile ``repeats`` or Expand ``shape`` by a constant that means the
    same.

    TorchScript writes ``g.repeat(1, 1, H, W)`` as Expand(g, ConstantOfShape(...)) and Tile
    with the repeats gathered from ``Shape(x)``; dynamo concatenates the batch with constant
    sizes for ``expand_as``. Onnx's shape inference then knows no output size and the
    channel rules cannot tell whether the channels pass through. Repeats fold when every
    entry is a number; an Expand target also when its dynamic entries are the input's own
    dimensions at the same axis (they become 1: Expand keeps the input's size there), or
    when the reference evaluator computes it from constants and static dimensions alone
    (TorchScript's ``expand(-1, 1, H)`` replaces -1 through Equal and Where).
    Requires: shapes inferred. Ensures: such operands are initializers; others are left.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type not in ("Tile", "Expand") or not is_default_domain(node.domain) \
                    or len(node.inputs) < 2 or const_array(node.inputs[1]) is not None:
                continue
            entries = values.entries(node.inputs[1])
            if entries is None:  # TorchScript's expand(-1, ...): Where(Equal(s, -1), 1, s)
                whole = values.static_tensor(node.inputs[1])
                if whole is None or whole.ndim != 1 or whole.dtype.kind not in "iu":
                    continue
                entries = [int(v) for v in whole]
            if node.op_type == "Expand":
                entries = _expand_target(node.inputs[0], entries)
            if entries is None or not all(isinstance(e, int) for e in entries):
                continue
            node.replace_input_with(1, new_initializer(
                graph, f"{node.inputs[1].name}_folded", np.array(entries, dtype=np.int64)))
            modified = True
        return ir.passes.PassResult(model, modified)


def _expand_target(x: ir.Value, entries: list[Entry]) -> list[Entry] | None:
    """The target with each dynamic entry that is x's own dimension (aligned at the right)
    as 1."""
    if x.shape is None:
        return None
    dims = list(x.shape)
    shift = len(entries) - len(dims)
    return [1 if i >= shift and same_dynamic_dim(dims[i - shift], e) else e
            for i, e in enumerate(entries)]
