"""ExpandBinaryLogitPass: a binary classifier's one logit becomes two classes' logits."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.weights import dense_bias, dense_weight, set_dense_gemm


class ExpandBinaryLogitPass(ir.passes.InPlacePass):
    """Replace a dense head with one output z ([N, 1], often through a Sigmoid) by one with
    two, [0, z]: the softmax over them is [1 - sigmoid(z), sigmoid(z)], the same classifier
    as two classes (Keras' ``Dense(1, activation="sigmoid")``, a logistic regression).

    A trailing Sigmoid goes, like a trailing Softmax (the log-odds need logits): class 1's
    log-odds is z, class 0's -z.

    An output [N] (``p.squeeze(1)``, ``view(-1)``) is the same classifier: the Squeeze or
    Reshape that drops the unit axis goes too.

    Requires: one graph output [N, 1] made by a Gemm with constant weights (the normalised
    dense form), directly or through a Sigmoid, or [N] made of that by a Squeeze or Reshape.
    Ensures: that Gemm makes [N, 2] logits (transB, alpha 1, beta 1), the graph output under
    its old name; anything else is left.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        if len(graph.outputs) != 1:
            return ir.passes.PassResult(model, False)
        final = out = graph.outputs[0]
        unit = _unit_axis_drop(out)  # [N, 1] -> [N]
        if unit is not None:
            out = unit.inputs[0]
        if out.shape is None or len(out.shape) != 2 or out.shape[1] != 1:
            return ir.passes.PassResult(model, False)
        readers = 0 if unit is None else 1  # of ``out``, besides the graph output
        node, z = out.producer(), out
        if node is not None and node.op_type == "Sigmoid":
            if len(out.uses()) > readers:
                return ir.passes.PassResult(model, False)
            z, readers = node.inputs[0], 1
            node = z.producer()
        if node is None or node.op_type != "Gemm" or len(z.uses()) > readers:
            return ir.passes.PassResult(model, False)
        if node.attributes.get_int("transA", 0) or node.inputs[1].const_value is None:
            return ir.passes.PassResult(model, False)
        w = dense_weight(node)  # [1, F]
        b, _ = dense_bias(node, 1)
        two_w = np.concatenate([np.zeros_like(w), w]).astype(w.dtype)
        two_b = np.array([0.0, float(b[0])], dtype=w.dtype)
        set_dense_gemm(graph, node, two_w, two_b, "two_class")
        logits = node.outputs[0]
        name = final.name
        graph.outputs[0] = logits
        if unit is not None:
            graph.remove(unit, safe=True)
        if z is not out:  # the Sigmoid goes
            graph.remove(out.producer(), safe=True)
        if unit is not None or z is not out:
            final.name = None  # its name passes to the logits
        logits.name = name
        logits.shape = ir.Shape([out.shape[0], 2])
        return ir.passes.PassResult(model, True)


def _unit_axis_drop(value: ir.Value) -> ir.Node | None:
    """The Squeeze or Reshape that makes ``value`` [N] of an [N, 1], if it is one."""
    node = value.producer()
    if value.shape is None or len(value.shape) != 1 or node is None or \
            node.op_type not in ("Squeeze", "Reshape"):
        return None
    src = node.inputs[0].shape
    return node if src is not None and len(src) == 2 and src[1] == 1 else None
