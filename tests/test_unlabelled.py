"""Calibration without labels: an .npz without ``y`` or a folder of images. The parent's own
decisions stand in for the labels; what needs labels says so in one line (eval and a
replacement's combination: rows of test_reliability's table; one data set for several
parents: here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ort_run
from PIL import Image
from test_cli import _assert_user_error, _npz

from onnxdecomp import link
from onnxdecomp.cli import main
from onnxdecomp.data import DataSpec, load_data, require_labels
from onnxdecomp.errors import DataError
from onnxdecomp.link import combine


def _run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _unlabelled(path: Path, x: np.ndarray) -> Path:
    np.savez(path, x=x)
    return path


@pytest.fixture(scope="module")
def cut(get_case, tmp_path_factory):
    """The plain case decomposed twice through the CLI on the same samples: without labels,
    and labelled with the parent's own decisions."""
    case, tmp = get_case("plain-dynamo"), tmp_path_factory.mktemp("unlabelled")
    x = case.calib(240, seed=7)
    bare = _unlabelled(tmp / "bare.npz", x)
    own = _npz(tmp / "own.npz", x, case.logits(x).argmax(axis=1))
    for name, data in (("bare", bare), ("own", own)):
        res = _run("decompose", case.path, "--data", data, "-o", tmp / name, "--keep", "0.5")
        assert res.exit_code == 0, res.output
    return case, tmp, x


def test_npz_without_labels_loads_unlabelled(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    ds = load_data(str(_unlabelled(tmp_path / "u.npz", x)), limit=20)
    assert not ds.labelled and ds.y.tolist() == [-1] * 20
    assert "unlabelled" in ds.source and "random" in ds.source
    with pytest.raises(DataError, match="u.npz npz, unlabelled .* has no labels: eval"):
        require_labels(ds, "eval measures accuracy")
    labelled = load_data(str(_npz(tmp_path / "l.npz", x, np.arange(50) % 2)), limit=20)
    assert labelled.labelled and "stratified" in labelled.source


def test_a_folder_of_images_alone_is_unlabelled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (5, 6, 3), dtype=np.uint8)).save(
            tmp_path / f"{3 - i}.png")
    ds = load_data(str(tmp_path))
    assert ds.x.shape == (4, 3, 5, 6) and not ds.labelled and ds.class_names is None
    first = np.asarray(Image.open(tmp_path / "0.png"), dtype=np.float32)
    np.testing.assert_array_equal(ds.x[0].transpose(1, 2, 0), first)  # sorted by name


def test_modules_from_unlabelled_data_equal_those_from_the_parents_decisions(cut) -> None:
    """The profile assigns samples to classes by the parent's decisions either way."""
    _, tmp, x = cut
    bare = json.loads((tmp / "bare" / "manifest.json").read_text())
    own = json.loads((tmp / "own" / "manifest.json").read_text())
    assert bare["parent_agreement_on_calibration"] is None
    assert own["parent_agreement_on_calibration"] == 1.0
    assert [m["kept_channels"] for m in bare["modules"]] == \
        [m["kept_channels"] for m in own["modules"]]
    for m in bare["modules"]:
        np.testing.assert_allclose(ort_run(str(tmp / "bare" / m["file"]), x),
                                   ort_run(str(tmp / "own" / m["file"]), x), atol=1e-5)


def test_union_from_an_unlabelled_manifest(cut) -> None:
    """The manifest's unlabelled data is labelled by the parent when a union needs the
    samples of its classes: the same union as from the parent's decisions."""
    case, tmp, x = cut
    out = {}
    for name in ("bare", "own"):
        res = _run("link", tmp / name / "class_0.onnx", tmp / name / "class_2.onnx",
                   "-o", tmp / f"{name}02.onnx", "--json")
        assert res.exit_code == 0, res.output
        out[name] = json.loads(res.stdout)
    assert "labelled by the parent's decisions" in out["bare"]["parts"][0]["calibration"]
    assert out["bare"]["macs"] == out["own"]["macs"]
    np.testing.assert_allclose(ort_run(str(tmp / "bare02.onnx"), x),
                               ort_run(str(tmp / "own02.onnx"), x), atol=1e-5)


def test_check_against_the_parent_without_labels(cut) -> None:
    case, tmp, _ = cut
    res = _run("check", tmp / "bare" / "class_1.onnx", "--data", tmp / "bare.npz",
               "--parent", case.path)
    assert res.exit_code == 0, res.output
    assert "against the parent   PASS  240 samples" in res.stdout


def test_two_parents_calibrated_without_labels(cut, get_case, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One unlabelled set per parent: the combiner learns each parent's decisions on its
    own data, in the linked model's columns; one set for both needs labels."""
    case, tmp, x = cut
    other = get_case("cntk")
    xb = other.calib(240, seed=3)
    data_b = _unlabelled(tmp_path / "b.npz", xb)
    res = _run("decompose", other.path, "--data", data_b, "-o", tmp_path / "b", "--keep",
               "0.6")
    assert res.exit_code == 0, res.output
    seen = {}
    choose = combine.choose

    def spy(name, scores, y, *args, **kwargs):
        seen["y"] = y
        return choose(name, scores, y, *args, **kwargs)

    monkeypatch.setattr(combine, "choose", spy)
    folders = [tmp / "bare", tmp_path / "b"]
    result = link(folders, calibrate=[DataSpec(str(tmp / "bare.npz")), DataSpec(str(data_b))])
    assert len(result.columns) == 5 + 6
    assert set(result.held_out) == set(combine.COMBINERS) - {"auto"}
    decided = np.concatenate([case.logits(x).argmax(axis=1),
                              5 + other.logits(xb).argmax(axis=1)])
    np.testing.assert_array_equal(seen["y"], decided)
    both = _unlabelled(tmp_path / "both.npz", np.concatenate([x, xb]))
    _assert_user_error(_run("link", *folders, "-o", tmp_path / "l.onnx", "--calibrate", both),
                       "needs labels naming the linked columns")
