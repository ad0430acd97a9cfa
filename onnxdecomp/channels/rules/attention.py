"""The rule for MatMuls of two activations: attention's scores and context, head by head.

Attention splits a layer's features into H heads of d (a Reshape [.., C] -> [.., H, d]:
channel h * d + j is dimension j of head h, a space on two axes) and, per head, computes
``scores = q k^T`` over the d dimensions and ``context = softmax(scores) v``. A head can go
as a whole: its d query, key and value features, its scores and its d context features are
one unit, so the projections lose d rows each per head removed and the output projection d
columns (refitted like any dense consumer), and the Reshapes say H' heads. Within a head
nothing can go: the Reshape into heads needs the same d for all.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph
from onnxdecomp.channels.rules.base import Rule


def _head_layout(cg: ChannelGraph, value: ir.Value) -> tuple[int, int, int] | None:
    """(head axis, heads, dimensions per head) of a value whose channels lie on a batch axis
    (the heads) and one of its two matrix axes, or on the batch axis alone (heads, d = 1)."""
    if not cg.has(value) or value.shape is None or cg.mult[value.name] != 1:
        return None
    axes, rank = cg.axes[value.name], len(value.shape)
    head = axes[0]
    if rank < 3 or head >= rank - 2 or not isinstance(value.shape[head], int):
        return None
    heads = value.shape[head]
    if len(axes) == 1:
        return head, heads, 1
    if len(axes) == 2 and axes[1] >= rank - 2 and cg.size[value.name] % heads == 0:
        return head, heads, cg.size[value.name] // heads
    return None


class HeadMatMul(Rule):
    """MatMul of two activations, per head (see the module docstring):

    - scores: ``a`` [.., H, T, d] (channels on the head axis and its last axis) times ``b``
      [.., H, d, S] (the head axis and the contracted one): element (h, j) of ``a`` and of
      ``b`` and head h of the product [.., H, T, S] are one unit;
    - context: ``a`` [.., H, T, S] (channels on the head axis only) times ``b`` [.., H, S, d]
      (the head axis and its last): head h of ``a``, element (h, j) of ``b`` and of the
      product [.., H, T, d].

    Any other MatMul of two activations mixes channels with rows: every channel it touches
    is pinned."""

    def _kind(self, node: ir.Node, cg: ChannelGraph) -> str | None:
        a, b = node.inputs[0], node.inputs[1]
        la, lb = _head_layout(cg, a), _head_layout(cg, b)
        if la is None or lb is None or len(a.shape) != len(b.shape) or la[:2] != lb[:2]:
            return None
        rank, da, db = len(a.shape), cg.axes[a.name], cg.axes[b.name]
        if len(da) == 2 and len(db) == 2 and da[1] == rank - 1 and db[1] == rank - 2 and \
                la[2] == lb[2]:
            return "scores"
        if len(da) == 1 and len(db) == 2 and db[1] == rank - 1:
            return "context"
        return None

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        kind, b, y = self._kind(node, cg), node.inputs[1], node.outputs[0]
        if kind == "scores":
            head, heads, _ = _head_layout(cg, b)
            cg.add_space(y, heads, 1, (head,))
        elif kind == "context":
            head = cg.axes[b.name][0]
            cg.add_space(y, cg.size[b.name], 1, (head, len(b.shape) - 1))
        else:
            super().declare(node, cg)  # a pinned space, as for any op that mixes channels

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        kind = self._kind(node, cg)
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if kind is None or not cg.has(y):
            for v in (a, b, y):
                cg.pin(v, node)
            return
        _, heads, d = _head_layout(cg, b)
        cg.heads.add(y.name)
        for h in range(heads):
            for j in range(d):
                e = h * d + j
                if kind == "scores":
                    cg.unify(a, e, b, e)
                    cg.unify(y, h, a, e)
                else:
                    cg.unify(a, h, b, e)
                    cg.unify(y, e, b, e)
