"""Tests for onnxdecomp.decompose.refine: per-cluster aligned steps after the keep search."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.align import kept_count
from onnxdecomp.decompose.refine import lower_counts, refine_counts
from onnxdecomp.decompose.settings import KEEP_GRID
from onnxdecomp.decompose.tune import tune_keep
from onnxdecomp.stats import model_stats


@dataclass
class Fake:
    counts: dict[str, int]
    fidelity: float


# A toy model: cluster c costs COST[c] MACs per unit; the fidelity loses LOSS[c] per unit
# removed from the full width FULL[c].
FULL = {"a": 64, "b": 32, "c": 16}
COST = {"a": 1.0, "b": 4.0, "c": 2.0}
LOSS = {"a": 0.0001, "b": 0.002, "c": 0.0002}


def _macs(counts):
    return sum(COST[c] * n for c, n in counts.items())


def _build(counts):
    return Fake(dict(counts), 1.0 - sum(LOSS[c] * (FULL[c] - n) for c, n in counts.items()))


def _lower(cluster, n):
    steps = {"a": [16, 32, 48, 64], "b": [16, 32], "c": [8, 16]}[cluster]
    below = [m for m in steps if m < n]
    return max(below) if below else None


def test_refine_steps_clusters_down_while_the_target_holds() -> None:
    built = []

    def build(counts):
        built.append(dict(counts))
        return _build(counts)

    start = dict(FULL)
    best = refine_counts(start, _build(start), _lower, build, _macs,
                         lambda m: m.fidelity >= 0.99, _macs(FULL), FULL)
    assert best.fidelity >= 0.99
    # b is the costliest to remove (0.032 for its 16 units): it stays; a and c go down
    assert best.counts["b"] == 32
    assert best.counts["c"] == 8 and best.counts["a"] < 64
    assert _macs(best.counts) < _macs(FULL)
    # the largest saving is tried first: b's 64 MACs before c's 16 and a's 16
    assert built[0] == {**FULL, "b": 16}
    # every count tried is an aligned one
    assert all(n == FULL[c] or n in {16, 32, 48, 8} for t in built for c, n in t.items())


def test_refine_skips_steps_under_the_minimum_saving() -> None:
    """A step saving less than MIN_SAVING of the parent's MACs is not tried: here the
    parent is counted so large that c's 16 MACs fall under it and a's 16 do too, while b's
    64 do not; at 0.3% of it (MobileNetV2's small layers) c's and a's are tried."""
    from onnxdecomp.decompose.refine import MIN_SAVING

    def tried(parent_macs):
        built = []

        def build(counts):
            built.append(dict(counts))
            return _build(counts)

        refine_counts(dict(FULL), _build(FULL), _lower, build, _macs,
                      lambda m: m.fidelity >= 0.9, parent_macs, FULL)
        return {c for t in built for c, n in t.items() if n != FULL[c]}

    assert MIN_SAVING == 0.003
    assert tried(17 / MIN_SAVING) == {"b"}  # 16 MACs < 0.3% of it, 64 MACs above
    assert tried(_macs(FULL)) == {"a", "b", "c"}


def test_refine_keeps_the_passing_module_when_no_step_holds() -> None:
    start = dict(FULL)
    first = _build(start)
    best = refine_counts(start, first, _lower, _build, _macs, lambda m: m.fidelity >= 1.0,
                         _macs(FULL), FULL)
    assert best is first


def test_refine_leaves_steps_the_keep_grid_resolves() -> None:
    def lower(cluster, n):  # unaligned: one unit at a time
        return n - 1 if n > 1 else None

    start = dict(FULL)
    first = _build(start)
    assert refine_counts(start, first, lower, _build, _macs, lambda m: m.fidelity >= 0.9,
                         _macs(FULL), FULL) is first


def test_held_clusters_step_one_unit_at_a_time() -> None:
    """Attention heads, which the keep search keeps whole, take steps of one unit even
    where the keep grid would resolve them (here: b's 32 units, one at a time, while
    the target holds: 5 of them)."""
    def lower(cluster, n):
        return n - 1 if n > 1 else None

    start = dict(FULL)
    best = refine_counts(start, _build(start), lower, _build, _macs,
                         lambda m: m.fidelity >= 0.99, _macs(FULL), FULL, frozenset({"b"}))
    assert best.counts["a"] == 64 and best.counts["c"] == 16  # not held: no unit steps
    assert best.counts["b"] == 27 and best.fidelity >= 0.99


def test_lower_counts_are_what_a_grid_ratio_gives() -> None:
    def counts_at(keep):
        return {"x": kept_count(64, keep, 16), "y": kept_count(16, keep, 16)}

    ladder = [counts_at(r) for r in KEEP_GRID]
    assert lower_counts(ladder, "x", 64) == 48
    assert lower_counts(ladder, "x", 16) is None
    assert lower_counts(ladder, "y", 16) == 8


def test_tuned_module_is_no_larger_than_the_uniform_ratio_and_meets_the_target(get_case):
    case = get_case("residual-dynamo")
    dec = Decomposer(case.path, case.calib(120), None,
                     Settings(fidelity=0.95, align=4, device="cpu"))
    k = 1
    module = dec.tune(k)
    assert module.fidelity >= 0.95
    uniform = tune_keep(lambda keep: dec.measure(dec.build(k, keep)),
                        lambda m: m.fidelity, 0.95)
    assert model_stats(module.proto).macs <= model_stats(uniform.proto).macs
    # the module says whether it went below its keep ratio's counts
    assert module.stepped == (module.removed != uniform.removed)
    # every cluster keeps a count that some keep ratio gives under the alignment
    sizes = Counter(dec.clusters.values())
    kept = Counter(c for u, c in dec.clusters.items() if u not in module.removed)
    for cluster, n in sizes.items():
        allowed = {kept_count(n, r, dec.align_of.get(cluster, dec.align)) for r in KEEP_GRID}
        assert kept[cluster] in allowed, (cluster, n, kept[cluster])
