"""Concern identification: which channel units a class's module keeps.

A *concern* is what a module must serve: one class (a module, scored as the class's
log-odds) or a subset of classes (a union-linked sub-task model, scored by their logits).
Criteria score every prunable unit for a concern; the formulas below say "class k" for the
one-class case, where a subset weighs its classes' samples equally. A module keeps, in every
cluster of coupled spaces, the ``ceil(keep * n)`` best units. A unit of a residual group is
one score for the whole group, so a channel goes only if the group as a whole can spare it.

- ``refit`` (default): greedy backward elimination, in each cluster, of the units whose
  removal the least-squares refit of the layers reading them absorbs best, the error of
  each output weighted by its sensitivity to class k's log-odds (see ``refit_scores``).
- ``logodds``: the estimated change of class k's log-odds when the unit is removed. The
  sensitivity |d s_k / d y| of every consumer output is propagated back from the head
  (|d s_k / d z| measured on the calibration data) through the consumers' weights, damped by
  each channel's active fraction (ReLU gating), and through layer normalisations over the
  channels (times |scale|: a pre-norm transformer reads its stream only through them);
  removing input channel i of a consumer moves
  its outputs by std(w_oi . x_i) (from the Gram matrix, class k and the rest weighted
  equally), so the unit's score is sum_o sens_o * std(w_oi . x_i) over every consumer that
  reads it.
- ``activation``: Pan & Rajan's criterion, the fraction of positions where the channel is
  active (> 0) on samples of class k.
- ``random``: seeded random scores, the baseline that shows whether a criterion informs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onnxdecomp.channels import ChannelGraph, consumer_bias, consumer_weight
from onnxdecomp.decompose.align import kept_count
from onnxdecomp.decompose.profile import Profile
from onnxdecomp.errors import OnnxDecompError

CRITERIA = ("refit", "logodds", "activation", "random")


@dataclass(frozen=True, eq=False)
class Concern:
    """The classes a module decides and what its pruning is weighed by.

    ``weights`` [K]: the weight of each parent class's calibration samples (sums to 1).
    ``head`` [K]: |d output / d z_j|, how much the module's output depends on logit j.
    """

    classes: tuple[int, ...]
    weights: np.ndarray
    head: np.ndarray


def class_concern(prof: Profile, k: int) -> Concern:
    """A one-class module: class k's log-odds against the rest (see ``class_weights``)."""
    return Concern((k,), class_weights(prof, k), prof.head_sens[k])


def subset_concern(prof: Profile, classes: tuple[int, ...]) -> Concern:
    """A sub-task model over ``classes``: their samples weigh equally, their logits are the
    output (sensitivity 1), the other classes' samples and logits do not count."""
    w = np.zeros(prof.num_classes)
    w[list(classes)] = 1.0
    w = np.where(prof.samples > 0, w, 0.0)
    if not w.sum():
        raise OnnxDecompError(
            f"no calibration sample of classes {list(classes)}: give data with them")
    head = np.zeros(prof.num_classes)
    head[list(classes)] = 1.0
    return Concern(tuple(classes), w / w.sum(), head)


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
        w = consumer_weight(cons).astype(np.float64)
        yield cons, w.reshape(w.shape[0], -1)


