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

    The TorchScript exporter writes ``x.view(x.size(0), -1)`` as a Reshape to a computed
    ``Concat(Shape(x)[0], [-1])``: where shape inference (with data propagation) gives it
    rank 2 and x's own batch dimension, it flattens just the same.

    Requires: static shapes on x for axes 1.. (run shape inference first).
    Ensures: such Reshapes are Flatten(axis=1); other Reshapes are left for the channel
    rules to accept or reject.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Reshape" or len(node.inputs) < 2:
                continue
            x, out = node.inputs[0], node.outputs[0]
            if x.shape is None:
                continue
            dims = list(x.shape)
            if len(dims) < 2 or not all(isinstance(d, int) for d in dims[1:]):
                continue
            if not _flattens(const_array(node.inputs[1]), dims, out.shape):
                continue
            flat = ir.node("Flatten", inputs=[x], attributes={"axis": 1}, name=node.name)
            flat.outputs[0].shape, flat.outputs[0].type = out.shape, out.type
            graph.insert_after(node, flat)
            ir.convenience.replace_all_uses_with(out, flat.outputs[0], replace_graph_outputs=True)
            graph.remove(node, safe=True)
            flat.outputs[0].name = out.name
            modified = True
        return ir.passes.PassResult(model, modified)


def _flattens(target, dims: list, out_shape) -> bool:
    """Whether Reshape to ``target`` (None when computed) of a tensor shaped ``dims`` keeps
    axis 0 and merges all the others: a constant [d0, F] with d0 in (-1, 0, the batch) and F
    in (-1, prod(dims[1:])), not both -1; a computed one inferred as [dims[0], F]."""
    features = math.prod(dims[1:])
    if target is None:
        if out_shape is None or len(out_shape) != 2 or str(out_shape[0]) != str(dims[0]):
            return False
        if not isinstance(dims[0], int) and dims[0].value is None:
            return False  # an unnamed dimension equals no other
        return not isinstance(out_shape[1], int) or out_shape[1] == features
    if target.ndim != 1 or len(target) != 2:
        return False
    batch = dims[0] if isinstance(dims[0], int) else None
    d0, d1 = int(target[0]), int(target[1])
    if d0 not in (-1, 0) and d0 != batch:
        return False
    return d1 in (-1, features) and not (d0 == -1 and d1 == -1)
