"""The channel graph: every channel of every activation, and which of them are one unit.

Every activation value with a static channel axis (axis 1) gets a *space*: one element per
channel. The op rules (:mod:`onnxdecomp.channels.rules`) unify elements that must be kept or
removed together, pin elements that cannot be removed, and record the dense consumers whose
weights read channels. A set of unified elements with no pinned member is a prunable *unit*:
one channel, seen in every tensor it flows through. Spaces tied by any unification form a
*cluster*, the group within which units are ranked against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.unionfind import UnionFind
from onnxdecomp.errors import node_error


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
    """Spaces (value name -> first element, size, feature multiplicity) over two union-finds:
    ``elements`` (channels) and ``spaces`` (clusters of values)."""

    offset: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    mult: dict[str, int] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)
    consumers: list[Consumer] = field(default_factory=list)
    elements: UnionFind = field(default_factory=UnionFind)
    spaces: UnionFind = field(default_factory=UnionFind)
    _space: dict[str, int] = field(default_factory=dict)  # value name -> space index
    _names: list[str] = field(default_factory=list)  # space index -> value name

    # --- building -------------------------------------------------------------------
    def add_space(self, value: ir.Value, size: int, mult: int = 1) -> None:
        if value.name in self.offset:
            return
        self.offset[value.name] = self.elements.add(size)
        self.size[value.name] = size
        self.mult[value.name] = mult
        self._space[value.name] = self.spaces.add()
        self._names.append(value.name)

    def has(self, value: ir.Value | None) -> bool:
        return value is not None and value.name in self.offset

    def element(self, value: ir.Value, channel: int) -> int:
        return self.offset[value.name] + channel

    def find(self, e: int) -> int:
        return self.elements.find(e)

    def unify(self, a: ir.Value, ca: int, b: ir.Value, cb: int) -> None:
        self.elements.union(self.element(a, ca), self.element(b, cb))
        self.spaces.union(self._space[a.name], self._space[b.name])

    def unify_all(self, a: ir.Value, b: ir.Value, node: ir.Node) -> None:
        """Channel c of ``a`` is channel c of ``b``."""
        if self.size[a.name] != self.size[b.name]:
            raise node_error(node, f"channel counts differ ({self.size[a.name]} vs "
                             f"{self.size[b.name]}); no coupling rule fits")
        for c in range(self.size[a.name]):
            self.unify(a, c, b, c)

    def pin(self, value: ir.Value | None) -> None:
        if self.has(value):
            start = self.offset[value.name]
            self.pinned.update(range(start, start + self.size[value.name]))

    # --- queries ----------------------------------------------------------------------
    def roots(self, value: ir.Value) -> np.ndarray:
        """Unit id (union-find root) of every channel of ``value``."""
        start = self.offset[value.name]
        return np.array([self.find(start + c) for c in range(self.size[value.name])])

    def pinned_roots(self) -> set[int]:
        return {self.find(e) for e in self.pinned}

    def cluster(self, name: str) -> str:
        """The cluster of the space of value ``name``, named by its first space."""
        return self._names[self.spaces.find(self._space[name])]

    def units(self) -> dict[int, str]:
        """Prunable units -> cluster name (the group of spaces they are ranked within)."""
        pinned = self.pinned_roots()
        out: dict[int, str] = {}
        for name, start in self.offset.items():
            cluster = self.cluster(name)
            for c in range(self.size[name]):
                r = self.find(start + c)
                if r not in pinned:
                    out.setdefault(r, cluster)
        return out

    def kept_channels(self, value: ir.Value, removed: set[int]) -> np.ndarray:
        """Indices of the channels of ``value`` that survive when ``removed`` units go."""
        return np.array([c for c, r in enumerate(self.roots(value)) if r not in removed],
                        dtype=np.int64)


def add_activation(cg: ChannelGraph, value: ir.Value) -> None:
    """Give ``value`` a space of shape[1] channels when its channel axis is static."""
    shape = value.shape
    if shape is None or len(shape) < 2 or not isinstance(shape[1], int):
        return
    cg.add_space(value, shape[1])
