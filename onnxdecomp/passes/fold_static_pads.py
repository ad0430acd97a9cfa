"""FoldStaticPadsPass: Pad amounts computed from static dimensions become constants."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer
from onnxdecomp.passes.shape_values import ShapeValues


class FoldStaticPadsPass(ir.passes.InPlacePass):
    """Replace a Pad's ``pads`` (and ``axes``) computed from static dimensions by constants.

    TorchScript writes ``F.pad(x, (0, 0, 0, (w - W % w) % w, 0, (w - H % w) % w))``
    (torchvision's Swin padding a map to whole windows) as a computation on ``Shape(x)``
    that ends in a Cast; for a static map it is numbers, and only as constants can the
    channel rules see that the channels are not padded.

    Requires: shapes inferred. Ensures: every such Pad operand that depends only on
    constants and static dimensions is an initializer; others are left as they are.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type != "Pad" or not is_default_domain(node.domain):
                continue
            for i in (1, 3):  # pads, axes (opset 18)
                if i >= len(node.inputs) or node.inputs[i] is None \
                        or const_array(node.inputs[i]) is not None:
                    continue
                value = values.static_tensor(node.inputs[i])
                if value is None or value.dtype.kind not in "iu" or value.ndim != 1:
                    continue
                node.replace_input_with(i, new_initializer(
                    graph, f"{node.inputs[i].name}_static", value.astype(np.int64)))
                modified = True
        return ir.passes.PassResult(model, modified)
