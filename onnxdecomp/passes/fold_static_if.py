"""FoldStaticIfPass: an If whose condition the static shapes decide becomes its branch."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, fresh_name, is_default_domain, replace_outputs
from onnxdecomp.passes.shape_values import ShapeValues

_COMPARE = {"Equal": np.equal, "Greater": np.greater, "Less": np.less,
            "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal,
            "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


class FoldStaticIfPass(ir.passes.InPlacePass):
    """Replace ``If(cond)`` by the nodes of the branch ``cond`` picks, where ``cond`` is a
    constant or a comparison of shape values the static shapes decide.

    TorchScript writes ``nn.LocalResponseNorm`` with an If on the input's rank; no channel
    rule reads inside a subgraph, and onnx-ir's Identity elimination would make a branch
    return an outer value directly, which ONNX Runtime refuses to load. Requires: shapes
    known where the condition reads them. Ensures: such Ifs are gone, their outputs taken
    over by the branch's (names included); other Ifs are left (the channel rules name
    them).
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        values = ShapeValues.of(model)
        modified = False
        for node in list(graph):
            if node.op_type != "If" or not is_default_domain(node.domain):
                continue
            cond = _decide(node.inputs[0], values)
            if cond is None:
                continue
            branch = node.attributes["then_branch" if cond else "else_branch"].as_graph()
            if len(branch.outputs) != len(node.outputs) or any(
                    out.producer() is None or out.producer().graph is not branch
                    for out in branch.outputs):
                continue  # an outer value returned as it is (RepairSubgraphOutputsPass)
            for name in list(branch.initializers):  # constants lifted into the branch
                value = branch.initializers.pop(name)
                value.name = fresh_name(graph, name)
                graph.register_initializer(value)
            for inner in list(branch):
                branch.remove(inner)
                graph.insert_before(node, inner)
            replace_outputs(graph, node, list(branch.outputs))
            modified = True
        return ir.passes.PassResult(model, modified)


def _decide(value: ir.Value, values: ShapeValues, depth: int = 8) -> bool | None:
    """The condition as a Python bool, or None when the static shapes do not decide it."""
    array = const_array(value)
    if array is not None:
        return bool(np.ravel(array)[0]) if array.size == 1 else None
    node = value.producer()
    if node is None or depth == 0 or not is_default_domain(node.domain):
        return None
    if node.op_type == "Not":
        inner = _decide(node.inputs[0], values, depth - 1)
        return None if inner is None else not inner
    if node.op_type == "Cast" or node.op_type == "Identity":
        return _decide(node.inputs[0], values, depth - 1)
    op = _COMPARE.get(node.op_type)
    if op is None or len(node.inputs) != 2:
        return None
    args = []
    for v in node.inputs:
        a = values.static(v)
        if a is None and node.op_type in ("And", "Or", "Xor"):
            b = _decide(v, values, depth - 1)
            a = None if b is None else np.array(b)
        if a is None:
            return None
        args.append(a)
    out = op(*args)
    return bool(np.ravel(out)[0]) if np.size(out) == 1 else None
