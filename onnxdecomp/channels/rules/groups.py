"""Channels that go in groups: group normalisation, and reshapes that fold blocks of
consecutive channels into one channel of a coarser axis (or unfold them again).

Group normalisation takes a mean and a variance over each group of k = C / G consecutive
channels (and the positions), so a channel cannot go alone, but a whole group can: the other
groups' statistics do not change. A group is one unit.

- ``GroupNormalization`` (opset 21: scale and bias per channel; the deprecated opset 18
  form, per group, too): its groups are tied; ``num_groups`` says the kept count.
- What the torch exporters write for ``nn.GroupNorm``: ``Reshape(x, [N, G, -1])``,
  ``InstanceNormalization`` with G ones and zeros, ``Reshape`` back to x's shape, then the
  per-channel scale and shift. The first reshape folds channel ``g * k + j`` of x into
  channel g of [N, G, k * H * W] (row-major: its positions become positions ``j * H * W``
  onwards of group g); the second unfolds channel g into channels ``g * k .. g * k + k - 1``
  again. Either way the k channels of a block and their one folded channel are one unit,
  so the instance norm's G parameters and the reshape targets lose whole groups.

The same reshapes appear elsewhere: a CRNN's feature map read as a sequence of columns,
[N, C, H, W] -> [N, C * H, W], unfolds each channel into its H rows (k = H); a channel and its
rows are one unit there too.

Where a unit spans k channels, channel alignment counts in units of k
(``ChannelGraph.unit_width``): with 16-channel vectors and groups of 8 channels, groups go
in pairs.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_like
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array


def tie_blocks(cg: ChannelGraph, value: ir.Value, k: int) -> None:
    """Make every block of ``k`` consecutive channels of ``value`` one unit."""
    for c in range(cg.size[value.name]):
        if c % k:
            cg.unify(value, c - c % k, value, c)
    _mark_width(cg, value, k)


def _mark_width(cg: ChannelGraph, value: ir.Value, k: int) -> None:
    cg.unit_width[value.name] = max(k, cg.unit_width.get(value.name, 1))


def block_fold(node: ir.Node, cg: ChannelGraph) -> tuple[str, int, int] | None:
    """("fold" or "unfold", channel axis, k) of a Reshape that folds blocks of k channels of
    its input into one channel each ([N, C, H, W] -> [N, C / k, k * H * W]), or unfolds each
    channel into k ([N, G, R] -> [N, G * k, ...]), the axes before the channels unchanged;
    None for any other reshape."""
    x, y = node.inputs[0], node.outputs[0]
    if not cg.has(x) or x.shape is None or y.shape is None or cg.mult[x.name] != 1:
        return None
    axes = cg.axes[x.name]
    if len(axes) != 1:
        return None
    a = axes[0]
    xin, yout = list(x.shape), list(y.shape)
    if len(yout) <= a + 1:
        return None
    c, g = xin[a], yout[a]
    if not isinstance(c, int) or not isinstance(g, int) or c == g:
        return None
    big, small = max(c, g), min(c, g)
    if big % small:
        return None
    k = big // small
    tail_x, tail_y = xin[a + 1:], yout[a + 1:]
    static = all(isinstance(d, int) for d in tail_x + tail_y)
    if static and c * int(np.prod(tail_x)) != g * int(np.prod(tail_y)):
        return None
    if not static and c > g and len(tail_y) != 1:
        return None  # folded positions of unknown size must be one axis: [N, G, -1]
    # The axes before the channels unchanged: the same dims, or one batch axis whose size
    # the rest pins (a target of [-1, C * H, W] leaves shape inference a new symbol).
    if [str(d) for d in xin[:a]] != [str(d) for d in yout[:a]] and not (static and a == 1):
        return None
    return ("fold" if c > g else "unfold"), a, k


def couple_block_fold(node: ir.Node, cg: ChannelGraph, kind: str, k: int) -> None:
    """Tie each block of k channels to the channel it is folded into (or unfolded from):
    the block is then one unit."""
    x, y = node.inputs[0], node.outputs[0]
    blocks, coarse = (x, y) if kind == "fold" else (y, x)
    for c in range(cg.size[blocks.name]):
        cg.unify(blocks, c, coarse, c // k)
    _mark_width(cg, blocks, k)


class GroupNormRule(Rule):
    """GroupNormalization over ``num_groups`` groups of the channels (axis 1): each group one
    unit (see the module docstring); the attribute and the parameters follow the kept
    groups."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], node.inputs[0])

    def _k(self, node: ir.Node, cg: ChannelGraph) -> int:
        x = node.inputs[0]
        groups = node.attributes.get_int("num_groups", 0)
        if cg.axes[x.name] != (1,) or groups < 1 or cg.size[x.name] % groups:
            raise node_error(node, "normalises groups of a tensor whose channels are not "
                             "axis 1 in whole groups")
        return cg.size[x.name] // groups

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        tie_blocks(cg, x, self._k(node, cg))
        cg.unify_all(x, y, node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        y = node.outputs[0]
        if not ctx.changed(y):
            return
        k, keep = self._k(node, ctx.cg), ctx.kept(y)
        groups = keep[::k] // k
        node.attributes["num_groups"] = ir.AttrInt64("num_groups", len(groups))
        for i in (1, 2):
            a = const_array(node.inputs[i])
            if a is None:
                raise node_error(node, "scale and bias must be constants")
            ctx.replace(node, i, a[keep] if a.shape[0] == ctx.cg.size[y.name] else a[groups])


RULES: dict[str, Rule] = {"GroupNormalization": GroupNormRule()}
