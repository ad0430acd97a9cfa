"""Tests for onnxdecomp.decompose.criteria: which units a module keeps."""

from __future__ import annotations

from onnxdecomp.decompose.criteria import remove_beyond

# One cluster of six units, as a Concat joins two tensors: units 0-2 and 3-5.
CLUSTERS = dict.fromkeys(range(6), "cat")
SCORES = {0: 1.0, 1: 2.0, 2: 3.0, 3: 9.0, 4: 8.0, 5: 7.0}


def test_ranking_over_a_cluster_can_empty_one_of_its_tensors() -> None:
    assert remove_beyond(SCORES, CLUSTERS, {"cat": 3}) == {0, 1, 2}


def test_a_partial_tensor_keeps_its_best_unit() -> None:
    spaces = [frozenset({0, 1, 2}), frozenset({3, 4, 5})]
    assert remove_beyond(SCORES, CLUSTERS, {"cat": 3}, spaces) == {0, 1}
    assert remove_beyond(SCORES, CLUSTERS, {"cat": 4}, spaces) == {0, 1}  # none emptied
    assert remove_beyond(SCORES, CLUSTERS, {"cat": 1}, spaces) == {0, 1, 4, 5}
