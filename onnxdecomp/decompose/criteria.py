"""Concern identification: which channel units a class's module keeps.

Criteria score every prunable unit for class k; a module keeps, in every cluster of coupled
spaces, the ``ceil(keep * n)`` best units. A unit of a residual group is one score for the
whole group, so a channel goes only if the group as a whole can spare it.

- ``refit`` (default): greedy backward elimination, in each cluster, of the units whose
  removal the least-squares refit of the layers reading them absorbs best, the error of
  each output weighted by its sensitivity to class k's log-odds (see ``refit_scores``).
- ``logodds``: the estimated change of class k's log-odds when the unit is removed. The
  sensitivity |d s_k / d y| of every consumer output is propagated back from the head
  (|d s_k / d z| measured on the calibration data) through the consumers' weights, damped by
  each channel's active fraction (ReLU gating); removing input channel i of a consumer moves
  its outputs by std(w_oi . x_i) (from the Gram matrix, class k and the rest weighted
  equally), so the unit's score is sum_o sens_o * std(w_oi . x_i) over every consumer that
  reads it.
- ``activation``: Pan & Rajan's criterion, the fraction of positions where the channel is
  active (> 0) on samples of class k.
- ``random``: seeded random scores, the baseline that shows whether a criterion informs.
"""

from __future__ import annotations

import math

import numpy as np

from onnxdecomp.channels import ChannelGraph, dense_bias, dense_weight
from onnxdecomp.decompose.profile import Profile

CRITERIA = ("refit", "logodds", "activation", "random")


def class_weights(prof: Profile, k: int, focus: float = 0.5) -> np.ndarray:
    """``focus`` of the mass on class k, the rest spread evenly over the other classes."""
    kk = prof.num_classes
    w = np.full(kk, (1.0 - focus) / max(kk - 1, 1))
    w[k] = focus
    present = prof.samples > 0
    w = np.where(present, w, 0.0)
    return w / w.sum()


def _consumer_arrays(cg: ChannelGraph):
    for cons in cg.consumers:
        w = dense_weight(cons.node).astype(np.float64)
        yield cons, w.reshape(w.shape[0], -1)


