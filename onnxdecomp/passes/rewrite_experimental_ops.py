"""RewriteExperimentalOpsPass: ONNX's old experimental ops as the standard ops they compute."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import NodeSteps, is_default_domain, replace_node


class RewriteExperimentalOpsPass(ir.passes.InPlacePass):
    """Write the experimental ops of ONNX's first opsets that ONNX Runtime still runs, and
    that old exporters (Caffe2, CNTK, the ONNX model zoo's opset-7/8 models) wrote, as
    standard ops:

    - ImageScaler:        y = scale * x + bias[c]  (bias over the channels, axis 1)
    - Affine:             y = alpha * x + beta
    - ScaledTanh:         y = alpha * tanh(beta * x)
    - ParametricSoftplus: y = alpha * softplus(beta * x)

    They have no channel rule, and the standard forms need none beyond Mul, Add, Tanh and
    Softplus: ImageScaler's bias becomes a [1, C, 1, ...] constant, sliced with the channels.

    Requires: nothing. Ensures: none of those four ops is left in the default domain.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            rewrite = _REWRITES.get(node.op_type)
            if rewrite is None or not is_default_domain(node.domain):
                continue
            replace_node(graph, node, rewrite(NodeSteps(graph, node), node, node.inputs[0]))
            modified = True
        return ir.passes.PassResult(model, modified)


def _image_scaler(s: NodeSteps, node: ir.Node, x: ir.Value) -> list[ir.Node]:
    y = s.op("Mul", x, s.const("scale", node.attributes.get_float("scale", 1.0)))
    bias = list(node.attributes.get_floats("bias", ()) or ())
    if bias:  # its input is an image [N, C, H, W]
        s.op("Add", y, s.const("bias", np.reshape(bias, (1, -1, 1, 1))))
    return s.nodes


def _affine(s: NodeSteps, node: ir.Node, x: ir.Value) -> list[ir.Node]:
    a = node.attributes
    y = s.op("Mul", x, s.const("alpha", a.get_float("alpha", 1.0)))
    s.op("Add", y, s.const("beta", a.get_float("beta", 0.0)))
    return s.nodes


def _scaled(inner: str):
    def rewrite(s: NodeSteps, node: ir.Node, x: ir.Value) -> list[ir.Node]:
        a = node.attributes
        y = s.op(inner, s.op("Mul", x, s.const("beta", a.get_float("beta", 1.0))))
        s.op("Mul", y, s.const("alpha", a.get_float("alpha", 1.0)))
        return s.nodes
    return rewrite


_REWRITES = {"ImageScaler": _image_scaler, "Affine": _affine, "ScaledTanh": _scaled("Tanh"),
             "ParametricSoftplus": _scaled("Softplus")}
