"""The channel graph: every channel of every activation, and which of them are one unit.

Every activation value with static channel axes gets a *space*: one element per channel. The
channel axes are axis 1 for images and features ([N, C, ...]); a recurrent op's hidden units
sit on the last axis, and its Y [T, D, N, H] and Y_h [D, N, H] put the units of its D
directions on two axes, (1, 3) and (0, 2): channel d * H + h, row-major over the axes in the
order ``axes`` lists them. The op rules (:mod:`onnxdecomp.channels.rules`) unify elements
that must be kept or removed together, pin elements that cannot be removed, and record the
dense consumers whose weights read channels. A set of unified elements with no pinned member
is a prunable *unit*: one channel, seen in every tensor it flows through. Spaces tied by any
unification form a *cluster*, the group within which units are ranked against each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.unionfind import UnionFind
from onnxdecomp.errors import node_error


@dataclass
class Consumer:
    """A dense op whose weights read the channels of ``value`` (its input 0).

    ``kind`` is "conv" (weight columns ordered channel, kernel...), "gemm" (features,
    channel c owning ``mult`` consecutive features) or "rnn" (a recurrent op reading the
    features on the last axis of X [T, N, I] through W, rows ordered direction, gate, unit)
    or "rnn_state" (one direction's R [G*H, H] reading that direction's units of Y one step
    back, h_{t-1}, rows ordered gate, unit) or "seq" (a MatMul over the last axis of a
    sequence, [N, T, F] or [T, N, F]: the features at every step).
    """

    node: ir.Node
    value: ir.Value
    kind: str
    direction: int = 0  # "rnn_state": the direction whose own previous state R reads
    batch: int = 0  # "seq": the axis of its input that holds the samples (the other is time)

    @property
    def key(self) -> str:
        """Unique among consumers: the node's name, and the direction of a state reader."""
        return f"{self.node.name}/R{self.direction}" if self.kind == "rnn_state" else \
            self.node.name

    @property
    def batch_axis(self) -> int:
        """Where the samples are in its input: X [T, N, I], Y [T, D, N, H]."""
        return {"rnn": 1, "rnn_state": 2}.get(self.kind, self.batch)

    @property
    def source(self) -> str:
        """The name under which the statistics of its input columns are kept: the input
        value's (shared by every consumer of the value), the consumer's own for a state
        reader (its columns are one direction's units, one step back)."""
        return self.key if self.kind == "rnn_state" else self.value.name