def score_units(criterion: str, k: int, cg: ChannelGraph, prof: Profile,
                seed: int = 0) -> dict[int, float]:
    """Score of every prunable unit for class k (higher = more needed)."""
    units = cg.units()
    if criterion == "random":
        rng = np.random.default_rng(seed * 1000 + k)
        return {u: float(v) for u, v in zip(sorted(units), rng.random(len(units)))}
    scores = dict.fromkeys(units, 0.0)
    if criterion == "activation":
        for cons in cg.consumers:
            freq = prof.act_freq[cons.value.name][k]
            for c, r in enumerate(cg.roots(cons.value)):
                if r in scores:
                    scores[r] = max(scores[r], float(freq[c]))
        return scores
    if criterion == "refit":
        return refit_scores(k, cg, prof)
    if criterion != "logodds":
        raise ValueError(f"unknown criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    _, damage = propagate_logodds(k, cg, prof)
    for r in scores:
        scores[r] = damage.get(r, 0.0)
    return scores


def _output_sens(cons, cg: ChannelGraph, prof: Profile, k: int, sens: dict[int, float]):
    out = cons.node.outputs[0]
    if out.is_graph_output():
        return prof.head_sens[k]
    return np.array([sens.get(r, 0.0) for r in cg.roots(out)])


def propagate_logodds(k: int, cg: ChannelGraph, prof: Profile):
    """(sensitivity |d s_k / d unit|, removal damage) of every unit, from the head back."""
    weights = class_weights(prof, k)
    sens: dict[int, float] = {}
    arrays = list(_consumer_arrays(cg))
    damage: dict[int, float] = {}
    for _ in range(2):  # a residual unit is written and read by several consumers
        new_sens: dict[int, float] = {}
        damage = {}
        for cons, w in reversed(arrays):
            s_out = _output_sens(cons, cg, prof, k, sens)
            x = cons.value
            roots = cg.roots(x)
            span = w.shape[1] // len(roots)
            gram = prof.gram(cons.node.name, weights)
            mean = gram[:-1, -1]
            cov = gram[:-1, :-1] - np.outer(mean, mean)
            freq = np.tensordot(weights, prof.act_freq[x.name], axes=1)
            for c, r in enumerate(roots):
                cols = slice(c * span, (c + 1) * span)
                wc = w[:, cols]
                var = np.einsum("oi,ij,oj->o", wc, cov[cols, cols], wc)
                damage[r] = damage.get(r, 0.0) + float(s_out @ np.sqrt(np.maximum(var, 0)))
                new_sens[r] = new_sens.get(r, 0.0) + float(
                    s_out @ np.abs(wc).sum(axis=1)) * float(freq[c])
        sens = new_sens
    return sens, damage


def refit_scores(k: int, cg: ChannelGraph, prof: Profile, ridge: float = 1e-3,
                 chunk: float = 0.2, floor: float = 0.1) -> dict[int, float]:
    """Greedy backward elimination in each cluster (ThiNet, with the least-squares refit).

    For a consumer with input Gram G, weights W~ and output sensitivities u (from
    ``propagate_logodds``), the kept columns S give coefficients beta = P G_S: W~^T with
    P = (G_SS + lambda I)^-1; dropping the column block B of a unit raises the u-weighted
    squared reconstruction error by sum_o u_o^2 beta_Bo^T (P_BB)^-1 beta_Bo. Each round
    drops the ``chunk`` of the remaining units with the smallest rise summed over every
    consumer that reads them; a unit's score is the round it survived to. Elimination stops
    at ``floor`` of the cluster (the smallest keep ratio the tuner tries).
    """
    weights = class_weights(prof, k)
    sens, _ = propagate_logodds(k, cg, prof)
    units = cg.units()
    data = []
    for cons, w in _consumer_arrays(cg):
        b, _ = dense_bias(cons.node, w.shape[0])
        wt = np.concatenate([w, b[:, None]], axis=1)  # [O, D + 1]
        u = _output_sens(cons, cg, prof, k, sens)
        roots = cg.roots(cons.value)
        span = w.shape[1] // len(roots)
        data.append((prof.gram(cons.node.name, weights), wt * u[:, None], roots, span))
    by_cluster: dict[str, list[int]] = {}
    for r, cl in units.items():
        by_cluster.setdefault(cl, []).append(r)
    scores: dict[int, float] = {}
    for members in by_cluster.values():
        member_set = set(members)
        readers = [d for d in data if member_set.intersection(d[2].tolist())]
        remaining, removed, step = set(members), set(), 0
        stop = max(1, math.ceil(floor * len(members)))
        while len(remaining) > stop:
            rise = dict.fromkeys(remaining, 0.0)
            for gram, wu, roots, span in readers:
                keep_ch = [c for c, r in enumerate(roots) if r not in removed]
                cols = np.concatenate([np.arange(c * span, (c + 1) * span) for c in keep_ch]
                                      + [np.array([gram.shape[0] - 1])])
                a = gram[np.ix_(cols, cols)]
                a = a + ridge * float(np.trace(a)) / len(cols) * np.eye(len(cols))
                p = np.linalg.inv(a)
                beta = p @ (gram[cols] @ wu.T)  # [S, O]
                for pos, c in enumerate(keep_ch):
                    r = roots[c]
                    if r not in rise:
                        continue
                    blk = slice(pos * span, (pos + 1) * span)
                    bb = beta[blk]
                    rise[r] += float(np.sum(bb * np.linalg.solve(p[blk, blk], bb)))
            n_drop = max(1, min(int(chunk * len(remaining)), len(remaining) - stop))
            for r in sorted(remaining, key=lambda q: (rise[q], q))[:n_drop]:
                scores[r] = step
                remaining.discard(r)
                removed.add(r)
            step += 1
        for r in remaining:
            scores[r] = step
    return scores


def choose_removed(scores: dict[int, float], clusters: dict[int, str], keep: float) -> set[int]:
    """Remove all but the ceil(keep * n) best units of each cluster (at least one stays)."""
    by_cluster: dict[str, list[int]] = {}
    for u, cl in clusters.items():
        by_cluster.setdefault(cl, []).append(u)
    removed: set[int] = set()
    for members in by_cluster.values():
        n_keep = max(1, math.ceil(keep * len(members) - 1e-9))
        ranked = sorted(members, key=lambda u: (-scores.get(u, 0.0), u))
        removed.update(ranked[n_keep:])
    return removed
