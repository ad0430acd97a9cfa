"""Tests for onnxdecomp.decompose.polish: the sequential refit after the parallel search."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from onnxdecomp.decompose.polish import TRIES, polish_search


@dataclass(frozen=True)
class Fake:
    macs: float
    fidelity: float
    sequential: bool = False


def _world(shrink: float, gap_left: float):
    """A toy module family: the parallel search for ``goal`` finds MACs that fall as the
    goal falls (``shrink`` per point of fidelity); the sequential refit leaves ``gap_left``
    of the parallel refit's gap. Records every call."""
    calls = {"search": [], "refit": []}

    def search(goal: float) -> Fake:
        calls["search"].append(goal)
        macs = max(0.2, 1.0 - shrink * (1.0 - goal))
        return Fake(round(macs, 6), goal)

    def refit(module: Fake) -> Fake:
        calls["refit"].append(module)
        return Fake(module.macs, 1.0 - gap_left * (1.0 - module.fidelity), True)

    return search, refit, calls


def test_polish_goes_below_the_parallel_target_and_still_meets_it() -> None:
    search, refit, calls = _world(shrink=10.0, gap_left=0.5)
    best = polish_search(search, refit, lambda m: m.macs, 0.99)
    assert best.sequential and best.fidelity >= 0.99
    assert best.macs < search(0.99).macs  # smaller than the parallel search's own module
    assert len(calls["refit"]) <= TRIES + 1


def test_polish_never_returns_a_module_below_the_target() -> None:
    # the first module's ratio (0.5) promises more than later ones keep (0.9 past 0.985)
    calls = []

    def search(goal: float) -> Fake:
        return Fake(1.0 - 10.0 * (1.0 - goal), goal)

    def refit(module: Fake) -> Fake:
        calls.append(module)
        left = 0.5 if module.fidelity >= 0.985 else 0.9
        return Fake(module.macs, 1.0 - left * (1.0 - module.fidelity), True)

    best = polish_search(search, refit, lambda m: m.macs, 0.99)
    assert best.fidelity >= 0.99
    assert any(c.fidelity < 0.985 for c in calls)  # the far goal was tried and rejected
    assert best.macs <= search(0.99).macs


def test_polish_keeps_the_parallel_module_when_the_refit_does_not_help() -> None:
    search, _, calls = _world(shrink=10.0, gap_left=0.5)

    def worse(module: Fake) -> Fake:
        return Fake(module.macs, module.fidelity - 0.01, True)

    best = polish_search(search, worse, lambda m: m.macs, 0.99)
    assert best == Fake(0.9, 0.99) and calls["search"] == [0.99]


def test_polish_stops_when_relaxing_reaches_nothing_smaller() -> None:
    search, refit, calls = _world(shrink=0.0, gap_left=0.5)  # every goal gives the same size
    best = polish_search(search, refit, lambda m: m.macs, 0.99)
    assert best.sequential and best.macs == 1.0
    assert len(calls["refit"]) == 1 and len(calls["search"]) == 2


@pytest.mark.parametrize("gap_left", [0.0, 1e-9])
def test_polish_relaxes_a_bounded_step_when_the_refit_is_exact(gap_left: float) -> None:
    search, refit, calls = _world(shrink=10.0, gap_left=gap_left)
    best = polish_search(search, refit, lambda m: m.macs, 0.99)
    assert best.fidelity >= 0.99
    assert min(calls["search"]) >= 0.99 - 4 * 0.01 * (TRIES + 1)  # MIN_RATIO bounds each step
