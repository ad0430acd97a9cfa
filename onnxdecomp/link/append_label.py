"""AppendLabelPass: the decided class as a second output."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import leading_dims

LABEL = "label"


class AppendLabelPass(ir.passes.InPlacePass):
    """Add ``label`` [N] int64 = argmax of the first output ``scores`` [N, K] over its last
    axis (a tagger's [N, T, K]: ``label`` [N, T]): the column of the linked model's class
    order (class names in the metadata).

    Requires: a first graph output of rank 2 or 3. Ensures: a second graph output ``label``.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        scores = graph.outputs[0]
        lead = leading_dims(scores)
        node = ir.node("ArgMax", [scores], attributes={"axis": len(lead), "keepdims": 0},
                       name="onnxdecomp_label")
        graph.append(node)
        out = node.outputs[0]
        out.name, out.dtype = LABEL, ir.DataType.INT64
        out.shape = ir.Shape(lead)
        graph.outputs.append(out)
        return ir.passes.PassResult(model, True)
