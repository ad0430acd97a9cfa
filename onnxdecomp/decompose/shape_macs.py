"""MACs of candidate modules by their kept channel counts, shared by every concern's search.

A module's MACs follow from its tensors' shapes, and those from how many channels of each
value of the parent it keeps, and from its head: a module's (``AppendLogOddsPass``) takes
the same off for every class (none, or a two-class module's log-odds folded into one row
of the last Gemm), a union's (``SelectClassesPass``) keeps its classes' rows of a dense
head, so its MACs follow how many classes it selects. The keep search and the per-group steps
(``refine.py``) ask for the MACs of many unit sets, and modules of different classes keep
the same counts with different units, so each vector of kept counts is built and counted
once per decomposition instead of once per unit set and class.

Requires: ``count()`` gives the MACs of the module without ``removed`` units.
Ensures: the number ``count()`` gives, computed once per head (its type and how many
classes it selects) and vector of kept counts.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from functools import cached_property

import numpy as np

from onnxdecomp.channels import ChannelGraph


class ShapeMacs:
    """MACs by kept counts: ``macs(removed, head, count)``."""

    def __init__(self, cg: ChannelGraph) -> None:
        self._cg = cg
        self._seen: dict[tuple, float] = {}
        self.counted = 0  # vectors built and counted
        self.asked = 0

    @cached_property
    def _roots(self) -> list[np.ndarray]:
        """The units of every value's channels, read once the first MACs are asked for (a
        fixed ``--keep`` never asks)."""
        return [self._cg.roots_of(name) for name in self._cg.offset]

    def key(self, removed: Set[int], head: object) -> tuple:
        """The head's type and how many classes it selects, and the number of channels
        every value keeps."""
        gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
        return (type(head).__name__, len(getattr(head, "classes", ())),
                *(int(r.size - np.count_nonzero(np.isin(r, gone))) for r in self._roots))

    def __call__(self, removed: Set[int], head: object, count: Callable[[], float]) -> float:
        self.asked += 1
        key = self.key(removed, head)
        if key not in self._seen:
            self._seen[key] = count()
            self.counted += 1
        return self._seen[key]
