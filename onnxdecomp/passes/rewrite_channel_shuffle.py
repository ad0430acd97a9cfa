"""RewriteChannelShufflePass: Reshape -> Transpose -> Reshape that permutes channels becomes
a Gather of the channels."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import is_default_domain, new_initializer


class RewriteChannelShufflePass(ir.passes.InPlacePass):
    """Replace ShuffleNet's channel shuffle by ``Gather(x, perm, axis=1)``.

    ``x.view(N, g, C / g, H, W).transpose(1, 2).reshape(N, C, H, W)`` moves channel
    i * (C / g) + j to position j * g + i: a permutation of the channels, written on axes
    the channel rules cannot follow (the kept channels would have to fill a g x C/g grid).
    As a Gather with a constant index the channels keep their identity, and a module's
    index is renumbered to the channels it keeps. The permutation is found by running the
    three ops on channel numbers, so any split, transpose and merge that only permutes the
    channels qualifies; anything else is left as it is.

    Requires: shapes inferred. Ensures: such triples read x through one Gather.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Reshape" or not is_default_domain(node.domain):
                continue
            match = _shuffle(node)
            if match is None:
                continue
            x, perm = match
            index = new_initializer(graph, f"{node.name}_channel_order", perm)
            gather = ir.node("Gather", inputs=[x, index], attributes={"axis": 1},
                             name=node.name)
            out = node.outputs[0]
            gather.outputs[0].shape, gather.outputs[0].type = out.shape, out.type
            graph.insert_after(node, gather)
            ir.convenience.replace_all_uses_with(out, gather.outputs[0],
                                                 replace_graph_outputs=True)
            gather.outputs[0].name = out.name  # after the old one gave its name up
            modified = True
        if modified:
            ir.passes.common.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified)


def _shuffle(last: ir.Node) -> tuple[ir.Value, np.ndarray] | None:
    """(x, channel order) when ``last`` ends Reshape(x) -> Transpose -> Reshape and the three
    permute x's channels, else None."""
    t = last.inputs[0].producer()
    if t is None or t.op_type != "Transpose" or len(last.inputs[0].uses()) != 1:
        return None
    first = t.inputs[0].producer()
    if first is None or first.op_type != "Reshape" or len(t.inputs[0].uses()) != 1:
        return None
    x, mid, y = first.inputs[0], t.inputs[0], last.outputs[0]
    if x.shape is None or y.shape is None or len(x.shape) < 2:
        return None
    xdims, ydims = list(x.shape)[1:], list(y.shape)[1:]
    if not all(isinstance(d, int) for d in xdims) or ydims != xdims:
        return None
    split = _known(mid.shape, math.prod(xdims))
    perm = t.attributes.get_ints("perm", None)
    if split is None or perm is None or perm[0] != 0 or len(perm) != len(split) + 1:
        return None  # the batch axis stays first: all else has x's sample size
    c, rest = xdims[0], math.prod(xdims[1:])
    numbers = np.arange(c * rest).reshape([1, *xdims])
    out = numbers.reshape([1, *split]).transpose(perm).reshape(numbers.shape)
    order = out.reshape(c, rest)[:, 0] // rest
    if not np.array_equal(out.reshape(c, rest), numbers.reshape(c, rest)[order]):
        return None
    return x, order.astype(np.int64)


def _known(shape, size: int) -> list[int] | None:
    """The dimensions after the batch axis of ``shape``, at most one of them unknown and
    then worked out from their product ``size``."""
    if shape is None or len(shape) < 2:
        return None
    dims = list(shape)[1:]
    unknown = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    if len(unknown) > 1:
        return None
    known = math.prod(d for d in dims if isinstance(d, int))
    if unknown:
        if known == 0 or size % known:
            return None
        dims[unknown[0]] = size // known
    return dims if math.prod(dims) == size else None
