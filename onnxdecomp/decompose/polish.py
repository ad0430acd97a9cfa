"""The sequential refit as a finishing step of the parallel refit's search.

A sequential build costs a few seconds (it runs the module once per re-solved layer), the
parallel one a fraction of that, so the search runs on the parallel refit and only its
results are refitted sequentially. The sequential refit reproduces more of the parent:
measured on ResNet-20 (CIFAR-10) and ResNet-8 (Fashion-MNIST) modules it leaves 0.44-0.67
of the parallel refit's gap 1 - fidelity. So once the module found for ``target`` is refitted,
its own ratio r = (1 - f_seq) / (1 - f_par) says how far the parallel search may go:
to the goal 1 - (1 - target) / r. Whatever that search finds is refitted and kept only when
its sequential fidelity meets ``target``; a miss halves the step towards the last goal that
passed.

Requires: ``search(goal)`` returns the smallest parallel-refit module meeting ``goal``,
measured; ``refit(module)`` the same units refitted sequentially, measured; ``macs(module)``
its MACs. Ensures: the returned module meets ``target`` whenever the parallel one did, and
has no more MACs than it; at most ``TRIES`` + 1 sequential builds.
"""

from __future__ import annotations

from collections.abc import Callable

TRIES = 3  # sequential builds beyond the first module's
MIN_RATIO = 0.25  # a relaxed goal leaves at most 4 times the target's gap


def polish_search(search: Callable[[float], object], refit: Callable[[object], object],
                  macs: Callable[[object], float], target: float):
    """The smallest sequentially refitted module meeting ``target`` that the relaxed
    parallel searches reach (see the module docstring)."""
    first = search(target)
    best = refit(first)
    if best.fidelity < max(target, first.fidelity):
        best = first  # the sequential refit did not help this module
    passed, ratio = target, _gap_ratio(best, first)
    for _ in range(TRIES):
        if ratio >= 1.0:
            break
        goal = 1.0 - (1.0 - target) / ratio
        trial = search(goal)
        if macs(trial) >= macs(best):
            break  # the relaxed goal reaches nothing smaller
        done = refit(trial)
        if done.fidelity >= target:
            best, passed, ratio = done, goal, _gap_ratio(done, trial)
        else:  # too far: half way back to the goal that passed
            ratio = (1.0 - target) / (1.0 - (goal + passed) / 2)
    return best


def _gap_ratio(refitted, parallel) -> float:
    """(1 - f_seq) / (1 - f_par): the share of the parallel refit's gap that remains."""
    gap = 1.0 - parallel.fidelity
    return 1.0 if gap <= 0 else max(1.0 - refitted.fidelity, MIN_RATIO * gap) / gap
