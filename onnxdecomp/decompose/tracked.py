"""Many classes in bounded memory: the profile's per-class grams, a chunk of classes at a time.

Every consumer's gram costs (D+1)^2 float64 per class: ResNet-20's hold 2.3 M numbers a
class, 17.7 MB, so 1,000 classes would need 17 GB. When every class's grams exceed the budget
(``Settings.profile_memory``; by default 40% of the memory available when decomposition
starts), the profile holds the grams of only as many classes as fit. What every gram needs
of all the others, the sum of all classes' normalised grams, is accumulated first, one chunk
of classes per pass over the profiling samples, in class order: the same additions in the
same order as the profile of all classes, so every gram and every module is the same. A
class outside the chunk held profiles the samples again with the chunk that starts at it.

Requires: ``run(track, totals, progress)`` profiles the samples with grams for ``track``
(None: all classes); ``sizes`` the gram sides (D+1) per consumer; ``progress(passes)``, if
given, the callback for the samples of that many passes. Ensures: ``current`` holds
the grams of every class passed to ``ensure`` since, identical to the all-classes profile's.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from onnxdecomp.decompose.profile import Profile
from onnxdecomp.errors import OnnxDecompError

BUDGET_SHARE = 0.4  # of the memory available at the start, for the profile's grams


def available_memory() -> int:
    """Bytes of memory available now: /proc/meminfo's MemAvailable, else free pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


class TrackedProfile:
    """The profile of a decomposition within its memory budget (see the module docstring)."""

    def __init__(self, run: Callable[..., Profile], num_classes: int, sizes: list[int],
                 order: list[int], budget: int | None = None,
                 progress: Callable[[int], Callable[[int], None]] | None = None) -> None:
        self.run, self.k = run, num_classes
        self.class_bytes = 8 * sum(d * d for d in sizes)
        self.budget = int(BUDGET_SHARE * available_memory()) if budget is None else budget
        # the totals take one class's room; order: the classes asked first, then the rest
        self.capacity = self.budget // max(self.class_bytes, 1) - 1
        self.order = list(dict.fromkeys([*order, *range(num_classes)]))
        self.passes = 1
        if self.capacity >= num_classes:
            self.current = run(None, None, progress(1) if progress else None)
            return
        if self.capacity < 1:
            raise OnnxDecompError(
                f"the profile of one class needs {_size(2 * self.class_bytes)} with the sums of "
                f"all classes', over the {_size(self.budget)} budget: give more with "
                "{profile_memory}", options=["profile_memory"])
        step = progress(1 + -(-num_classes // self.capacity)) if progress else None
        self.totals = self._totals(step)
        self.current = run(self._chunk_from(0), self.totals, step)

    @property
    def holds_all(self) -> bool:
        return self.current.tracked is None

    def _totals(self, step: Callable[[int], None] | None) -> dict[str, np.ndarray]:
        """Per consumer, the sum over all classes of their grams divided by their rows."""
        acc: dict[str, np.ndarray] = {}
        for start in range(0, self.k, self.capacity):
            chunk = list(range(start, min(start + self.capacity, self.k)))
            prof = self.run(chunk, None, step)
            self.passes += 1
            for node in prof.consumers:
                per_class = prof.normalised(node)[0]
                total = acc.setdefault(node, np.zeros(per_class.shape[1:]))
                for i in range(len(chunk)):
                    total += per_class[i]
        return acc

    def _chunk_from(self, at: int) -> list[int]:
        return self.order[at:at + self.capacity]

    def ensure(self, needed: set[int]) -> Profile:
        """The profile, holding the grams of the ``needed`` classes (profiled again with the
        chunk starting at the first of them when it does not)."""
        tracked = self.current.tracked
        if tracked is None or needed <= set(tracked.tolist()):
            return self.current
        if len(needed) > self.capacity:
            raise OnnxDecompError(
                f"a module or union needs the profiles of {len(needed)} classes at once, "
                f"{_size((len(needed) + 1) * self.class_bytes)}, over the {_size(self.budget)} "
                "budget: give more with {profile_memory}", options=["profile_memory"])
        first = min(self.order.index(c) for c in needed)
        chunk = [c for c in self._chunk_from(first) if c not in needed]
        chunk = sorted(needed, key=self.order.index) + chunk[:self.capacity - len(needed)]
        self.current = self.run(chunk, self.totals, None)
        self.passes += 1
        return self.current


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
