"""How close a module stays to its parent on held-out samples: the share of the parent's
log-odds variance it reproduces (the tuning target) and the agreement of decisions."""

from __future__ import annotations

import numpy as np

FIDELITY_CLIP = 6.0  # log-odds beyond +-6 (p < 0.0025 or > 0.9975) count as saturated


def jaccard_fidelity(module_score: np.ndarray, parent_logodds: np.ndarray, k: int) -> float:
    """Agreement of a module with its parent about class k, on held-out samples.

    The parent claims class k when k is its argmax; the module claims it when its score beats
    the parent's log-odds of every other class. Fidelity = |both| / |either| (1 when neither
    ever claims it): 1 - fidelity is the share of flipped decisions about class k.
    """
    parent = parent_logodds.argmax(axis=1) == k
    others = np.delete(parent_logodds, k, axis=1).max(axis=1)
    module = module_score.reshape(-1) > others
    either = np.sum(parent | module)
    return 1.0 if either == 0 else float(np.sum(parent & module) / either)



def logodds_fidelity(module_score: np.ndarray, parent_logodds: np.ndarray, k: int) -> float:
    """Share of the variance of the parent's class-k log-odds that the module reproduces
    on held-out samples: 1 - E[(s' - s)^2] / Var(s), both clipped to +-FIDELITY_CLIP so
    that confidently rejected samples do not dominate.

    Continuous, unlike a count of flipped decisions, which saturates at 1 on a few hundred
    training-distribution samples while the test loss is still measurable.
    """
    s = np.clip(parent_logodds[:, k], -FIDELITY_CLIP, FIDELITY_CLIP)
    m = np.clip(module_score.reshape(-1), -FIDELITY_CLIP, FIDELITY_CLIP)
    var = float(np.var(s))
    if var == 0.0:
        return 1.0 if np.allclose(m, s) else 0.0
    return float(1.0 - np.mean((m - s) ** 2) / var)
