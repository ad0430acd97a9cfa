"""The smallest module that meets a fidelity target: a binary search over the keep grid."""

from __future__ import annotations

from collections.abc import Callable

from onnxdecomp.decompose.settings import KEEP_GRID


def tune_keep(build: Callable[[float], object], fidelity: Callable[[object], float],
              target: float):
    """The module of the smallest keep ratio of KEEP_GRID whose fidelity meets ``target``.

    Fidelity grows with the ratio, and 1.0 (nothing removed) is exact, so a binary search
    needs log2(19) builds, and the module at 1.0 only when no smaller one meets the target;
    ``build(keep)`` makes a module, ``fidelity(module)`` rates it.
    """
    lo, hi = 0, len(KEEP_GRID) - 1
    best = None
    while lo < hi:
        mid = (lo + hi) // 2
        module = build(KEEP_GRID[mid])
        if fidelity(module) >= target:
            best, hi = module, mid
        else:
            lo = mid + 1
    return build(KEEP_GRID[-1]) if best is None else best
