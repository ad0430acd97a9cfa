"""Tables (data/table.py): .csv and .tsv of features and a label column, read by every
command, and read again by union linking from the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.cli import main
from onnxdecomp.data import DataSpec, Preprocess, load_data
from onnxdecomp.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_header_label_column_and_class_names(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "a,b,Class\n1,2,versicolor\n3,4.5,setosa\n5,6,\n7,8,setosa\n")
    ds = load_data(str(p), split="train")
    assert ds.x.dtype == np.float32 and ds.x.tolist() == [[1, 2], [3, 4.5], [5, 6], [7, 8]]
    assert ds.y.tolist() == [1, 0, -1, 0] and ds.class_names == ["setosa", "versicolor"]
    assert ds.source == "t.csv table (4 samples)"
    p = write(tmp_path / "u.csv", "f1,label,f2\n0.5,2,1\n1.5,0.0,2\n")  # label in the middle
    ds = load_data(str(p))
    assert ds.x.tolist() == [[0.5, 1], [1.5, 2]] and ds.y.tolist() == [2, 0]
    assert ds.class_names is None


def test_pandas_index_column_is_not_a_feature(tmp_path: Path) -> None:
    ds = load_data(str(write(tmp_path / "p.csv", ",a,b,target\n0,1,2,0\n1,3,4,1\n")))
    assert ds.x.tolist() == [[1, 2], [3, 4]] and ds.y.tolist() == [0, 1]
    # a nameless column of other values is a feature
    ds = load_data(str(write(tmp_path / "q.csv", ",a,target\n5,1,0\n7,3,1\n")))
    assert ds.x.tolist() == [[5, 1], [7, 3]]


def test_label_column_by_name_or_index(tmp_path: Path) -> None:
    """--label-column: a header's name (any case), or a 0-based index (-1: the last) for a
    file without a header (UCI's); refused for data that is not a table."""
    p = write(tmp_path / "pima.csv", "a,b,Outcome\n1,2,0\n3,4,1\n")
    assert load_data(str(p)).x.shape == (2, 3)  # not a label name: a feature
    for key in ("Outcome", "outcome", "2", "-1"):
        ds = load_data(str(p), label_column=key)
        assert ds.x.tolist() == [[1, 2], [3, 4]] and ds.y.tolist() == [0, 1]
    bare = write(tmp_path / "uci.csv", "5.1,3.5,setosa\n6.2,2.9,versicolor\n")
    ds = load_data(str(bare), label_column="-1")
    assert ds.y.tolist() == [0, 1] and ds.class_names == ["setosa", "versicolor"]
    with pytest.raises(DataError, match="no column 'foo' for label_column: its columns are "
                                        "a, b, Outcome"):
        load_data(str(p), label_column="foo")
    with pytest.raises(DataError, match="it has no header: give the column's index"):
        load_data(str(bare), label_column="species")
    with pytest.raises(DataError, match="has 3 columns: label_column 3 is none of them"):
        load_data(str(p), label_column="3")
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="label_column names a table's column"):
        load_data(str(tmp_path / "x.npy"), label_column="0")
    spec = DataSpec(str(p), "train", None, 0, Preprocess(), "Outcome")
    assert DataSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_no_header_or_no_label_column_is_unlabelled(tmp_path: Path) -> None:
    for text in ("1,2,3\n4,5,6\n", "a,b,c\n1,2,3\n4,5,6\n"):
        ds = load_data(str(write(tmp_path / "t.csv", text)))
        assert ds.x.shape == (2, 3) and ds.y.tolist() == [-1, -1]


def test_delimiters_and_dtype(tmp_path: Path) -> None:
    tsv = load_data(str(write(tmp_path / "t.tsv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n")))
    semi = load_data(str(write(tmp_path / "s.csv", "a;b;y\n1;2;0\n3;4;1\n")))
    assert tsv.x.tolist() == semi.x.tolist() == [[1, 2], [3, 4]]
    assert semi.y.tolist() == [0, 1]
    wide = load_data(str(tmp_path / "t.tsv"), pre=Preprocess(dtype="float64"))
    assert wide.x.dtype == np.float64


def test_table_errors(tmp_path: Path) -> None:
    cases = [
        ("a,b,y\n1,x,0\n", r"row 2, column 'b': 'x' is not a number \(features must be "
                            r"numeric: encode categories before saving\)$"),
        ("a,species\n1,setosa\n", "'setosa' is not a number .*labels go in a column named y, "
                                  "label, labels, target, class"),
        ("a,b,y\n1,2\n", "row 2: 2 cells where the header has 3"),
        ("a,b,y\n1,2,0\n3,,1\n", r"row 3, column 'b': '' is not a number \(a missing value: "
                                r"fill or drop it before saving\)"),
        ("a,label,target\n1,0,0\n", "several label columns .label, target."),
        ("y\n0\n1\n", "a label column and no feature column"),
        ("a,b\n", "has a header and no rows"),
    ]
    for text, match in cases:
        with pytest.raises(DataError, match=match):
            load_data(str(write(tmp_path / "bad.csv", text)))
    with pytest.raises(DataError, match="used exactly as stored"):
        load_data(str(write(tmp_path / "ok.csv", "a,y\n1,0\n")), pre=Preprocess(layout="nhwc"))
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_data(str(tmp_path / "ok.csv"), split="dev")


