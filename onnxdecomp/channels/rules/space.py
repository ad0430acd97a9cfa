"""Rules for ops that trade channels for positions: DepthToSpace (``nn.PixelShuffle``) and
SpaceToDepth."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules.base import Rule
from onnxdecomp.errors import node_error


class BlockMove(Rule):
    """The deep side (b = blocksize^2 times the channels) and the shallow side of a
    DepthToSpace or SpaceToDepth: deep channel i belongs to shallow channel ``unit(i)``;
    they are one unit, removed together, and the op adapts to any count."""

    to_space = True  # DepthToSpace: the input is the deep side

    def unit(self, node: ir.Node, i: int, b: int, shallow: int) -> int:
        """Which shallow channel deep channel i belongs to: ``k * C + c`` order (DCR)."""
        return i % shallow

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_activation(cg, node.outputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if cg.axes[x.name] != (1,):
            raise node_error(node, "moves channels that are not on axis 1")
        b = node.attributes.get_int("blocksize", 1) ** 2
        deep, shallow = (x, y) if self.to_space else (y, x)
        if not cg.has(y) or cg.size[deep.name] != b * cg.size[shallow.name]:
            raise node_error(node, "output channel count unknown")
        for i in range(cg.size[deep.name]):
            cg.unify(deep, i, shallow, self.unit(node, i, b, cg.size[shallow.name]))


class DepthToSpaceRule(BlockMove):
    """DepthToSpace: output channel c is made of input channels ``k * C + c`` (DCR, the
    default) or ``c * b + k`` (CRD, PyTorch's PixelShuffle)."""

    def unit(self, node: ir.Node, i: int, b: int, shallow: int) -> int:
        crd = node.attributes.get_string("mode", "DCR") == "CRD"
        return i // b if crd else i % shallow


class SpaceToDepthRule(BlockMove):
    """SpaceToDepth: output channel ``k * C + c`` is input channel c at block offset k."""

    to_space = False


RULES: dict[str, Rule] = {"DepthToSpace": DepthToSpaceRule(),
                          "SpaceToDepth": SpaceToDepthRule()}
