"""Tests for onnxdecomp.data: every spec form, preprocessing, subsampling and each error."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from onnxdecomp.cli.options import add_data_options, dataset_from_options
from onnxdecomp.data import (
    Dataset,
    Preprocess,
    check_dataset,
    fit_to_input,
    load_data,
    read_idx,
    read_image_tree,
)
from onnxdecomp.data.load import _stratified_subsample
from onnxdecomp.errors import DataError

# ../shared/data from the repository root; tests that need it skip when it is absent.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir(), reason=f"real data sets not present at {SHARED}"
)


# --------------------------------------------------------------------------- builders


def write_idx(path: Path, arr: np.ndarray, compress: bool) -> Path:
    """Write ``arr`` (uint8) as an IDX file, gzipped when ``compress``."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_idx(folder: Path, compress: bool, n_train: int = 12, n_test: int = 6) -> dict:
    """An MNIST-layout folder of tiny 4x5 images; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 4, 5), dtype=np.uint8)
        y = (np.arange(n) % 3).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, compress)
        out[prefix] = (x, y)
    return out


def pixel(split: str, cls: int, i: int) -> tuple[int, int, int]:
    """A distinct, JPEG-stable colour per image so order and labels can be checked."""
    return (40 * cls + 10 * i, 100 if split == "train" else 200, 30)


def make_tree(root: Path, fmt: str = "PNG", gray: bool = False) -> Path:
    """``root/<split>/<class>/<i>.png``: classes 'cat','ant' (so sorting matters), 3+2 images."""
    ext = "png" if fmt == "PNG" else "jpg"
    for split, n in (("train", 3), ("test", 2)):
        for cls, name in enumerate(["ant", "cat"]):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                im = Image.new("RGB", (5, 4), pixel(split, cls, i))
                if gray:
                    im = im.convert("L")
                im.save(d / f"{i:02d}.{ext}", fmt)
    return root


def make_tar(tmp_path: Path, top: str = "imgs") -> Path:
    """A tar.gz of an image tree under one top folder, like cifar10-jpg-q75.tar.gz."""
    tree = make_tree(tmp_path / "src" / top)
    out = tmp_path / "imgs.tar.gz"
    with tarfile.open(out, "w:gz") as tf:
        tf.add(tree, arcname=top)
    return out


def tiny_model(shape: list, elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """input [N, *shape] -> Flatten -> MatMul -> [N, 10]."""
    feat = int(np.prod(shape))
    w = numpy_helper.from_array(np.ones((feat, 10), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", elem, ["N", *shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [w],
    )
    # IR 8: readable by any onnxruntime this project supports (the newest onnx writes IR 14).
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


# --------------------------------------------------------------------------- npz


def test_npz_labels_1d_and_class_names(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float64).reshape(6, 4)
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=np.array([0, 1, 2, 0, 1, -1]), class_names=np.array(["a", "b", "c"]))
    ds = load_data(str(p), split="train")  # split is ignored for npz
    assert ds.x.dtype == np.float64 and np.array_equal(ds.x, x)  # used exactly as stored
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 2, 0, 1, -1]
    assert ds.class_names == ["a", "b", "c"]
    assert "6 samples" in ds.source


def test_npz_leaves_arrays_of_another_length_beside_x(tmp_path: Path) -> None:
    """A one-input model takes ``x`` and leaves a meta array (it was refused as inputs of
    differing sample counts); arrays of x's length stay a multi-input model's fields."""
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=np.arange(6) % 2, meta=np.arange(3), version=np.array(2))
    ds = load_data(str(p))
    assert np.array_equal(ds.x, x) and ds.y.tolist() == [0, 1, 0, 1, 0, 1]
    np.savez(p, x=x, mask=np.ones((6, 4), np.int64), meta=np.arange(3))
    assert load_data(str(p)).x.dtype.names == ("x", "mask")


def test_npz_labels_per_timestep_and_explicit_dtype(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.int32).reshape(3, 4)  # token ids
    y = np.array([[0, 1, -1, -1], [1, 1, 0, -1], [2, -1, -1, -1]])
    p = tmp_path / "seq.npz"
    np.savez(p, x=x, y=y)
    ds = load_data(str(p))
    assert ds.x.dtype == np.int32 and ds.y.shape == (3, 4) and ds.class_names is None
    ds64 = load_data(str(p), pre=Preprocess(dtype="int64"))
    assert ds64.x.dtype == np.int64 and np.array_equal(ds64.x, x)


def test_npy_is_unlabelled_inputs(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"), split="train", limit=2)
    assert ds.x.shape == (2, 4) and ds.y.tolist() == [-1, -1]
    assert ds.source == "x.npy npy, unlabelled (2 of 3 samples, random, seed 0)"
    assert load_data(str(tmp_path / "x.npy"), pre=Preprocess(dtype="float64")).x.dtype == \
        np.float64
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read npy file .*o.npy"):
        load_data(str(tmp_path / "o.npy"))
    with pytest.raises(DataError, match="used exactly as stored"):
        load_data(str(tmp_path / "x.npy"), pre=Preprocess(resize=(2, 2)))


def test_npz_rejects_image_preprocessing(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((2, 3), np.float32), y=np.array([0, 1]))
    with pytest.raises(DataError, match="used exactly as stored"):
        load_data(str(p), pre=Preprocess(scale=0.5))


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_idx_gzip_and_plain(tmp_path: Path, compress: bool) -> None:
    arrays = make_idx(tmp_path / "mn", compress)
    x, y = read_idx(tmp_path / "mn", "test")
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, arrays["t10k"][0]) and np.array_equal(y, arrays["t10k"][1])
    ds = load_data(str(tmp_path / "mn"), split="train")
    assert ds.x.shape == (12, 1, 4, 5) and ds.x.dtype == np.float32
    assert np.array_equal(ds.x[:, 0], arrays["train"][0].astype(np.float32))
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.source == "mn IDX train split (12 samples)"
    assert len(load_data(str(tmp_path / "mn"), split="all").x) == 18


# --------------------------------------------------------------------------- image trees


def test_image_folder_order_labels_and_names(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    x, y, names = read_image_tree(root, "train")
    assert names == ["ant", "cat"] and x.shape == (6, 4, 5, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    # sorted by class, then file name: the red channel encodes (class, index)
    assert x[:, 0, 0, 0].tolist() == [pixel("train", c, i)[0] for c in (0, 1) for i in range(3)]
    ds = load_data(str(root), split="test")
    assert ds.x.shape == (4, 3, 4, 5) and ds.x.dtype == np.float32


def test_image_grayscale_has_one_channel(tmp_path: Path) -> None:
    x, _, _ = read_image_tree(make_tree(tmp_path / "g", gray=True), "test")
    assert x.shape == (4, 4, 5, 1)


def test_image_tar_gz_with_top_folder(tmp_path: Path) -> None:
    tar = make_tar(tmp_path)
    x, y, names = read_image_tree(tar, "train")
    assert names == ["ant", "cat"] and x.shape == (6, 4, 5, 3) and y.tolist() == [0] * 3 + [1] * 3
    ref, _, _ = read_image_tree(tmp_path / "src" / "imgs", "train")
    assert np.array_equal(x, ref)  # same bytes whether read from the tar or the folder
    ds = load_data(str(tar), split="all", pre=Preprocess(layout="nhwc"))
    assert ds.x.shape == (10, 4, 5, 3)


def test_image_folder_without_splits_is_every_split(tmp_path: Path) -> None:
    """torchvision's ImageFolder layout, <class>/<image>: read whole for any split."""
    flat = tmp_path / "flat"
    (make_tree(tmp_path / "t") / "train").rename(flat)
    x, y, names = read_image_tree(flat, "train")
    assert names == ["ant", "cat"] and x.shape == (6, 4, 5, 3) and y.tolist() == [0] * 3 + [1] * 3
    assert x[:, 0, 0, 0].tolist() == [pixel("train", c, i)[0] for c in (0, 1) for i in range(3)]
    assert np.array_equal(read_image_tree(flat, "test")[0], x)
    assert load_data(str(flat), split="all").x.shape == (6, 3, 4, 5)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images found as \[<split>/\]<class>"):
        read_image_tree(tmp_path / "empty", "train")