def score_units(criterion: str, concern: Concern, cg: ChannelGraph, prof: Profile,
                seed: int = 0) -> dict[int, float]:
    """Score of every prunable unit for the concern (higher = more needed)."""
    units = cg.units()
    classes = list(concern.classes)
    if criterion == "random":
        key = seed * 1000 + classes[0] if len(classes) == 1 else [seed, *classes]
        rng = np.random.default_rng(key)
        return {u: float(v) for u, v in zip(sorted(units), rng.random(len(units)))}
    scores = dict.fromkeys(units, 0.0)
    if criterion == "activation":
        for cons in cg.consumers:
            freq = prof.act_freq[cons.source][classes].mean(axis=0)
            for c, r in enumerate(cg.input_roots(cons)):
                if r in scores:
                    scores[r] = max(scores[r], float(freq[c]))
        return scores
    if criterion == "refit":
        return refit_scores(concern, cg, prof)
    if criterion != "logodds":
        raise ValueError(f"unknown criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    _, damage = propagate_logodds(concern, cg, prof)
    for r in scores:
        scores[r] = damage.get(r, 0.0)
    return scores


def _output_sens(cons, cg: ChannelGraph, concern: Concern, sens: dict[int, float]):
    """|d output / d row| of a consumer: the head's for the logits, whether the consumer
    writes them or an elementwise op after it does (a sequence MatMul's bias Add)."""
    if cons.node.outputs[0].is_graph_output():
        return concern.head
    rows = cg.row_roots(cons)
    graph = cons.node.graph
    logits = graph.outputs[0] if graph is not None else None
    if rows is not None and cg.has(logits):
        index = {r: i for i, r in enumerate(cg.roots(logits).tolist())}
        if all(r in index for r in rows.tolist()):
            return concern.head[[index[r] for r in rows.tolist()]]
    return np.array([sens.get(r, 0.0) for r in rows])


def propagate_logodds(concern: Concern, cg: ChannelGraph, prof: Profile):
    """(sensitivity |d s_k / d unit|, removal damage) of every unit, from the head back."""
    weights = concern.weights
    sens: dict[int, float] = {}
    arrays = list(_consumer_arrays(cg))
    damage: dict[int, float] = {}
    for _ in range(2):  # a residual unit is written and read by several consumers
        new_sens: dict[int, float] = {}
        damage = {}
        for cons, w in reversed(arrays):
            s_out = _output_sens(cons, cg, concern, sens)
            roots = cg.input_roots(cons)
            span = w.shape[1] // len(roots)
            gram = prof.gram(cons.key, weights)
            mean = gram[:-1, -1]
            cov = gram[:-1, :-1] - np.outer(mean, mean)
            freq = np.tensordot(weights, prof.act_freq[cons.source], axes=1)
            for c, r in enumerate(roots):
                cols = slice(c * span, (c + 1) * span)
                wc = w[:, cols]
                var = np.einsum("oi,ij,oj->o", wc, cov[cols, cols], wc)
                damage[r] = damage.get(r, 0.0) + float(s_out @ np.sqrt(np.maximum(var, 0)))
                new_sens[r] = new_sens.get(r, 0.0) + float(
                    s_out @ np.abs(wc).sum(axis=1)) * float(freq[c])
        _through_normalisations(cg, new_sens)
        sens = new_sens
    return sens, damage


def _through_normalisations(cg: ChannelGraph, sens: dict[int, float]) -> None:
    """A layer normalisation over the channels pins them but passes each channel on,
    rescaled: its output channels' sensitivities, times |scale|, reach its input's (a
    pre-norm transformer's residual stream is read through one by every layer)."""
    for x, y, scale in cg.normalised:
        xs, ys = cg.offset[x], cg.offset[y]
        for c in range(cg.size[x]):
            s = sens.get(cg.find(ys + c), 0.0)
            if s:
                r = cg.find(xs + c)
                sens[r] = sens.get(r, 0.0) + s * float(scale[c])


def _unit_blocks(roots: np.ndarray, keep_ch: list[int], span: int, wanted):
    """(units, column indices [n, block]) of the kept columns, grouped by block size: all
    the columns of one unit form one block, since a unit goes as a whole (a head's d
    columns, a normalisation group's k channels, a unit in both directions of a
    bidirectional layer), and dropping them together costs more than each alone."""
    blocks: dict[int, list[int]] = {}
    for i, c in enumerate(keep_ch):
        r = int(roots[c])
        if r in wanted:
            blocks.setdefault(r, []).extend(range(i * span, (i + 1) * span))
    by_size: dict[int, list[int]] = {}
    for r, cols in blocks.items():
        by_size.setdefault(len(cols), []).append(r)
    for units in by_size.values():
        yield units, np.array([blocks[r] for r in units])


def refit_scores(concern: Concern, cg: ChannelGraph, prof: Profile, ridge: float = 1e-3,
                 chunk: float = 0.2, floor: float = 0.1) -> dict[int, float]:
    """Greedy backward elimination in each cluster (ThiNet, with the least-squares refit).

    For a consumer with input Gram G, weights W~ and output sensitivities u (from
    ``propagate_logodds``), the kept columns S give coefficients beta = P G_S: W~^T with
    P = (G_SS + lambda I)^-1; dropping the column block B of a unit (all its columns at
    once: a head's d, a normalisation group's k, a unit in both directions) raises the
    u-weighted squared reconstruction error by sum_o u_o^2 beta_Bo^T (P_BB)^-1 beta_Bo.
    Each round
    drops the ``chunk`` of the remaining units with the smallest rise summed over every
    consumer that reads them; a unit's score is the round it survived to. Elimination stops
    at ``floor`` of the cluster (the smallest keep ratio the tuner tries).

    The sensitivities reach two dense layers back from the head (``propagate_logodds``).
    Further back, a consumer's outputs all weigh the same: the plain reconstruction error.
    Before, they all weighed zero, and those layers' units were ranked by their order. Fixed
    keep ratios, 3,000 test images, align 1 (before -> after):
    - ResNet-20 at 52.9% of the MACs: 4.60 -> 3.70 pp; at 66.2%: 1.97 -> 1.40 pp;
    - ResNet-8 at 38.9%: 6.13 -> 4.67 pp; at 53.4%: 1.53 -> 1.23 pp;
    - LeNet-5 at 29.2%: 1.63 -> 0.63 pp;
    - MobileNetV2-mini at 68.7%: 5.00 -> 0.53 pp.

    A recurrent layer's own R (a state reader) is refitted but does not rank its units: its
    rise, measured on the parent's trajectories for every gate of every unit, says how well
    the other units predict one, not what the class needs, and outweighs the head's
    class-weighted rise. On the CLINC150 LSTM at 44% of the MACs, ranking with it lost
    3.27 pp (random units 2.78 pp, Pan & Rajan's activation 2.40 pp), without it 1.20 pp.

    Spending a MACs budget across clusters by these rises per MAC saved was tried and lost to
    one keep ratio everywhere (LeNet-5, 2-class unions: conv1 alone went, 16 pp at 28% MACs
    against 1.2 pp at 29%): the rises of different layers are not on one scale.
    """
    weights = concern.weights
    sens, _ = propagate_logodds(concern, cg, prof)
    units = cg.units()
    data = []
    for cons, w in _consumer_arrays(cg):
        if cons.kind == "rnn_state":
            continue  # see the docstring: it ranks by redundancy, not by the class
        b = consumer_bias(cons, w.shape[0])
        wt = np.concatenate([w, b[:, None]], axis=1)  # [O, D + 1]
        u = _output_sens(cons, cg, concern, sens)
        if not np.any(u):  # beyond the sensitivities' reach: every output weighs the same
            u = np.ones_like(u)
        roots = cg.input_roots(cons)
        span = w.shape[1] // len(roots)
        data.append((prof.gram(cons.key, weights), wt * u[:, None], roots, span))
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
                for unit_ids, idx in _unit_blocks(roots, keep_ch, span, rise):
                    # Every block of one size at once: one batched solve.
                    bb = beta[idx]  # [n, block, O]
                    sol = np.linalg.solve(p[idx[:, :, None], idx[:, None, :]], bb)
                    per_unit = (bb * sol).reshape(len(unit_ids), -1).sum(axis=1)
                    for r, value in zip(unit_ids, per_unit.tolist()):
                        rise[r] += value
            n_drop = max(1, min(int(chunk * len(remaining)), len(remaining) - stop))
            for r in sorted(remaining, key=lambda q: (rise[q], q))[:n_drop]:
                scores[r] = step
                remaining.discard(r)
                removed.add(r)
            step += 1
        for r in remaining:
            scores[r] = step
    return scores


def kept_counts(clusters: dict[int, str], keep: float, align: int = 1,
                align_of: dict[str, int] | None = None) -> dict[str, int]:
    """Units kept in each cluster at ``keep``: ceil(keep * n), at least one, rounded up to a
    multiple of ``align`` (``align.kept_count``), or of ``align_of[cluster]`` for the
    clusters it names."""
    return {cl: kept_count(n, keep, (align_of or {}).get(cl, align))
            for cl, n in Counter(clusters.values()).items()}


def remove_beyond(scores: dict[int, float], clusters: dict[int, str],
                  counts: dict[str, int],
                  spaces: Sequence[frozenset[int]] = ()) -> set[int]:
    """All but the ``counts[cluster]`` best units of each cluster; of each unit set in
    ``spaces`` (``ChannelGraph.partial_spaces``: tensors holding part of a cluster) the best
    unit stays when all would go, so a cluster may keep a unit more than its count."""
    def rank(u: int) -> tuple[float, int]:  # best first
        return -scores.get(u, 0.0), u

    by_cluster: dict[str, list[int]] = {}
    for u, cl in clusters.items():
        by_cluster.setdefault(cl, []).append(u)
    removed: set[int] = set()
    for cluster, members in by_cluster.items():
        removed.update(sorted(members, key=rank)[counts[cluster]:])
    for space in spaces:
        if space <= removed:
            removed.discard(min(space, key=rank))
    return removed


def choose_removed(scores: dict[int, float], clusters: dict[int, str], keep: float,
                   align: int = 1, align_of: dict[str, int] | None = None,
                   spaces: Sequence[frozenset[int]] = ()) -> set[int]:
    """Remove all but the ceil(keep * n) best units of each cluster (``kept_counts``)."""
    return remove_beyond(scores, clusters, kept_counts(clusters, keep, align, align_of),
                         spaces)
