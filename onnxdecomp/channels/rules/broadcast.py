"""Rules for ops that copy a tensor over more positions: Expand and Tile."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules.base import Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array


def _shift(node: ir.Node) -> int:
    """How many axes the output has in front of the input's."""
    return len(node.outputs[0].shape) - len(node.inputs[0].shape)


class ExpandRule(Rule):
    """Expand(x, shape), a broadcast (SENet's ``gate.expand_as(x)``, ``F.normalize``'s norm).

    Where x holds channels at full size the output holds them on the same axes (moved right
    by the axes the shape adds); ``RelaxExpandTargetsPass`` has made the target 1 there, so
    nothing needs patching when channels go. An axis of size 1 broadcast to the channel
    count makes new channels (x has none there): the op they meet couples them.
    """

    def _passes(self, node: ir.Node, cg: ChannelGraph) -> bool:
        x, y = node.inputs[0], node.outputs[0]
        if not cg.has(x) or x.shape is None or y.shape is None:
            return False
        return all(x.shape[a] == y.shape[a + _shift(node)] for a in cg.axes[x.name])

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if self._passes(node, cg):
            add_activation(cg, y, tuple(a + _shift(node) for a in cg.axes[x.name]),
                           cg.mult[x.name])
        else:
            Rule.declare(self, node, cg)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if not self._passes(node, cg):
            return
        shape = const_array(node.inputs[1])
        axes = [a + _shift(node) for a in cg.axes[node.inputs[0].name]]
        if shape is not None and any(shape[a] != 1 for a in axes):
            raise node_error(node, "target shape names the channel count; run "
                             "RelaxExpandTargetsPass")
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class TileRule(Rule):
    """Tile(x, repeats): output channel j is input channel j mod C, one copy of the channels
    per repeat along their axis (usually one: a map tiled over its positions, the repeats
    then free to be computed). The op adapts to any channel count."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        if cg.has(x) and len(cg.axes[x.name]) == 1:
            add_activation(cg, node.outputs[0], cg.axes[x.name], cg.mult[x.name])
        else:
            Rule.declare(self, node, cg)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if not cg.has(x):
            return
        if len(cg.axes[x.name]) != 1 or not cg.has(y):
            raise node_error(node, "tiles a tensor whose channels lie on two axes")
        size = cg.size[x.name]
        if cg.size[y.name] != size and const_array(node.inputs[1]) is None:
            raise node_error(node, "copies the channels by computed repeats")
        for j in range(cg.size[y.name]):
            cg.unify(x, j % size, y, j)


RULES: dict[str, Rule] = {"Expand": ExpandRule(), "Tile": TileRule()}
