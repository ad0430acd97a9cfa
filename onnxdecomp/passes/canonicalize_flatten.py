"""CanonicalizeFlattenPass: a Reshape that flattens [N, C, ...] to [N, F] becomes Flatten."""

from __future__ import annotations

import math

import onnx_ir as ir

from onnxdecomp.irutil import const_array


class CanonicalizeFlattenPass(ir.passes.InPlacePass):
    """Replace ``Reshape(x, [d0, F])`` by ``Flatten(x, axis=1)`` where it is the same thing.

    The dynamo exporter writes ``Reshape(x, [-1, C])`` (and CNTK ``Reshape(x, [1, F])`` for
    a batch fixed at 1): the channel count is baked into a constant that pruning would make
    stale. Flatten carries no channel count at all.

    Requires: static shapes on x for axes 1.. (run shape inference first); a constant shape.
    Ensures: such Reshapes are Flatten(axis=1); other Reshapes are left for the channel
    rules to accept or reject.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Reshape" or len(node.inputs) < 2:
                continue
            x, shape_val = node.inputs[0], node.inputs[1]
            target = const_array(shape_val)
            if target is None or target.ndim != 1 or len(target) != 2 or x.shape is None:
                continue
            dims = list(x.shape)
            if len(dims) < 2 or not all(isinstance(d, int) for d in dims[1:]):
                continue
            features = math.prod(dims[1:])
            batch = dims[0] if isinstance(dims[0], int) else None
            d0, d1 = int(target[0]), int(target[1])
            if d0 not in (-1, 0) and d0 != batch:
                continue
            if d1 not in (-1, features) or (d0 == -1 and d1 == -1):
                continue
            flat = ir.node("Flatten", inputs=[x], attributes={"axis": 1}, name=node.name)
            out = node.outputs[0]
            flat.outputs[0].shape, flat.outputs[0].type = out.shape, out.type
            graph.insert_after(node, flat)
            ir.convenience.replace_all_uses_with(out, flat.outputs[0], replace_graph_outputs=True)
            graph.remove(node, safe=True)
            flat.outputs[0].name = out.name
            modified = True
        return ir.passes.PassResult(model, modified)