def test_image_jpeg(tmp_path: Path) -> None:
    x, y, _ = read_image_tree(make_tree(tmp_path / "j", fmt="JPEG"), "test")
    assert x.shape == (4, 4, 5, 3) and y.tolist() == [0, 0, 1, 1]
    # JPEG is lossy: colours are close, not exact
    assert abs(int(x[2, 0, 0, 1]) - pixel("test", 1, 0)[1]) < 8


# --------------------------------------------------------------------------- sklearn digits


def test_sklearn_digits_splits_stratified() -> None:
    train = load_data("sklearn:digits", split="train")
    test = load_data("sklearn:digits", split="test")
    every = load_data("sklearn:digits", split="all")
    assert every.x.shape == (1797, 1, 8, 8) and every.x.dtype == np.float32
    assert len(train.x) + len(test.x) == 1797 and len(test.x) == 450
    assert every.x.min() == 0 and every.x.max() == 16  # raw values
    frac = np.bincount(test.y, minlength=10) / np.bincount(every.y, minlength=10)
    assert np.all(np.abs(frac - 0.25) < 0.02)  # every class split 75/25
    assert np.array_equal(load_data("sklearn:digits", split="test").x, test.x)  # deterministic


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_values_layout_dtype(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    raw, _, _ = read_image_tree(root, "test")  # [N, H, W, 3] uint8
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    pre = Preprocess(scale=1 / 255, mean=mean, std=std, layout="nchw", dtype="float64")
    ds = load_data(str(root), pre=pre)
    want = (raw / 255 - np.array(mean)) / np.array(std)
    assert ds.x.dtype == np.float64 and ds.x.shape == (4, 3, 4, 5)
    np.testing.assert_allclose(ds.x, want.transpose(0, 3, 1, 2), rtol=1e-12)
    nhwc = load_data(str(root), pre=Preprocess(scale=2.0, mean=(1.0,), layout="nhwc"))
    assert nhwc.x.dtype == np.float32
    np.testing.assert_allclose(nhwc.x, raw * 2.0 - 1.0)
    assert load_data(str(root), pre=Preprocess(dtype="uint8")).x.dtype == np.uint8
    f16 = load_data(str(root), pre=Preprocess(dtype="float16"))
    assert f16.x.dtype == np.float16 and np.array_equal(f16.x, raw.transpose(0, 3, 1, 2))


def test_preprocess_errors(tmp_path: Path) -> None:
    root = str(make_tree(tmp_path / "t"))
    with pytest.raises(DataError, match="2 values but the images have 3 channel"):
        load_data(root, pre=Preprocess(mean=(0.1, 0.2)))
    with pytest.raises(DataError, match="zero"):
        load_data(root, pre=Preprocess(std=(0.0,)))
    with pytest.raises(DataError, match="unknown dtype"):
        load_data(root, pre=Preprocess(dtype="floaty"))
    with pytest.raises(DataError, match="do not fit"):
        load_data(root, pre=Preprocess(scale=10.0, dtype="uint8"))


# --------------------------------------------------------------------------- limit


def test_limit_stratified_and_deterministic(tmp_path: Path) -> None:
    y = np.repeat([0, 1, 2, 3], [40, 30, 20, 10])
    np.random.default_rng(3).shuffle(y)
    p = tmp_path / "d.npz"
    np.savez(p, x=np.arange(100, dtype=np.float32)[:, None], y=y)
    a = load_data(str(p), limit=20, seed=5)
    assert len(a.x) == 20 and np.bincount(a.y).tolist() == [8, 6, 4, 2]
    assert np.all(np.diff(a.x[:, 0]) > 0)  # original order kept
    assert np.array_equal(a.y, y[a.x[:, 0].astype(int)])  # x and y stay paired
    assert np.array_equal(load_data(str(p), limit=20, seed=5).x, a.x)
    assert not np.array_equal(load_data(str(p), limit=20, seed=6).x, a.x)
    assert "20 of 100 samples" in a.source
    assert len(load_data(str(p), limit=1000).x) == 100


@pytest.mark.parametrize("packed", [False, True])
def test_limit_decodes_only_the_images_it_keeps(tmp_path: Path, packed: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An image tree is subsampled from its labels before decoding: the same samples as
    decoding every image and subsampling after, with only the kept ones decoded."""
    import onnxdecomp.data.readers as readers

    root = make_tar(tmp_path) if packed else make_tree(tmp_path / "t")
    full = load_data(str(root), split="train")
    decoded: list[int] = []
    real = readers._decode
    monkeypatch.setattr(readers, "_decode",
                        lambda blobs, path, fit=None: decoded.append(len(blobs))
                        or real(blobs, path, fit))
    some = load_data(str(root), split="train", limit=4, seed=1)
    keep = _stratified_subsample(full.y, 4, 1)
    assert np.array_equal(some.x, full.x[keep]) and np.array_equal(some.y, full.y[keep])
    assert decoded == [4] and "4 of 6 samples, stratified, seed 1" in some.source
    one = load_data(str(root), split="train", classes=[1], limit=2)
    assert one.y.tolist() == [1, 1] and decoded[-1] == 2
    assert one.source.endswith("classes 1 (2 of 3 samples, stratified, seed 0)")
    with pytest.raises(DataError, match=r"no sample of classes \[5\]"):
        load_data(str(root), split="train", classes=[5])


def test_npz_in_keras_layout_reads_the_split(tmp_path: Path) -> None:
    """Keras' ``mnist.npz`` layout (x_train, y_train, x_test, y_test): --split picks the
    pair, ``all`` joins them in the order train, test; a split it lacks is one line."""
    rng = np.random.default_rng(4)
    arrays = {f"{a}_{sp}": (rng.integers(0, 255, (n, 4, 4), dtype=np.uint8) if a == "x"
                            else rng.integers(0, 3, n).astype(np.uint8))
              for sp, n in (("train", 9), ("test", 5)) for a in ("x", "y")}
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    train = load_data(str(path), split="train", pre=Preprocess(dtype="float32"))
    assert np.array_equal(train.x, arrays["x_train"].astype(np.float32))
    assert np.array_equal(train.y, arrays["y_train"]) and train.y.dtype == np.int64
    assert train.source == "mnist.npz npz train split (9 samples)"
    both = load_data(str(path), split="all")
    assert np.array_equal(both.x, np.concatenate([arrays["x_train"], arrays["x_test"]]))
    assert np.array_equal(load_data(str(path)).y, arrays["y_test"])  # the default: test
    with pytest.raises(DataError, match=r"unknown split 'val' in .*: it has test, train"):
        load_data(str(path), split="val")


def test_one_hot_and_column_labels_are_class_indices(tmp_path: Path) -> None:
    """Keras' one-hot labels ([N, K], ``to_categorical``'s float rows) and a column (N, 1)
    are the class indices they stand for; per-step labels ([N, T], padding -1) stay."""
    y = np.array([2, 0, 1, 2, 1])
    x = np.zeros((5, 3), np.float32)
    for name, labels in (("hot", np.eye(3, dtype=np.float32)[y]), ("col", y[:, None])):
        np.savez(tmp_path / f"{name}.npz", x=x, y=labels)
        ds = load_data(str(tmp_path / f"{name}.npz"))
        assert ds.y.tolist() == y.tolist() and ds.y.dtype == np.int64
    steps = np.array([[1, 0, -1], [0, 1, 0], [2, 2, -1], [0, 0, 1], [1, 0, 0]])
    np.savez(tmp_path / "steps.npz", x=x, y=steps)
    assert np.array_equal(load_data(str(tmp_path / "steps.npz")).y, steps)


# --------------------------------------------------------------------------- fit_to_input


def _ds(x: np.ndarray) -> Dataset:
    return Dataset(x, np.zeros(len(x), np.int64), None, "test")


def test_fit_to_input_cases() -> None:
    img = np.zeros((2, 1, 8, 8), np.float32)
    assert fit_to_input(_ds(img), ("N", 64), np.float32).x.shape == (2, 64)
    nhwc = np.zeros((2, 4, 4, 3), np.float32)
    assert fit_to_input(_ds(nhwc), (None, 48), np.float32).x.shape == (2, 48)
    hw = np.zeros((2, 8, 8), np.float32)
    assert fit_to_input(_ds(hw), ("N", 1, 8, 8), np.float32).x.shape == (2, 1, 8, 8)
    assert fit_to_input(_ds(hw), ("N", 8, 8, 1), np.float32).x.shape == (2, 8, 8, 1)
    # channels-first images to a channels-last model and back; [N, 1, H, W] to [N, H, W]
    rgb = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    last = fit_to_input(_ds(rgb), ("N", 4, 5, 3), np.float32).x
    np.testing.assert_array_equal(last, rgb.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(fit_to_input(_ds(last), ("N", 3, 4, 5), np.float32).x, rgb)
    assert fit_to_input(_ds(img), ("N", 8, 8), np.float32).x.shape == (2, 8, 8)
    # float -> float cast, float -> int never
    assert fit_to_input(_ds(img), ("N", 1, 8, 8), np.float16).x.dtype == np.float16
    assert fit_to_input(_ds(img), ("N", 1, 8, 8), np.int64).x.dtype == np.float32
    # ambiguous or mismatched: left alone
    assert fit_to_input(_ds(img), ("N", 63), np.float32).x.shape == (2, 1, 8, 8)
    assert fit_to_input(_ds(img), ("N", "F"), np.float32).x.shape == (2, 1, 8, 8)
    square = np.zeros((2, 1, 1), np.float32)  # [N,1,1] -> rank 4 [N,1,1,1]: ambiguous
    assert fit_to_input(_ds(square), ("N", 1, 1, 1), np.float32).x.shape == (2, 1, 1)
    same = _ds(img)
    assert fit_to_input(same, ("N", 1, 8, 8), np.float32) is same


def test_runner_check_input_shape_and_dtype() -> None:
    from onnxdecomp.runtime import Runner

    runner = Runner(tiny_model([1, 8, 8]), device="cpu")
    good = np.zeros((3, 1, 8, 8), np.float32)
    runner.check_input(good)
    with pytest.raises(DataError, match="input shape mismatch on axis 2"):
        runner.check_input(np.zeros((3, 1, 7, 8), np.float32))
    with pytest.raises(DataError, match="input rank mismatch"):
        runner.check_input(np.zeros((3, 64), np.float32))
    with pytest.raises(DataError, match="dtype mismatch: data is float64.*expects float32"):
        runner.check_input(good.astype(np.float64))
    # fit_to_input repairs what is unambiguous, so the same data then passes
    fitted = fit_to_input(_ds(np.zeros((3, 8, 8), np.float64)), runner.input.shape, np.float32)
    runner.check_input(fitted.x)
    flat = Runner(tiny_model([64]), device="cpu")
    flat.check_input(fit_to_input(_ds(good), flat.input.shape, flat.input.dtype).x)


# --------------------------------------------------------------------------- errors


def test_error_missing_and_unrecognised(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data not found: .*nope"):
        load_data(str(tmp_path / "nope"))
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(DataError, match="unrecognised data .*notes.txt"):
        load_data(str(odd))
    with pytest.raises(DataError, match="IDX folder not found"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="only sklearn:digits"):
        load_data("sklearn:iris")


def test_error_unknown_split(tmp_path: Path) -> None:
    make_idx(tmp_path / "mn", compress=True)
    with pytest.raises(DataError, match="unknown split 'val' for IDX folder .*train, test"):
        load_data(str(tmp_path / "mn"), split="val")
    with pytest.raises(DataError, match="unknown split 'val' in .*tree: it has test, train"):
        load_data(str(make_tree(tmp_path / "tree")), split="val")
    with pytest.raises(DataError, match="unknown split 'dev': choose one of"):
        load_data("sklearn:digits", split="dev")
    with pytest.raises(DataError, match="unknown split 'val' for sklearn:digits"):
        load_data("sklearn:digits", split="val")


def test_image_tree_splits_are_its_folder_names(tmp_path: Path) -> None:
    """A tree whose split folders have other names (Kaggle's training_set, test_set) is read
    by those names, from the command line too; the default split's error names them."""
    root = make_tree(tmp_path / "t")
    (root / "train").rename(root / "training_set")
    ds = load_data(str(root), split="training_set")
    assert ds.x.shape[0] == 6 and "training_set split" in ds.source
    with pytest.raises(DataError, match="unknown split 'train' in .*: it has test, training_set "
                                        r"\(or all\): give split NAME"):
        load_data(str(root), split="train")
    seen: dict = {}

    @click.command()
    @add_data_options
    def cmd(**opts) -> None:
        seen["y"] = dataset_from_options(opts).y

    res = CliRunner().invoke(cmd, ["--data", str(root), "--split", "training_set"])
    assert res.exit_code == 0, res.output
    assert seen["y"].tolist() == [0, 0, 0, 1, 1, 1]


def test_image_tree_skips_hidden_folders(tmp_path: Path) -> None:
    """A notebook's .ipynb_checkpoints copy of a class folder is no class: it shifted every
    label after it (here: test/.ipynb_checkpoints sorted before ant, and a hidden split)."""
    root = make_tree(tmp_path / "t")
    for hidden in (root / "test" / ".ipynb_checkpoints", root / ".cache" / "x"):
        hidden.mkdir(parents=True)
        Image.new("RGB", (5, 4)).save(hidden / "00.png")
    ds = load_data(str(root), split="test")
    assert ds.class_names == ["ant", "cat"] and ds.y.tolist() == [0, 0, 1, 1]


def test_image_zip_and_every_imagefolder_extension(tmp_path: Path) -> None:
    """A .zip of an image tree reads as the folder does (macOS's __MACOSX/._* entries
    skipped), and so do the extensions torchvision's ImageFolder reads (.webp, .tif, ...);
    an .npz under another name is still an .npz."""
    import zipfile

    root = make_tree(tmp_path / "src" / "imgs")
    Image.new("RGB", (5, 4), pixel("test", 0, 7)).save(root / "test" / "ant" / "07.webp",
                                                         lossless=True)
    Image.new("RGB", (5, 4), pixel("test", 1, 7)).save(root / "test" / "cat" / "07.tif")
    packed = tmp_path / "imgs.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        for f in sorted(root.rglob("*")):
            zf.write(f, f.relative_to(root.parent))
        zf.writestr("__MACOSX/imgs/test/ant/._00.png", b"resource fork")
    from_dir = load_data(str(root), split="test")
    from_zip = load_data(str(packed), split="test")
    assert from_dir.x.shape[0] == 6 and np.array_equal(from_zip.x, from_dir.x)
    assert from_zip.y.tolist() == [0, 0, 0, 1, 1, 1] and from_zip.class_names == ["ant", "cat"]
    assert np.array_equal(from_dir.x[2, :, 0, 0], np.array(pixel("test", 0, 7), np.float32))
    npz = tmp_path / "arrays.zip"
    np.savez(tmp_path / "arrays.npz", x=np.zeros((2, 3), np.float32), y=np.array([0, 1]))
    (tmp_path / "arrays.npz").rename(npz)
    assert load_data(str(npz)).x.shape == (2, 3)


def test_error_corrupt_idx(tmp_path: Path) -> None:
    folder = tmp_path / "mn"
    make_idx(folder, compress=True)
    img = folder / "t10k-images-idx3-ubyte.gz"
    img.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + bytes(20)))
    with pytest.raises(DataError, match="bad magic number.*t10k-images"):
        load_data(str(folder))
    img.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(DataError, match="corrupt gzip file .*t10k-images"):
        load_data(str(folder))
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((6, 4, 5), np.uint8), True)
    lbl = folder / "t10k-labels-idx1-ubyte.gz"
    lbl.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (6).to_bytes(4, "big") + bytes(3)))
    with pytest.raises(DataError, match="corrupt IDX file: header says shape"):
        load_data(str(folder))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8), True)
    with pytest.raises(DataError, match=r"differ in length \(6 vs 5\)"):
        load_data(str(folder))
    lbl.unlink()
    with pytest.raises(DataError, match="no test labels in IDX folder"):
        load_data(str(folder))


