"""Profiles in bounded memory (decompose/tracked.py): a chunk of classes' grams at a time
gives the same grams, so the same modules, as the profile of every class."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxdecomp.decompose import Decomposer, Settings, decompose
from onnxdecomp.decompose.criteria import class_weights, subset_concern
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import link
from onnxdecomp.link.union import UnionBuilder


@pytest.fixture(scope="module")
def plain(get_case):
    case = get_case("plain-dynamo")  # 5 classes
    x = case.calib(200, seed=4)
    whole = Decomposer(str(case.path), x, None, Settings(device="cpu"))
    assert whole.profiles.holds_all and whole.profiles.passes == 1
    return case, x, whole


def _budget(dec: Decomposer, classes: int) -> int:
    """A budget holding ``classes`` classes' grams beside the totals."""
    return (classes + 1) * dec.profiles.class_bytes


def test_chunks_of_classes_give_the_same_grams(plain) -> None:
    case, x, whole = plain
    dec = Decomposer(str(case.path), x, None,
                     Settings(device="cpu", profile_memory=_budget(whole, 2)), classes=[3, 1])
    assert not dec.profiles.holds_all and dec.profiles.capacity == 2
    assert dec.profile.tracked.tolist() == [3, 1]  # the classes asked come first
    assert dec.profiles.passes == 1 + 3  # the totals: classes 0-1, 2-3, 4
    prof = dec.profile
    for node in whole.profile.consumers:
        for k in (1, 3):
            w = class_weights(prof, k)
            np.testing.assert_array_equal(prof.gram(node, w), whole.profile.gram(node, w))
        with pytest.raises(LookupError, match="class 0 is not tracked"):
            prof.gram(node, class_weights(prof, 0))
    dec.profiles.ensure({0})
    assert dec.profile.tracked.tolist() == [0, 2] and dec.profiles.passes == 5


def test_modules_are_byte_identical_in_any_budget(plain, tmp_path) -> None:
    case, x, whole = plain
    runs = {}
    for name, budget in (("all", None), ("two", _budget(whole, 2)), ("one", _budget(whole, 1))):
        m = decompose(str(case.path), x, None, tmp_path / name,
                      settings=Settings(device="cpu", keep=0.5, profile_memory=budget))
        runs[name] = [(tmp_path / name / e.file).read_bytes() for e in m.modules]
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        runs[name + "_passes"] = manifest["profile_passes"]
    assert runs["all"] == runs["two"] == runs["one"]
    assert runs["all_passes"] == 1 and runs["two_passes"] == 3 + 3 and \
        runs["one_passes"] == 5 + 5


def test_a_union_within_the_budget_and_beyond(plain) -> None:
    case, x, whole = plain
    dec = Decomposer(str(case.path), x, None,
                     Settings(device="cpu", profile_memory=_budget(whole, 2)))
    ref = UnionBuilder(whole).build((2, 4), 0.5).proto.SerializeToString()
    assert UnionBuilder(dec).build((2, 4), 0.5).proto.SerializeToString() == ref
    # three of five classes weigh 1/3 each: the grams of the two others are read
    assert dec.profile.needs(subset_concern(dec.profile, (0, 1, 2)).weights) == {3, 4}
    one = Decomposer(str(case.path), x, None,
                     Settings(device="cpu", profile_memory=_budget(whole, 1)))
    with pytest.raises(OnnxDecompError, match="profiles of 2 classes at once"):
        UnionBuilder(one).build((2, 4), 0.5)
    with pytest.raises(OnnxDecompError, match=r"holds 1 class\(es\) at once"):
        one.allocate(list(range(5)), 0.5)


def test_a_budget_below_one_class_is_refused(plain) -> None:
    case, x, whole = plain
    with pytest.raises(OnnxDecompError, match="the profile of one class needs"):
        Decomposer(str(case.path), x, None,
                   Settings(device="cpu", profile_memory=whole.profiles.class_bytes))


def test_a_module_does_not_depend_on_the_classes_beside_it(plain, tmp_path) -> None:
    """Classes decomposed in parts (other processes or machines, ``--classes``) give the
    modules of one run, and the parts link as one decomposition."""
    case, x, _ = plain
    whole = decompose(str(case.path), x, None, tmp_path / "all", settings=Settings(device="cpu"))
    parts = [decompose(str(case.path), x, None, tmp_path / f"part{i}", classes=classes,
                       settings=Settings(device="cpu")) for i, classes in ((0, [3]), (1, [4, 0]))]
    for part, i in zip(parts, (0, 1)):
        for e in part.modules:
            assert (tmp_path / f"part{i}" / e.file).read_bytes() == \
                (tmp_path / "all" / e.file).read_bytes()
    linked = link([tmp_path / "part0", tmp_path / "part1"], mode="parallel")
    assert [c["class_index"] for c in linked.columns] == [3, 4, 0]
    assert len(whole.modules) == 5


def test_cli_profile_memory(plain, tmp_path) -> None:
    from click.testing import CliRunner
    from test_cli import _assert_user_error, _npz

    from onnxdecomp.cli import main

    case, x, whole = plain
    data = _npz(tmp_path / "d.npz", x, case.logits(x).argmax(axis=1))
    gb = 3.5 * whole.profiles.class_bytes / 2**30  # two classes beside the totals
    runs = {}
    for name, flags in (("all", []), ("two", ["--profile-memory", f"{gb:.12f}"])):
        res = CliRunner().invoke(main, ["decompose", str(case.path), "--data", str(data),
                                        "-o", str(tmp_path / name), "--keep", "0.5", *flags])
        assert res.exit_code == 0, res.output
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        runs[name] = manifest["profile_passes"]
        assert [(tmp_path / name / m["file"]).read_bytes() for m in manifest["modules"]] == \
            [(tmp_path / "all" / m["file"]).read_bytes() for m in manifest["modules"]]
    assert runs == {"all": 1, "two": 6}
    res = CliRunner().invoke(main, ["decompose", str(case.path), "--data", str(data), "-o",
                                    str(tmp_path / "none"), "--profile-memory", "1e-9"])
    _assert_user_error(res, "the profile of one class needs")
    assert not (tmp_path / "none").exists()


def test_progress_counts_every_pass(plain) -> None:
    case, x, whole = plain
    seen: dict[str, list[int]] = {}

    def progress(stage: str, done: int, total: int) -> None:  # a running count
        seen[stage] = [done, total]

    dec = Decomposer(str(case.path), x, None,
                     Settings(device="cpu", profile_memory=_budget(whole, 2)),
                     progress=progress)
    assert dec.profiles.passes == 4 and seen["profile"] == [4 * dec.n_profile] * 2
