"""UnfuseRuntimeOpsPass: ONNX Runtime's fused ops in a saved, optimised model as the standard
ops they fuse."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import NodeSteps, new_initializer, replace_node

_MS = "com.microsoft"
FUSED = ("FusedConv", "FusedGemm", "Gelu", "BiasGelu", "QuickGelu")
_CONV = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
_GEMM = ("alpha", "beta", "transA", "transB")


def _activation(node: ir.Node, params: list[float]) -> tuple[str, dict] | None:
    """The standard op and attributes of a fused ``activation`` (None: no rewrite known)."""
    name = node.attributes.get_string("activation", "")
    if name in ("Relu", "Sigmoid", "Tanh"):
        return name, {}
    if name == "LeakyRelu" and len(params) == 1:
        return name, {"alpha": params[0]}
    if name == "HardSigmoid" and len(params) == 2:
        return name, {"alpha": params[0], "beta": params[1]}
    if name == "Clip" and len(params) == 2:
        return name, {"min": params[0], "max": params[1]}  # inputs from opset 11
    return None


def is_fused(node: ir.Node) -> bool:
    """Whether ``node`` is one of ONNX Runtime's ops that the pass writes as standard ones."""
    return node.domain == _MS and node.op_type in FUSED


class UnfuseRuntimeOpsPass(ir.passes.InPlacePass):
    """Write ``com.microsoft`` FusedConv as Conv (+ its optional summand Z) + the activation,
    FusedGemm as Gemm + the activation, Gelu and BiasGelu as Div, Erf, Add, Mul, QuickGelu
    (SiLU) as Mul and Sigmoid.

    A model saved by ONNX Runtime at its extended optimisation level
    (``SessionOptions.optimized_model_filepath``) holds these; the channel rules know the
    standard ops, and the modules, written in them, run anywhere (ONNX Runtime fuses them
    again when it loads them). An activation without a known rewrite leaves the node as it
    is, and the channel analysis then names it.

    Requires: nothing. Ensures: none of ``FUSED`` remains but a FusedConv or FusedGemm with
    an activation it has no rewrite for.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        opset = model.opset_imports.get("", 17)
        modified = False
        for node in list(graph):
            if not is_fused(node):
                continue
            if node.op_type in ("Gelu", "BiasGelu", "QuickGelu"):
                replace_node(graph, node, _gelu(graph, node))
                modified = True
                continue
            if node.op_type == "FusedConv":
                params = list(node.attributes.get_floats("activation_params", ()) or ())
                keep = _CONV
            else:
                params = [node.attributes.get_float(f"activation_{k}", None)
                          for k in ("alpha", "beta", "gamma")]
                params = [p for p in params if p is not None]
                keep = _GEMM
            act = _activation(node, params)
            if act is None or node.op_type == "FusedGemm" and len(node.inputs) > 3:
                continue
            _rewrite(graph, node, keep, act, opset)
            modified = True
        return ir.passes.PassResult(model, modified)


def _rewrite(graph: ir.Graph, node: ir.Node, keep: tuple[str, ...], act: tuple[str, dict],
             opset: int) -> None:
    name = node.name or node.op_type
    op_type = "Conv" if node.op_type == "FusedConv" else "Gemm"
    inputs = list(node.inputs[:3])
    while inputs and inputs[-1] is None:
        inputs.pop()
    base = ir.node(op_type, inputs, name=name,
                   attributes={k: v for k, v in node.attributes.items() if k in keep})
    base.outputs[0].name = f"{name}_linear"
    added, value = [base], base.outputs[0]
    summand = node.inputs[3] if node.op_type == "FusedConv" and len(node.inputs) > 3 else None
    if summand is not None:  # FusedConv's Z: y = activation(conv + Z)
        add = ir.node("Add", [value, summand], name=f"{name}_sum")
        add.outputs[0].name = f"{name}_sum"
        added.append(add)
        value = add.outputs[0]
    added.extend(_activation_nodes(graph, name, value, act, opset))
    replace_node(graph, node, added)


def _gelu(graph: ir.Graph, node: ir.Node) -> list[ir.Node]:
    """Gelu(x) = x * (1 + erf(x / sqrt 2)) / 2 (BiasGelu: of x + bias), as the exporters write
    it before opset 20's Gelu; QuickGelu(x) = x * sigmoid(alpha * x)."""
    s = NodeSteps(graph, node)
    consts = {k: s.const(k, v) for k, v in (("sqrt2", np.sqrt(2.0)), ("one", 1.0),
                                           ("half", 0.5))}
    x = node.inputs[0]
    if node.op_type == "QuickGelu":  # x * sigmoid(alpha x): SiLU at alpha 1
        alpha = node.attributes.get_float("alpha", 1.0)
        scaled = x if alpha == 1.0 else s.op("Mul", x, s.const("alpha", alpha))
        s.op("Mul", x, s.op("Sigmoid", scaled))
        return s.nodes
    if node.op_type == "BiasGelu":
        x = s.op("Add", x, node.inputs[1])
    erf = s.op("Erf", s.op("Div", x, consts["sqrt2"]))
    s.op("Mul", s.op("Mul", x, s.op("Add", erf, consts["one"])), consts["half"])
    return s.nodes


def _activation_nodes(graph: ir.Graph, name: str, x: ir.Value, act: tuple[str, dict],
                      opset: int) -> list[ir.Node]:
    op, attrs = act
    if op != "Clip" or opset < 11:
        return [ir.node(op, [x], attributes=attrs, name=f"{name}_act")]
    # From opset 11 Clip takes min and max as inputs.
    dtype = x.dtype.numpy() if x.dtype is not None else np.float32  # float16 models too
    lo = new_initializer(graph, f"{name}_min", np.array(attrs["min"], dtype))
    hi = new_initializer(graph, f"{name}_max", np.array(attrs["max"], dtype))
    return [ir.node("Clip", [x, lo, hi], name=f"{name}_act")]