def test_error_bad_npz(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="cannot read npz file .*bad.npz"):
        load_data(str(bad))
    nox = tmp_path / "nox.npz"
    np.savez(nox, y=np.zeros(3, int), class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="has no array 'x'.*class_names, y"):
        load_data(str(nox))
    # Arrays named otherwise are a model's several inputs; the Runner matches their names
    # (tests/test_multi_input.py).
    named = tmp_path / "named.npz"
    np.savez(named, inputs=np.zeros(3), y=np.zeros(3, int))
    assert load_data(str(named)).x.dtype.names == ("inputs",)
    pickled = tmp_path / "obj.npz"
    np.savez(
        pickled, x=np.zeros((2, 2)), y=np.array([0, 1]), class_names=np.array([1, "a"], object)
    )
    with pytest.raises(DataError, match="cannot read npz file .*obj.npz"):
        load_data(str(pickled))


def test_error_undecodable_image(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "test" / "cat" / "99.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode image .*99.png"):
        load_data(str(root))
    bad_tar = tmp_path / "broken.tar.gz"
    bad_tar.write_bytes(gzip.compress(b"x" * 100)[:30])
    with pytest.raises(DataError, match="cannot read archive .*broken.tar.gz"):
        load_data(str(bad_tar))
    empty = tmp_path / "empty"
    (empty / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_data(str(empty))


def test_error_data_values(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((0, 3), np.float32), y=np.zeros(0, int))
    with pytest.raises(DataError, match="data is empty"):
        load_data(str(p))
    x = np.zeros((3, 2), np.float32)
    x[1, 1] = np.nan
    np.savez(p, x=x, y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="NaN or inf values in 1 sample"):
        load_data(str(p))
    np.savez(p, x=np.zeros((3, 2)), y=np.array([0.0, 0.5, 1.0]))
    with pytest.raises(DataError, match="labels must be integers, got float64"):
        load_data(str(p))
    np.savez(p, x=np.zeros((3, 2)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="x and y differ in length: 3 inputs but 2 labels"):
        load_data(str(p))
    np.savez(p, x=np.zeros((3, 2)), y=np.array([0, -2, 1]))
    with pytest.raises(DataError, match="label -2 is negative"):
        load_data(str(p))


def test_check_dataset_label_range() -> None:
    ds = Dataset(np.zeros((4, 2), np.float32), np.array([0, 3, -1, 12]), None, "toy")
    with pytest.raises(DataError, match="label 12 is out of range: the model has 10 "
                                        r"classes \(labels 0..9, -1 = ignore\) in toy$"):
        check_dataset(ds, 10)
    check_dataset(ds, 13)
    one_based = Dataset(np.zeros((3, 2), np.float32), np.array([1, 3, 2]), None, "toy")
    with pytest.raises(DataError, match="label 3 is out of range.* in toy: they look "
                                        "numbered from 1; subtract 1"):
        check_dataset(one_based, 3)
    ds.x[0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or inf"):
        check_dataset(ds, 13)
    ds = Dataset(np.zeros((2, 2), np.float32), np.array([0.0, 1.0]), None, "toy")
    with pytest.raises(DataError, match="labels must be integers"):
        check_dataset(ds, 2)


# --------------------------------------------------------------------------- CLI options


def test_click_options_build_the_dataset(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    seen: dict = {}

    @click.command()
    @add_data_options
    def cmd(**opts) -> None:
        ds = dataset_from_options(opts)
        seen["x"] = ds.x

    args = ["--data", str(root), "--split", "train", "--limit", "4", "--scale", "0.5"]
    args += ["--mean", "1, 1,1", "--std", "2", "--layout", "nhwc", "--dtype", "float64"]
    res = CliRunner().invoke(cmd, args)
    assert res.exit_code == 0, res.output
    pre = Preprocess(scale=0.5, mean=(1.0, 1.0, 1.0), std=(2.0,), layout="nhwc", dtype="float64")
    want = load_data(str(root), split="train", pre=pre, limit=4)
    assert seen["x"].shape == (4, 4, 5, 3) and seen["x"].dtype == np.float64
    assert np.array_equal(seen["x"], want.x)
    help_text = CliRunner().invoke(cmd, ["--help"]).output
    for flag in ("--data", "--split", "--limit", "--scale", "--mean", "--std", "--layout"):
        assert flag in help_text
    with pytest.raises(DataError, match="--mean must be comma-separated numbers"):
        dataset_from_options({"data": str(root), "mean": "a,b"})


# --------------------------------------------------------------------------- real data


@needs_shared
def test_real_mnist() -> None:
    test = load_data(str(SHARED / "mnist"))
    assert test.x.shape == (10000, 1, 28, 28) and test.x.dtype == np.float32
    x, _ = read_idx(SHARED / "mnist", "train")
    assert x.shape == (60000, 28, 28)
    assert abs(x.mean() / 255 - 0.1307) < 1e-3


@needs_shared
def test_real_fashion_mnist_balanced() -> None:
    _, y = read_idx(SHARED / "fashion-mnist", "test")
    assert np.bincount(y).tolist() == [1000] * 10


@pytest.mark.skipif(
    not (SHARED / "cifar10-jpg" / "cifar10-jpg-q75.tar.gz").is_file(),
    reason=f"CIFAR-10 (JPEG q75) not present under {SHARED}",
)
def test_real_cifar10_jpg() -> None:
    ds = load_data(str(SHARED / "cifar10-jpg" / "cifar10-jpg-q75.tar.gz"))
    assert ds.x.shape == (10000, 3, 32, 32)
    assert ds.class_names == sorted(ds.class_names) and len(ds.class_names) == 10
    assert np.bincount(ds.y).tolist() == [1000] * 10
    assert np.allclose((ds.x / 255).mean(axis=(0, 2, 3)), [0.491, 0.482, 0.447], atol=0.01)
