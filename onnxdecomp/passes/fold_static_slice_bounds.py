"""FoldStaticSliceBoundsPass: Slice bounds computed from static dimensions become constants."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.passes.shape_values import ShapeValues


class FoldStaticSliceBoundsPass(ir.passes.InPlacePass):
    """Replace a Slice's starts/ends/axes/steps computed from static dimensions by constants.

    The TorchScript exporter writes ``torch.chunk(x, 2, dim=1)`` as Slices whose bounds are
    ``(Shape(x)[1] + 1) / 2 * i``: for a static channel count these are numbers, and as
    constants the channel rules can map the sliced channels and patch the bounds to what a
    module keeps (a bound that stayed computed would halve the pruned count instead).

    Requires: shapes inferred. Ensures: every Slice bound that depends only on constants and
    on static dimensions of Shape's inputs is an initializer; others are left as they are.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type != "Slice" or not is_default_domain(node.domain):
                continue
            for i, bound in enumerate(node.inputs[1:5], start=1):
                if bound is None or const_array(bound) is not None:
                    continue
                value = values.static(bound)
                if value is None:
                    continue
                node.replace_input_with(
                    i, new_initializer(graph, f"{bound.name}_static", value.astype(np.int64)))
                modified = True
        return ir.passes.PassResult(model, modified)
