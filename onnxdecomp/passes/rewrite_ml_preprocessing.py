"""RewriteMlPreprocessingPass: scikit-learn's preprocessing ops (``ai.onnx.ml``) in front of a
network as the standard ops they compute.

skl2onnx writes a pipeline's StandardScaler as Scaler, its Normalizer as Normalizer and its
SimpleImputer as Imputer, in front of the MLP. The channel rules know standard ops; the
modules written in them run anywhere. What ONNX Runtime computes (checked against it):

    Scaler:     y = (x - offset) * scale                      (offset, scale: one or C values)
    Normalizer: y = x / n,  n = max_j x_j (MAX), sum_j |x_j| (L1), sqrt(sum_j x_j^2) (L2),
                a row whose n is 0 left at 0
    Imputer:    y = imputed where x == replaced (x is NaN where replaced is NaN), else x

Requires: nothing. Ensures: no Scaler, Normalizer or float Imputer is left; an Imputer of
integers, or one whose attributes are not understood, stays as it is (the channel analysis
then names it).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import NodeSteps, new_initializer, replace_node

_ML = "ai.onnx.ml"
_NORMS = {"MAX": "ReduceMax", "L1": "ReduceL1", "L2": "ReduceL2"}


class RewriteMlPreprocessingPass(ir.passes.InPlacePass):
    """See the module docstring."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        opset = model.opset_imports.get("", 17)
        modified = False
        for node in list(graph):
            if node.domain != _ML:
                continue
            rewrite = {"Scaler": _scaler, "Normalizer": _normalizer,
                       "Imputer": _imputer}.get(node.op_type)
            added = rewrite(graph, node, opset) if rewrite else None
            if added:
                replace_node(graph, node, added)
                modified = True
        return ir.passes.PassResult(model, modified)


def _scaler(graph: ir.Graph, node: ir.Node, opset: int) -> list[ir.Node]:
    s = NodeSteps(graph, node, ir.DataType.FLOAT)  # ai.onnx.ml's outputs are float32
    offset = list(node.attributes.get_floats("offset", ()) or ())
    scale = list(node.attributes.get_floats("scale", ()) or ())
    y = s.as_float(node.inputs[0])
    if offset:
        y = s.op("Sub", y, s.const("offset", offset))
    if scale:
        y = s.op("Mul", y, s.const("scale", scale))
    if not s.nodes:
        s.op("Identity", y)
    return s.nodes


def _normalizer(graph: ir.Graph, node: ir.Node, opset: int) -> list[ir.Node] | None:
    reduce = _NORMS.get(node.attributes.get_string("norm", "MAX"))
    if reduce is None:
        return None
    s = NodeSteps(graph, node, ir.DataType.FLOAT)
    x = s.as_float(node.inputs[0])
    if opset >= 18:
        axes = new_initializer(graph, f"{s.name}_axes", np.array([-1], np.int64))
        n = s.op(reduce, x, axes, keepdims=1)
    else:
        n = s.op(reduce, x, axes=[-1], keepdims=1)
    zero = s.op("Equal", n, s.const("zero", 0.0))
    s.op("Div", x, s.op("Where", zero, s.const("one", 1.0), n))  # 0 / 1 = 0: left at 0
    return s.nodes


def _imputer(graph: ir.Graph, node: ir.Node, opset: int) -> list[ir.Node] | None:
    imputed = list(node.attributes.get_floats("imputed_value_floats", ()) or ())
    if not imputed or node.inputs[0].dtype != ir.DataType.FLOAT:
        return None
    replaced = node.attributes.get_float("replaced_value_float", 0.0)
    s = NodeSteps(graph, node)
    x = node.inputs[0]
    hit = (s.op("IsNaN", x) if np.isnan(replaced)
           else s.op("Equal", x, s.const("replaced", replaced)))
    s.op("Where", hit, s.const("imputed", imputed), x)
    return s.nodes
