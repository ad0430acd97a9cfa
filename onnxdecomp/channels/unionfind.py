"""A union-find whose representative of every set is its smallest member."""

from __future__ import annotations


class UnionFind:
    """Disjoint sets over the integers 0..n-1, grown in blocks by ``add``.

    The smallest member represents its set, so representatives do not depend on the order
    of the unions: the channel units they name stay the same whatever order the rules run.
    """

    def __init__(self) -> None:
        self._parent: list[int] = []

    def __len__(self) -> int:
        return len(self._parent)

    def add(self, count: int = 1) -> int:
        """``count`` new singleton sets; returns the first new member."""
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        return start

    def find(self, e: int) -> int:
        parent = self._parent
        while parent[e] != e:
            parent[e] = parent[parent[e]]  # path halving
            e = parent[e]
        return e

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)
