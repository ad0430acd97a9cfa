"""AppendLabelPass: the decided class as a second output."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import leading_dims, new_initializer

LABEL = "label"


class AppendLabelPass(ir.passes.InPlacePass):
    """Add ``label`` [N] int64 = argmax of the first output ``scores`` [N, K] over its last
    axis (a tagger's [N, T, K]: ``label`` [N, T]): the column of the linked model's class
    order (class names in the metadata). One column (a module linked alone) is a detector:
    0 where its log-odds are above 0, else -1 (argmax of one column was 0 for every sample),
    computed as argmax([0, s]) - 1 with ops every opset has.

    Requires: a first graph output of rank 2 or 3. Ensures: a second graph output ``label``.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        scores = graph.outputs[0]
        lead = leading_dims(scores)
        axis = len(lead)
        detector = scores.shape is not None and scores.shape[-1] == 1
        read = scores
        if detector:
            zero = ir.node("Sub", [scores, scores], name="onnxdecomp_label_zero")
            pair = ir.node("Concat", [zero.outputs[0], scores], attributes={"axis": axis},
                           name="onnxdecomp_label_pair")
            graph.extend([zero, pair])
            read = pair.outputs[0]
        node = ir.node("ArgMax", [read], attributes={"axis": axis, "keepdims": 0},
                       name="onnxdecomp_label")
        graph.append(node)
        if detector:
            one = new_initializer(graph, "onnxdecomp_label_one", np.array(1, np.int64))
            node = ir.node("Sub", [node.outputs[0], one], name="onnxdecomp_label_detect")
            graph.append(node)
        out = node.outputs[0]
        out.name, out.dtype = LABEL, ir.DataType.INT64
        out.shape = ir.Shape(lead)
        graph.outputs.append(out)
        return ir.passes.PassResult(model, True)
