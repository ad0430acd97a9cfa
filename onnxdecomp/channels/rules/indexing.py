"""Rules for ops that index positions: GatherND."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules.base import Rule
from onnxdecomp.errors import node_error


class GatherNDRule(Rule):
    """GatherND that indexes axes the channels are not on: output shape
    ``indices.shape[:-1] + data.shape[b + k:]`` (b = batch_dims, k = indices.shape[-1]), so
    a channel axis a >= b + k moves to a - b - k + rank(indices) - 1 and one among the
    first b stays where it is. The dynamo exporter writes an adaptive average pool whose
    output size is not a factor of its input's (torchvision's AlexNet below 224 pixels,
    a 1x1 map pooled to 6x6) as GatherND of positions on the spatial axes moved first."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if not cg.has(data):
            return
        b = node.attributes.get_int("batch_dims", 0)
        if idx.shape is None or not isinstance(idx.shape[-1], int):
            raise node_error(node, "indices' last dimension unknown")
        k, q = idx.shape[-1], len(idx.shape)
        axes = cg.axes[data.name]
        if any(b <= a < b + k for a in axes):
            raise node_error(node, "gathers channels by index; no rule")
        add_activation(cg, y, tuple(a if a < b else a - b - k + q - 1 for a in axes),
                       cg.mult[data.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if cg.has(node.inputs[0]):
            cg.unify_all(node.inputs[0], node.outputs[0], node)


RULES: dict[str, Rule] = {"GatherND": GatherNDRule()}
