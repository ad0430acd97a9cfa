"""Per-class keep ratios under a MACs budget (onnxdecomp.allocate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxdecomp.decompose import Settings, decompose
from onnxdecomp.decompose.allocate import Candidate, allocate, composed_loss
from onnxdecomp.errors import OnnxDecompError


def _parent(n: int = 60, k: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.normal(-3.0, 1.0, (n, k))
    s[np.arange(n), np.arange(n) % k] += 5.0  # each sample has a clear winner
    return s


def _ladder(parent: np.ndarray, k: int, noise: list[float], seed: int = 1):
    """Candidates of class k: MACs 1.0, 0.8, ...; scores the parent's plus ``noise[i]``
    times a fixed random pattern."""
    pattern = np.random.default_rng((seed, k)).normal(size=len(parent))
    return [Candidate(1.0 - 0.2 * i, parent[:, k] + a * pattern) for i, a in enumerate(noise)]


def _by_ladder(ladders):
    asked = []

    def candidate(k: int, i: int):
        asked.append((k, i))
        return ladders[k][i] if i < len(ladders[k]) else None

    return candidate, asked


def test_composed_loss_is_cross_entropy() -> None:
    s = np.array([[2.0, 0.0], [0.0, 1.0]])
    pred = np.array([0, 0])
    want = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0))])
    assert composed_loss(s, pred) == pytest.approx(want)


def test_the_budget_goes_to_the_class_that_needs_it() -> None:
    """Pruning class 0 costs nothing, pruning class 1 a lot: class 0 gives up its MACs."""
    parent = _parent()
    ladders = [_ladder(parent, 0, [0, 0, 0]), _ladder(parent, 1, [0, 8, 16]),
               _ladder(parent, 2, [0, 0.5, 1])]
    candidate, _ = _by_ladder(ladders)
    idx = allocate(candidate, [0, 1, 2], parent, budget=0.8)
    assert idx[0] == 2 and idx[1] == 0
    assert np.mean([ladders[k][i].macs for k, i in idx.items()]) <= 0.8


def test_candidates_are_built_only_as_far_as_needed() -> None:
    parent = _parent()
    ladders = [_ladder(parent, k, [0, 1, 2, 3, 4]) for k in range(3)]
    candidate, asked = _by_ladder(ladders)
    idx = allocate(candidate, [0, 1, 2], parent, budget=0.9)
    assert sum(idx.values()) == 2  # 1 - 0.2 * 2 / 3 <= 0.9
    assert max(i for _, i in asked) <= 3


def test_an_unreachable_budget_ends_on_the_smallest() -> None:
    parent = _parent()
    ladders = [_ladder(parent, k, [0, 1]) for k in range(3)]
    candidate, _ = _by_ladder(ladders)
    assert allocate(candidate, [0, 1, 2], parent, budget=0.1) == {0: 1, 1: 1, 2: 1}


def test_classes_left_out_keep_the_parent_scores() -> None:
    parent = _parent()
    ladders = [_ladder(parent, k, [0, 1, 2]) for k in range(3)]
    candidate, asked = _by_ladder(ladders)
    idx = allocate(candidate, [1], parent, budget=0.6)
    assert idx == {1: 2}
    assert {k for k, _ in asked} == {1}


def test_decompose_under_a_macs_budget(get_case, tmp_path: Path) -> None:
    case = get_case("plain-dynamo")
    manifest = decompose(case.path, case.calib(200), out_dir=tmp_path / "m",
                         settings=Settings(macs=0.6, device="cpu"))
    mods = manifest.modules
    assert len(mods) == case.num_classes
    assert np.mean([m.macs_fraction for m in mods]) <= 0.6
    assert manifest.passed and manifest.mean_macs <= 0.6
    assert manifest.to_json()["settings"]["macs"] == 0.6
    assert all(0.1 <= m.keep_ratio <= 1.0 for m in mods)
    assert all((tmp_path / "m" / m.file).is_file() for m in mods)


def test_keep_and_macs_exclude_each_other(get_case) -> None:
    case = get_case("plain-dynamo")
    with pytest.raises(OnnxDecompError, match="exclude"):
        decompose(case.path, case.calib(20), settings=Settings(keep=0.5, macs=0.5))


def test_on_step_traces_every_step_of_the_descent() -> None:
    """``on_step`` sees the start and every step: one class down a rung each time, the mean
    MACs falling, the scores those of the chosen candidates."""
    parent = _parent()
    ladders = [_ladder(parent, k, [0, 1, 2]) for k in range(3)]
    candidate, _ = _by_ladder(ladders)
    trace = []
    idx = allocate(candidate, [0, 1, 2], parent, budget=0.7,
                   on_step=lambda i, s, m: trace.append((i, s.copy(), m)))
    assert trace[0][0] == {0: 0, 1: 0, 2: 0} and trace[0][2] == pytest.approx(1.0)
    assert trace[-1][0] == idx and trace[-1][2] <= 0.7
    for (a, _, ma), (b, s, mb) in zip(trace, trace[1:]):
        assert sum(b.values()) == sum(a.values()) + 1 and mb < ma
        for k, i in b.items():
            np.testing.assert_array_equal(s[:, k], ladders[k][i].scores)