@dataclass
class ChannelGraph:
    """Spaces (value name -> first element, size, feature multiplicity, channel axes) over
    two union-finds: ``elements`` (channels) and ``spaces`` (clusters of values)."""

    offset: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    mult: dict[str, int] = field(default_factory=dict)
    axes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)
    consumers: list[Consumer] = field(default_factory=list)
    lookups: set[str] = field(default_factory=set)  # values that are embedding lookups
    heads: set[str] = field(default_factory=set)  # attention scores: units are whole heads
    unit_width: dict[str, int] = field(default_factory=dict)  # channels per unit, where > 1
    pinned_by: dict[str, set[str]] = field(default_factory=dict)  # op -> nodes that pinned
    # (input, output, |scale|) of each layer normalisation over the channels: pinned, but
    # output channel c is input channel c rescaled, for the criteria's sensitivities
    normalised: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    elements: UnionFind = field(default_factory=UnionFind)
    spaces: UnionFind = field(default_factory=UnionFind)
    _space: dict[str, int] = field(default_factory=dict)  # value name -> space index
    _names: list[str] = field(default_factory=list)  # space index -> value name

    # --- building -------------------------------------------------------------------
    def add_space(self, value: ir.Value, size: int, mult: int = 1,
                  axes: tuple[int, ...] = (1,)) -> None:
        if value.name in self.offset:
            return
        self.offset[value.name] = self.elements.add(size)
        self.size[value.name] = size
        self.mult[value.name] = mult
        self.axes[value.name] = tuple(axes)
        self._space[value.name] = self.spaces.add()
        self._names.append(value.name)

    def has(self, value: ir.Value | None) -> bool:
        return value is not None and value.name in self.offset

    def element(self, value: ir.Value, channel: int) -> int:
        return self.offset[value.name] + channel

    def axis(self, value: ir.Value, node: ir.Node) -> int:
        """The one channel axis of ``value``; an error naming ``node`` when it has two."""
        axes = self.axes[value.name]
        if len(axes) != 1:
            raise node_error(node, f"{value.name!r} holds channels on axes {list(axes)}; this "
                             "op has a rule for one channel axis only")
        return axes[0]

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

    def unify_projected(self, big: ir.Value, small: ir.Value, shift: int,
                        node: ir.Node) -> None:
        """Channel (i, c) of ``big`` is channel c of ``small``, whose channel axes (moved
        right by ``shift``, broadcasting's alignment) are some of ``big``'s: a selective
        kernel's attention [N, P, C, 1, 1] over its P paths [N, P, C, H, W] whose channels
        are the C a later sum over the paths shares. A unit then holds every i."""
        axes, sub = self.axes[big.name], [a + shift for a in self.axes[small.name]]
        dims, coords = self._coords(big)
        if not set(sub) < set(axes) or self.mult[big.name] != 1 or \
                self.mult[small.name] != 1 or \
                [small.shape[a - shift] for a in sub] != [dims[axes.index(a)] for a in sub]:
            raise node_error(node, f"channel counts differ ({self.size[big.name]} vs "
                             f"{self.size[small.name]}); no coupling rule fits")
        index = np.ravel_multi_index([coords[axes.index(a)] for a in sub],
                                     [dims[axes.index(a)] for a in sub])
        for e, c in enumerate(index):
            self.unify(big, e, small, int(c))

    def unify_along(self, value: ir.Value, axis: int) -> None:
        """Channels of ``value`` that differ only on ``axis`` (one of its channel axes) are
        one unit: a softmax over that axis mixes them, and keeps every other channel apart."""
        dims, coords = self._coords(value)
        coords[self.axes[value.name].index(axis)] = np.zeros_like(coords[0])
        for e, r in enumerate(np.ravel_multi_index(coords, dims)):
            self.unify(value, e, value, int(r))

    def _coords(self, value: ir.Value) -> tuple[list[int], list[np.ndarray]]:
        """The sizes of ``value``'s channel axes and every channel's index on each of them
        (channel e is row-major over the axes)."""
        dims = [value.shape[a] for a in self.axes[value.name]]
        return dims, list(np.unravel_index(np.arange(self.size[value.name]), dims))

    def pin(self, value: ir.Value | None, by: ir.Node | str | None = None) -> None:
        """Pin every channel of ``value``; ``by`` (the node, or "the graph input", ...) is
        recorded in ``pinned_by`` when it pins a channel that was not already."""
        if self.has(value):
            start = self.offset[value.name]
            elements = range(start, start + self.size[value.name])
            if by is not None and not self.pinned.issuperset(elements):
                key, name = (by, by) if isinstance(by, str) else (by.op_type, by.name)
                self.pinned_by.setdefault(key, set()).add(name)
            self.pinned.update(elements)

    # --- queries ----------------------------------------------------------------------
    def roots(self, value: ir.Value) -> np.ndarray:
        """Unit id (union-find root) of every channel of ``value``."""
        return self.roots_of(value.name)

    def roots_of(self, name: str) -> np.ndarray:
        """Unit id of every channel of the value named ``name``."""
        start = self.offset[name]
        return np.array([self.find(start + c) for c in range(self.size[name])])

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

    def partial_spaces(self) -> list[frozenset[int]]:
        """The unit sets of tensors that hold only some of their cluster's units and no
        pinned channel (the parts a Concat joins, a Slice or Split takes): ranking units
        over a whole cluster could remove all of one such tensor's channels, and a tensor
        of no channels is not a model (a Conv or pool over it fails)."""
        pinned = self.pinned_roots()
        units = self.units()
        sizes = Counter(units.values())
        out: set[frozenset[int]] = set()
        for name in self.offset:
            roots = {int(r) for r in self.roots_of(name)}
            if roots & pinned or not roots:
                continue
            if len(roots) < sizes[units[next(iter(roots))]]:
                out.add(frozenset(roots))
        return sorted(out, key=sorted)

    def input_roots(self, cons: Consumer) -> np.ndarray:
        """Unit id of every input channel a consumer reads, in its weight columns' order."""
        roots = self.roots(cons.value)
        if cons.kind != "rnn_state":
            return roots
        h = len(roots) // cons.node.inputs[1].const_value.shape[0]  # Y: D blocks of H units
        return roots[cons.direction * h:(cons.direction + 1) * h]

    def row_roots(self, cons: Consumer) -> np.ndarray | None:
        """Unit id of every weight row (output) of a consumer, or None when its output has no
        space (the logits): for a recurrent op row (d, g, h) is unit d * H + h of Y."""
        outs = [v for v in cons.node.outputs if self.has(v)]
        if not outs:
            return None
        if cons.kind == "rnn_state":  # rows (g, h) of one direction: its own units again
            own = self.input_roots(cons)
            return np.tile(own, cons.node.inputs[2].const_value.shape[1] // len(own))
        roots = self.roots(outs[0])
        if cons.kind != "rnn":
            return roots
        d, rows = cons.node.inputs[1].const_value.shape[:2]  # W [D, G*H, I]
        h = len(roots) // d
        gates = rows // h
        return np.tile(roots.reshape(d, 1, h), (1, gates, 1)).reshape(-1)

    def kept_channels(self, value: ir.Value, removed: set[int]) -> np.ndarray:
        """Indices of the channels of ``value`` that survive when ``removed`` units go."""
        return np.array([c for c, r in enumerate(self.roots(value)) if r not in removed],
                        dtype=np.int64)


def add_activation(cg: ChannelGraph, value: ir.Value, axes: tuple[int, ...] = (1,),
                   mult: int = 1) -> None:
    """Give ``value`` a space over its channel ``axes`` when they are static."""
    shape = value.shape
    if shape is None or any(not 0 <= a < len(shape) for a in axes):
        return
    dims = [shape[a] for a in axes]
    if not all(isinstance(d, int) for d in dims):
        return
    cg.add_space(value, int(np.prod(dims)) // mult, mult, axes)


def add_like(cg: ChannelGraph, value: ir.Value, source: ir.Value) -> None:
    """Give ``value`` a space on the channel axes (and multiplicity) of ``source``."""
    add_activation(cg, value, cg.axes[source.name], cg.mult[source.name])
