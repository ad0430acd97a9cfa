"""What every channel rule is: ``couple`` (analysis) and ``prune`` (slicing), and the
context a rule prunes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.irutil import new_initializer


@dataclass
class PruneContext:
    """What a rule needs to slice its node: the channel graph and the removed units.

    ``refit(node, w, rows, key=None)`` returns consumer weights ``w`` [out, in_columns + 1]
    (``key``: the consumer's ``Consumer.key`` where a node reads several inputs; bias as the
    last column) re-solved for the kept input columns ``rows`` (bias column included), or
    just ``w[:, rows]`` when no compensation is wanted.
    """

    graph: ir.Graph
    cg: ChannelGraph
    removed: set[int]
    refit: Callable[..., np.ndarray]
    _kept: dict[str, np.ndarray] = field(default_factory=dict)

    def kept(self, value: ir.Value) -> np.ndarray | None:
        """Kept channel indices of ``value``, or None when it has no channel space."""
        if not self.cg.has(value):
            return None
        if value.name not in self._kept:
            self._kept[value.name] = self.cg.kept_channels(value, self.removed)
        return self._kept[value.name]

    def kept_features(self, value: ir.Value) -> np.ndarray | None:
        """Kept feature indices of ``value``: a map flattened into features gives channel c
        the ``mult`` features c * mult .. c * mult + mult - 1; else the kept channels."""
        kept = self.kept(value)
        mult = self.cg.mult[value.name] if kept is not None else 1
        return kept if mult == 1 else (kept[:, None] * mult + np.arange(mult)).reshape(-1)

    def changed(self, value: ir.Value) -> bool:
        k = self.kept(value)
        return k is not None and len(k) != self.cg.size[value.name]

    def replace(self, node: ir.Node, index: int, array: np.ndarray) -> None:
        """Give input ``index`` a new initializer (initializers can be shared by nodes)."""
        old = node.inputs[index]
        node.replace_input_with(index, new_initializer(self.graph, old.name, array))


class Rule:
    """Base rule: outputs with a static channel axis get a space."""

    def resolve(self, node: ir.Node) -> Rule:
        """The rule that applies to this node (a rule may depend on attributes)."""
        return self

    def origin(self, node: ir.Node) -> bool:
        """True when the node makes channels with no channel input (a lookup table)."""
        return False

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        for out in node.outputs:
            add_activation(cg, out)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        raise NotImplementedError

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        """Nothing to slice by default: the op adapts to any channel count."""


class Pinning(Rule):
    """Ops that mix channels in ways no slice can follow (grouped conv, LRN, softmax over
    channels) or that have no refit yet (ConvTranspose): their input and output channels are
    pinned and never pruned."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        for v in list(node.inputs) + list(node.outputs):
            cg.pin(v, node)