def test_pixel_rows_fit_a_one_channel_image_input(tmp_path: Path) -> None:
    """Kaggle's MNIST CSV (label, pixel0..pixel783, 0..255): rows reshaped to a fixed
    one-channel image input, channels first or last; --scale applies to a table; rows of
    several channels are left alone (their order is ambiguous)."""
    from onnxdecomp.data import Dataset, fit_to_input

    rows = np.arange(2 * 12, dtype=np.float32).reshape(2, 12)
    lines = ["label," + ",".join(f"pixel{i}" for i in range(12))]
    lines += [f"{k}," + ",".join(str(int(v)) for v in r) for k, r in enumerate(rows)]
    data = write(tmp_path / "k.csv", "\n".join(lines) + "\n")
    ds = load_data(str(data), pre=Preprocess(scale=0.5))
    assert np.array_equal(ds.x, rows * 0.5) and ds.y.tolist() == [0, 1]
    for shape, want in (([None, 1, 3, 4], (2, 1, 3, 4)), ([None, 3, 4, 1], (2, 3, 4, 1)),
                        ([None, 3, 4], (2, 3, 4))):
        got = fit_to_input(ds, ["N", *shape[1:]], np.float32).x
        assert got.shape == want and np.array_equal(got.reshape(2, -1), ds.x)
    rgb = Dataset(np.zeros((2, 12), np.float32), np.zeros(2, np.int64), None, "")
    assert fit_to_input(rgb, ["N", 3, 2, 2], np.float32).x.shape == (2, 12)
    with pytest.raises(DataError, match="used exactly as stored"):
        load_data(str(data), pre=Preprocess(mean=(1.0,)))


def dense_model(path: Path, x: np.ndarray, hidden: int = 16, classes: int = 3) -> Path:
    """Gemm-Relu-Gemm with seeded weights, its logits centred on ``x`` (every class taken)."""
    rng = np.random.default_rng(0)
    features = x.shape[1]
    w1, b1 = rng.normal(size=(hidden, features)), rng.normal(size=hidden) * 0.1
    w2 = rng.normal(size=(classes, hidden))
    b2 = -(np.maximum(x @ w1.T + b1, 0) @ w2.T).mean(axis=0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_decompose_and_union_link_from_a_csv(tmp_path: Path) -> None:
    """A table with class names calibrates a decomposition, and union linking reads it
    again from the manifest."""
    from onnxdecomp.runtime import Runner

    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    model = dense_model(tmp_path / "mlp.onnx", x)
    y = Runner(str(model), device="cpu").run(x)[0].argmax(axis=1)
    names = ["bird", "cat", "dog"]
    lines = ["f0,f1,f2,f3,class"] + [
        ",".join(f"{v:.7g}" for v in row) + f",{names[k]}" for row, k in zip(x, y)]
    data = write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    out = tmp_path / "m"
    run = CliRunner().invoke
    res = run(main, ["decompose", str(model), "--data", str(data), "--keep", "0.5", "-o",
                     str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["class_name"] for m in manifest["modules"]] == names
    res = run(main, ["link", str(out / "class_0.onnx"), str(out / "class_2.onnx"), "-o",
                     str(tmp_path / "u.onnx")])
    assert res.exit_code == 0, res.output
    res = run(main, ["eval", str(tmp_path / "u.onnx"), "--data", str(data), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["top1"] > 0.8


def test_eval_notes_raw_pixels_when_near_chance(tmp_path: Path) -> None:
    """Inputs up to 255 with no --scale and a top-1 near chance: a note names --scale; with
    --scale the model decides as trained and there is no note."""
    from onnxdecomp.runtime import Runner

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(300, 4)).astype(np.float32)
    model = dense_model(tmp_path / "unit.onnx", pixels / 255.0, classes=5)
    y = Runner(str(model), device="cpu").run(pixels / 255.0)[0].argmax(axis=1)
    lines = ["p0,p1,p2,p3,label"] + [",".join(str(int(v)) for v in row) + f",{k}"
                                     for row, k in zip(pixels, y)]
    data = write(tmp_path / "pixels.csv", "\n".join(lines) + "\n")
    raw = json.loads(CliRunner().invoke(main, ["eval", str(model), "--data", str(data),
                                               "--json"]).stdout)
    assert raw["top1"] < 0.4
    assert any("give --scale 0.00392" in n for n in raw["notes"])
    scaled = json.loads(CliRunner().invoke(main, ["eval", str(model), "--data", str(data),
                                                  "--scale", str(1 / 255), "--json"]).stdout)
    assert scaled["top1"] > 0.99 and scaled["notes"] == []
    # inputs up to 5.1: not pixels; the note names the scale to 0..1 (1/6)
    small = pixels / 50
    lines = ["p0,p1,p2,p3,label"] + [",".join(f"{v:.3f}" for v in row) + f",{k}"
                                     for row, k in zip(small, y)]
    data = write(tmp_path / "small.csv", "\n".join(lines) + "\n")
    res = json.loads(CliRunner().invoke(main, ["eval", str(model), "--data", str(data),
                                               "--json"]).stdout)
    assert res["top1"] < 0.4 and any("give --scale 0.167 " in n for n in res["notes"])
