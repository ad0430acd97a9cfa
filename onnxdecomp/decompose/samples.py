"""How the calibration samples are split and counted: the seeded profile / hold-out split,
and the running count a ``progress(stage, done, total)`` callback is given."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def split_holdout(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(profiling indices, held-out indices), a seeded random split."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_hold = max(1, min(n - 1, int(round(n * holdout))))
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def running_count(progress: Callable[[str, int, int], None], stage: str,
                  total: int) -> Callable[[int], None]:
    """A step callback taking each batch's size that reports the samples done so far."""
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(stage, done, total)
    return step
