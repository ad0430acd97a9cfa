"""Per-class keep ratios under a MACs budget, chosen for the modules working together.

A fidelity target treats each module alone; ``--macs B`` instead asks for modules whose
mean MACs are at most B of the parent's and spends that budget where the composed
decision needs it: an easy class gives up more channels than a class that is often
confused with others.

Each class k offers candidate modules i = 0, 1, ... from the largest (the parent itself,
exact) down, with MACs m_ki and held-out scores s_ki [n]. Composed scores S [n, K] put each
class's chosen candidate side by side, and the cost is the composed cross-entropy against
the parent's own decisions p_n:

    L(S) = mean_n [ log sum_k exp S_nk - S_n,p_n ],

a smooth stand-in for the share of flipped decisions that counts how close every sample is
to flipping. Greedy descent: starting from every class at candidate 0, step down the class
whose next candidate raises L the least per MAC saved, until the mean MACs meet B.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    macs: float  # fraction of the parent's MACs
    scores: np.ndarray  # [n] the module's score on the held-out samples


def composed_loss(scores: np.ndarray, parent_pred: np.ndarray) -> float:
    """Mean cross-entropy of softmax(scores) [n, K] against the parent's decisions."""
    m = scores.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(scores - m).sum(axis=1))
    return float(np.mean(lse - scores[np.arange(len(scores)), parent_pred]))


def allocate(candidate: Callable[[int, int], Candidate | None], classes: list[int],
             base_scores: np.ndarray, budget: float,
             on_step: Callable[[dict[int, int], np.ndarray, float], None] | None = None,
             ) -> dict[int, int]:
    """Index of the chosen candidate for each of ``classes`` (see the module docstring).

    ``candidate(k, i)`` is class k's i-th candidate, from the largest module (i = 0) down,
    or None past the smallest; it is asked only for the candidates the descent reaches.
    ``base_scores`` [n, K] are the parent's log-odds on the held-out samples: they give the
    parent's decisions and stand in for the classes not being decomposed. When even the
    smallest candidates exceed ``budget``, every class ends on its smallest.
    ``on_step(idx, scores, mean_macs)`` is called after every step (and at the start).
    """
    parent_pred = base_scores.argmax(axis=1)
    idx = dict.fromkeys(classes, 0)
    current = {k: candidate(k, 0) for k in classes}
    if any(c is None for c in current.values()):
        raise ValueError("every class needs at least one candidate")
    scores = base_scores.astype(np.float64)
    for k, c in current.items():
        scores[:, k] = c.scores
    loss = composed_loss(scores, parent_pred)
    if on_step:
        on_step(dict(idx), scores, float(np.mean([c.macs for c in current.values()])))
    while np.mean([c.macs for c in current.values()]) > budget:
        best = None
        for k in classes:
            nxt = candidate(k, idx[k] + 1)
            if nxt is None:
                continue
            trial = scores.copy()
            trial[:, k] = nxt.scores
            rise = composed_loss(trial, parent_pred) - loss
            per_mac = rise / max(current[k].macs - nxt.macs, 1e-12)
            if best is None or per_mac < best[0]:
                best = (per_mac, k, nxt, trial, rise)
        if best is None:
            break
        _, k, current[k], scores, rise = best
        loss += rise
        idx[k] += 1
        if on_step:
            on_step(dict(idx), scores, float(np.mean([c.macs for c in current.values()])))
    return idx
