"""Tests for onnxdecomp.decompose.shape_macs: MACs counted once per vector of kept counts."""

from __future__ import annotations

import numpy as np

from onnxdecomp.channels import plain_slice
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.criteria import choose_removed
from onnxdecomp.decompose.decomposer import build_module
from onnxdecomp.decompose.head import AppendLogOddsPass
from onnxdecomp.decompose.shape_macs import ShapeMacs
from onnxdecomp.stats import model_stats


def _macs(dec: Decomposer, removed: set[int], k: int) -> int:
    head = AppendLogOddsPass(k, dec.parent.num_classes)
    return model_stats(build_module(dec.parent, removed, plain_slice, head, check=False)).macs


def test_units_kept_in_the_same_numbers_share_one_count_and_it_is_the_built_one(get_case):
    case = get_case("residual-dynamo")  # convs around a residual Add, a dense head
    dec = Decomposer(case.path, case.calib(60), None, Settings(align=1, device="cpu"))
    cache = ShapeMacs(dec.parent.cg)
    rng = np.random.default_rng(0)
    for keep in (0.5, 0.75):
        removed_sets = [choose_removed({u: float(v) for u, v in zip(dec.clusters,
                                                                    rng.random(len(dec.clusters)))},
                                       dec.clusters, keep, spaces=dec.spaces)
                        for _ in range(3)]
        assert len({frozenset(r) for r in removed_sets}) > 1  # other units, same counts
        for k, removed in enumerate(removed_sets):
            head = AppendLogOddsPass(k % dec.parent.num_classes, dec.parent.num_classes)
            got = cache(removed, head, lambda r=removed: _macs(dec, r, 0))
            assert got == _macs(dec, removed, k % dec.parent.num_classes)
    # one count per keep ratio, whatever the units and the class
    assert (cache.asked, cache.counted) == (6, 2)
    # fewer units kept is another vector, and fewer MACs
    fewer = choose_removed(dict.fromkeys(dec.clusters, 0.0), dec.clusters, 0.25,
                           spaces=dec.spaces)
    head = AppendLogOddsPass(0, dec.parent.num_classes)
    assert cache(fewer, head, lambda: _macs(dec, fewer, 0)) < _macs(dec, removed_sets[0], 0)
    assert cache.counted == 3


def test_a_union_head_is_counted_by_how_many_classes_it_keeps(get_case):
    """A union's head keeps its classes' rows of the dense head: unions of 2 and 3 classes
    keeping the same channels are two counts, each the built one."""
    from onnxdecomp.link.select_classes import SelectClassesPass

    case = get_case("residual-dynamo")
    dec = Decomposer(case.path, case.calib(60), None, Settings(align=1, device="cpu"))
    cache = ShapeMacs(dec.parent.cg)
    k = dec.parent.num_classes
    for classes in ([0, 1], [1, 2], [0, 1, 2]):
        head = SelectClassesPass(classes, k)
        built = model_stats(build_module(dec.parent, set(), plain_slice, head,
                                         check=False)).macs
        assert cache(set(), head, lambda h=head: model_stats(build_module(
            dec.parent, set(), plain_slice, h, check=False)).macs) == built
    assert cache.counted == 2
