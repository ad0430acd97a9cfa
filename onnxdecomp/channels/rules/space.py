"""Rules for ops that trade channels for positions: DepthToSpace (``nn.PixelShuffle``) and
SpaceToDepth."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules.base import Rule
from onnxdecomp.errors import node_error


def _block(node: ir.Node, cg: ChannelGraph) -> int:
    x = node.inputs[0]
    if cg.axes[x.name] != (1,):
        raise node_error(node, "moves channels that are not on axis 1")
    return node.attributes.get_int("blocksize", 1) ** 2


class DepthToSpaceRule(Rule):
    """DepthToSpace with b = blocksize^2: output channel c is made of b input channels,
    ``c * b + k`` in CRD mode (PyTorch's PixelShuffle), ``k * C + c`` in DCR mode (the
    default); those b channels and c are one unit, removed together, and the op adapts to
    any multiple of b."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_activation(cg, node.outputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        b = _block(node, cg)
        if not cg.has(y) or cg.size[x.name] != b * cg.size[y.name]:
            raise node_error(node, "output channel count unknown")
        c_out = cg.size[y.name]
        crd = node.attributes.get_string("mode", "DCR") == "CRD"
        for i in range(cg.size[x.name]):
            cg.unify(x, i, y, i // b if crd else i % c_out)


class SpaceToDepthRule(Rule):
    """SpaceToDepth with b = blocksize^2: output channel ``k * C + c`` is input channel c at
    block offset k; the b copies of c and c are one unit."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_activation(cg, node.outputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        b = _block(node, cg)
        if not cg.has(y) or cg.size[y.name] != b * cg.size[x.name]:
            raise node_error(node, "output channel count unknown")
        c = cg.size[x.name]
        for j in range(cg.size[y.name]):
            cg.unify(y, j, x, j % c)


RULES: dict[str, Rule] = {"DepthToSpace": DepthToSpaceRule(),
                          "SpaceToDepth": SpaceToDepthRule()}
