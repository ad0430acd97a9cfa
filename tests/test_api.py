"""The Python API takes what a user passes (a path or a pathlib.Path, one item for a list,
numpy integers for classes, a dict of replacements) and refuses the rest with one
OnnxDecompError naming the argument: before, these were TypeErrors from deep inside, a path
read as its characters (``link("out/class_3.onnx")``: "not an ONNX model: o"), or a link
with ``fidelity=2.0`` that ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxdecomp import decompose, link, replace
from onnxdecomp.data import DataSpec, Preprocess, load_data
from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.errors import OnnxDecompError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "cnn_digits.onnx"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    ds = DataSpec("sklearn:digits", "train", 300).load()
    out = tmp_path_factory.mktemp("api") / "dec"
    decompose(MODEL, ds.x, ds.y, out, classes=np.array([3, 8]),
              settings=Settings(keep=0.6), calibration="sklearn:digits")
    return ds, out


def test_paths_and_numpy_classes_are_taken(digits) -> None:
    ds, out = digits
    one = link(out / "class_3.onnx")  # one path for the list, a pathlib.Path
    assert [c["class_index"] for c in one.columns] == [3]
    pair = link([out], classes=[np.int64(8), np.int64(3)], parents=MODEL)
    assert [c["class_index"] for c in pair.columns] == [8, 3]
    for given in ({3: out / "class_3.onnx"}, (np.int64(3), str(out / "class_3.onnx"))):
        got = replace(str(MODEL), given)
        assert got.columns[3]["replaces"] == 3
    assert DataSpec(Path("some.npz")).data == "some.npz"
    assert Preprocess(resize=16).resize == (16,) and Preprocess(crop=8).crop == (8, 8)


@pytest.mark.parametrize("call, message", [
    (lambda ds, out: decompose(123, ds.x, ds.y), "model must be a path"),
    (lambda ds, out: decompose(MODEL.read_bytes(), ds.x, ds.y), "bytes given"),
    (lambda ds, out: decompose(MODEL, None, ds.y), "calibration inputs are needed"),
    (lambda ds, out: decompose(MODEL, ds.x, ds.y[:150]), "differ in length"),
    (lambda ds, out: decompose(MODEL, np.full_like(ds.x, np.nan), ds.y), "NaN"),
    (lambda ds, out: decompose(MODEL, ds.x[:1], ds.y[:1]), "at least 2"),
    (lambda ds, out: decompose(MODEL, ds.x, ds.y, classes=["3"]), "integers"),
    (lambda ds, out: decompose(MODEL, ds.x, ds.y, classes=[3, np.int64(3)]), "twice"),
    (lambda ds, out: decompose(MODEL, ds.x, ds.y, settings={"keep": 0.5}), "Settings"),
    (lambda ds, out: link([out], classes=[3, 8], fidelity=2.0), "fidelity"),
    (lambda ds, out: link([out], classes=[3, 8], fidelity=float("nan")), "fidelity"),
    (lambda ds, out: link([out], classes=[3, 3]), "twice"),
    (lambda ds, out: link([out], calibrate=123), "DataSpec or a path"),
    (lambda ds, out: replace(MODEL, [(3, out / "class_3.onnx")], device="tpu"), "tpu"),
    (lambda ds, out: replace(MODEL, [("3", out / "class_3.onnx")]), "integers"),
    (lambda ds, out: replace(MODEL, 5), "pairs"),
    (lambda ds, out: DataSpec("sklearn:digits", limit="10").load(), "limit"),
    (lambda ds, out: load_data(None), "data spec"),
    (lambda ds, out: Preprocess(channels=2), "channels"),
    (lambda ds, out: Decomposer(MODEL, ds.x, ds.y).build(10, 0.5), "outside"),
    (lambda ds, out: Decomposer(MODEL, ds.x, ds.y).build(3, 1.5), "keep"),
])
def test_bad_arguments_are_one_line_errors(digits, call, message) -> None:
    ds, out = digits
    with pytest.raises(OnnxDecompError, match=message):
        call(ds, out)


def test_progress_counts_run_on(digits) -> None:
    """Each stage reports its running count (the profile reported each batch's size)."""
    ds, _ = digits
    seen: dict[str, list[int]] = {}
    decompose(MODEL, ds.x, ds.y, classes=[3], settings=Settings(keep=0.6),
              progress=lambda stage, done, total: seen.setdefault(stage, []).append(done))
    for counts in seen.values():
        assert counts == sorted(counts) and counts[-1] > 0
    assert seen["profile"][-1] == 210 and seen["modules"] == [1]  # 70% of 300 profiled
