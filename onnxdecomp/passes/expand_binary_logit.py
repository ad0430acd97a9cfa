"""ExpandBinaryLogitPass: a binary classifier's one logit becomes two classes' logits."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.weights import dense_bias, dense_weight
from onnxdecomp.irutil import new_initializer


class ExpandBinaryLogitPass(ir.passes.InPlacePass):
    """Replace a dense head with one output z ([N, 1], often through a Sigmoid) by one with
    two, [0, z]: the softmax over them is [1 - sigmoid(z), sigmoid(z)], the same classifier
    as two classes (Keras' ``Dense(1, activation="sigmoid")``, a logistic regression).

    A trailing Sigmoid goes, like a trailing Softmax (the log-odds need logits): class 1's
    log-odds is z, class 0's -z.

    Requires: one graph output [N, 1] made by a Gemm with constant weights (the normalised
    dense form), directly or through a Sigmoid. Ensures: that Gemm makes [N, 2] logits
    (transB, alpha 1, beta 1), the graph output under its old name; anything else is left.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        if len(graph.outputs) != 1:
            return ir.passes.PassResult(model, False)
        out = graph.outputs[0]
        if out.shape is None or len(out.shape) != 2 or out.shape[1] != 1:
            return ir.passes.PassResult(model, False)
        node, z = out.producer(), out
        if node is not None and node.op_type == "Sigmoid":
            z = node.inputs[0]
            node = z.producer()
        if node is None or node.op_type != "Gemm" or len(z.uses()) > (1 if z is not out else 0):
            return ir.passes.PassResult(model, False)
        if node.attributes.get_int("transA", 0) or node.inputs[1].const_value is None:
            return ir.passes.PassResult(model, False)
        w = dense_weight(node)  # [1, F]
        b, _ = dense_bias(node, 1)
        two_w = np.concatenate([np.zeros_like(w), w]).astype(w.dtype)
        two_b = np.array([0.0, float(b[0])], dtype=w.dtype)
        node.replace_input_with(1, new_initializer(graph, f"{node.name}_two_class_w", two_w))
        if len(node.inputs) < 3:
            node.resize_inputs(3)
        node.replace_input_with(2, new_initializer(graph, f"{node.name}_two_class_b", two_b))
        for name, value in (("transB", ir.AttrInt64("transB", 1)),
                            ("alpha", ir.AttrFloat32("alpha", 1.0)),
                            ("beta", ir.AttrFloat32("beta", 1.0))):
            node.attributes[name] = value
        logits = node.outputs[0]
        name = out.name
        if z is not out:  # the Sigmoid goes
            sigmoid = out.producer()
            graph.outputs[0] = logits
            graph.remove(sigmoid, safe=True)
        logits.name = name
        logits.shape = ir.Shape([out.shape[0], 2])
        return ir.passes.PassResult(model, True)
