"""Channel-group analysis: a union-find over the channels of every activation tensor.

Every activation value with a static channel axis (axis 1) gets one element per channel.
The op rules in :mod:`onnxdecomp.rules` unify elements that must be kept or removed
together (a residual Add ties its operands' channels, Concat maps onto offset sub-spaces,
Flatten maps channel c to features [c*s, (c+1)*s)), pin elements that cannot be removed
(graph input and output, ops with no slicing rule), and record the dense "consumer" ops
(Conv, Gemm, ...) whose weights read channels. A union-find class with no pinned element is
a prunable *unit*: one channel, seen in every tensor it flows through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.errors import UnsupportedOpError


@dataclass
class Consumer:
    """A dense op whose weights read the channels of ``value`` (its input 0).

    ``kind`` is "conv" (weight columns ordered channel, kernel...) or "gemm" (features,
    channel c owning ``mult`` consecutive features).
    """

    node: ir.Node
    value: ir.Value
    kind: str


@dataclass
class ChannelGraph:
    """Spaces (value name -> first element, size, feature multiplicity) over a union-find."""

    offset: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    mult: dict[str, int] = field(default_factory=dict)
    parent: list[int] = field(default_factory=list)
    pinned: set[int] = field(default_factory=set)
    consumers: list[Consumer] = field(default_factory=list)
    _cluster: dict[str, str] = field(default_factory=dict)  # value-level union-find

    # --- building -------------------------------------------------------------------
    def add_space(self, value: ir.Value, size: int, mult: int = 1) -> None:
        if value.name in self.offset:
            return
        self.offset[value.name] = len(self.parent)
        self.size[value.name] = size
        self.mult[value.name] = mult
        self.parent.extend(range(len(self.parent), len(self.parent) + size))
        self._cluster[value.name] = value.name

    def has(self, value: ir.Value | None) -> bool:
        return value is not None and value.name in self.offset

    def element(self, value: ir.Value, channel: int) -> int:
        return self.offset[value.name] + channel

    def find(self, e: int) -> int:
        parent = self.parent
        while parent[e] != e:
            parent[e] = parent[parent[e]]
            e = parent[e]
        return e

    def unify(self, a: ir.Value, ca: int, b: ir.Value, cb: int) -> None:
        ra, rb = self.find(self.element(a, ca)), self.find(self.element(b, cb))
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        self._union_clusters(a.name, b.name)

    def unify_all(self, a: ir.Value, b: ir.Value, node: ir.Node) -> None:
        """Channel c of ``a`` is channel c of ``b``."""
        if self.size[a.name] != self.size[b.name]:
            raise UnsupportedOpError(
                f"node {node.name!r} ({node.op_type}): channel counts differ "
                f"({self.size[a.name]} vs {self.size[b.name]}); no coupling rule fits"
            )
        for c in range(self.size[a.name]):
            self.unify(a, c, b, c)

    def pin(self, value: ir.Value | None) -> None:
        if self.has(value):
            start = self.offset[value.name]
            self.pinned.update(range(start, start + self.size[value.name]))

    def _find_cluster(self, name: str) -> str:
        while self._cluster[name] != name:
            self._cluster[name] = self._cluster[self._cluster[name]]
            name = self._cluster[name]
        return name

    def _union_clusters(self, a: str, b: str) -> None:
        ra, rb = self._find_cluster(a), self._find_cluster(b)
        if ra != rb:
            self._cluster[rb] = ra

    # --- queries ----------------------------------------------------------------------
    def roots(self, value: ir.Value) -> np.ndarray:
        """Unit id (union-find root) of every channel of ``value``."""
        start = self.offset[value.name]
        return np.array([self.find(start + c) for c in range(self.size[value.name])])

    def pinned_roots(self) -> set[int]:
        return {self.find(e) for e in self.pinned}

    def units(self) -> dict[int, str]:
        """Prunable units -> cluster name (the group of spaces they are ranked within)."""
        pinned = self.pinned_roots()
        out: dict[int, str] = {}
        for name, start in self.offset.items():
            cluster = self._find_cluster(name)
            for c in range(self.size[name]):
                r = self.find(start + c)
                if r not in pinned:
                    out.setdefault(r, cluster)
        return out

    def kept_channels(self, value: ir.Value, removed: set[int]) -> np.ndarray:
        """Indices of the channels of ``value`` that survive when ``removed`` units go."""
        return np.array([c for c, r in enumerate(self.roots(value)) if r not in removed],
                        dtype=np.int64)


def analyse(model: ir.Model) -> ChannelGraph:
    """Build the channel graph of a normalised model (shapes inferred).

    Raises UnsupportedOpError naming the node and op when an op on the channel path has
    no rule: nothing is guessed.
    """
    from onnxdecomp.rules import rule_for

    cg = ChannelGraph()
    graph = model.graph
    for value in graph.inputs:
        add_activation(cg, value)
        cg.pin(value)
    for node in graph:
        if not any(cg.has(v) for v in node.inputs):
            continue  # shape arithmetic on constants, untouched by pruning
        rule = rule_for(node)
        rule.declare(node, cg)
        rule.couple(node, cg)
    for value in graph.outputs:
        cg.pin(value)
    return cg


def add_activation(cg: ChannelGraph, value: ir.Value) -> None:
    """Give ``value`` a space of shape[1] channels when its channel axis is static."""
    shape = value.shape
    if shape is None or len(shape) < 2 or not isinstance(shape[1], int):
        return
    cg.add_space(value, shape[1])
