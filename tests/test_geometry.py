"""Images fitted to a model (data/geometry.py, data/preprocess.py): --resize, --crop,
--channels and --channel-order, from the readers to the manifest that union linking reads
the calibration data back from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from onnxdecomp.cli import main
from onnxdecomp.data import DataSpec, Preprocess, load_data
from onnxdecomp.data.geometry import crop_box, fit_image, parse_size, resized_size
from onnxdecomp.errors import DataError

ROOT = Path(__file__).resolve().parents[1]

SIZES = [(6, 8), (12, 16), (9, 9)]  # (H, W) of the images, in turn


def colour(cls: int, i: int) -> tuple[int, int, int]:
    return (40 * cls + 10, 5 * i, 200 - 30 * cls)


def make_sized_tree(root: Path) -> Path:
    """train/<class>/<i>.png of one colour each, in three sizes."""
    for cls in range(2):
        (root / "train" / f"c{cls}").mkdir(parents=True)
        for i in range(6):
            h, w = SIZES[i % 3]
            Image.new("RGB", (w, h), colour(cls, i)).save(root / "train" / f"c{cls}" / f"{i}.png")
    return root


def test_parse_size() -> None:
    assert parse_size("32", "resize") == (32,)
    assert parse_size("32,24", "resize") == (32, 24)
    assert parse_size("32x24", "crop", pair_only=True) == (32, 24)
    assert parse_size(None, "resize") is None
    for bad in ("0", "a,b", "1,2,3", ""):
        with pytest.raises(DataError, match="resize takes N"):
            parse_size(bad, "resize")
    with pytest.raises(DataError, match="crop takes H,W"):
        parse_size("32", "crop", pair_only=True)
    # decoded at that size until the memory ran out (killed, exit 137)
    with pytest.raises(DataError, match="over 16384 pixels"):
        parse_size("100000", "resize")


def test_resize_keeps_the_aspect_on_the_shorter_side_as_torchvision() -> None:
    # torchvision's Resize(36): the shorter side to 36, the longer int(36 * long / short)
    assert resized_size(30, 40, (36,)) == (36, 48)
    assert resized_size(40, 30, (36,)) == (48, 36)
    assert resized_size(375, 500, (256,)) == (256, 341)
    assert resized_size(30, 40, (32, 32)) == (32, 32)
    # CenterCrop: top = round((H - h) / 2), left = round((W - w) / 2)
    assert crop_box(48, 36, (32, 32), "a") == (2, 8, 34, 40)
    with pytest.raises(DataError, match="crop.*larger than image a"):
        crop_box(30, 40, (32, 32), "a")


def test_fit_image_is_pil_bilinear_resize_then_centre_crop() -> None:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    got = np.asarray(fit_image(im, (36,), (32, 32), None, "x"))
    want = np.asarray(im.resize((48, 36), Image.Resampling.BILINEAR).crop((8, 2, 40, 34)))
    assert got.shape == (32, 32, 3) and np.array_equal(got, want)
    gray = np.asarray(fit_image(im, None, None, 1, "x"))
    assert gray.shape == (30, 40) and np.array_equal(gray, np.asarray(im.convert("L")))


def test_tree_of_several_sizes_needs_resize_then_reads(tmp_path: Path) -> None:
    root = make_sized_tree(tmp_path / "t")
    with pytest.raises(DataError, match="images differ in size.*6x8, 9x9, 12x16.*resize H,W"):
        load_data(str(root), split="train")
    ds = load_data(str(root), split="train", pre=Preprocess(resize=(10, 12)))
    assert ds.x.shape == (12, 3, 10, 12) and list(ds.y) == [0] * 6 + [1] * 6
    # one colour per image: resizing keeps it, so each sample is its own colour
    for j, (cls, i) in enumerate([(c, i) for c in range(2) for i in range(6)]):
        assert np.array_equal(ds.x[j, :, 5, 6], np.array(colour(cls, i), np.float32))
    ds = load_data(str(root), split="train", limit=4,
                   pre=Preprocess(resize=(9,), crop=(8, 8), channels=1))
    assert ds.x.shape == (4, 1, 8, 8)
    assert "gray, resized to 9 on the shorter side, centre 8x8" in ds.source


def test_arrays_resize_and_channels() -> None:
    digits = load_data("sklearn:digits", split="test", pre=Preprocess(resize=(16, 16)))
    plain = load_data("sklearn:digits", split="test")
    assert digits.x.shape == (len(plain.y), 1, 16, 16)
    # a bilinear upscale of 0..16 values stays in 0..16 and keeps each image's mean roughly
    assert digits.x.min() >= 0 and digits.x.max() <= 16
    assert np.allclose(digits.x.mean(axis=(1, 2, 3)), plain.x.mean(axis=(1, 2, 3)), atol=0.6)
    rgb = load_data("sklearn:digits", split="test", pre=Preprocess(channels=3))
    assert rgb.x.shape == (len(plain.y), 3, 8, 8)
    assert all(np.array_equal(rgb.x[:, c], plain.x[:, 0]) for c in range(3))


def test_bgr_reverses_the_colours_before_the_mean(tmp_path: Path) -> None:
    """--channel-order bgr (Caffe's and OpenCV's models): channels reversed, then the mean
    and std, which such a model's documentation gives in BGR order."""
    root = make_sized_tree(tmp_path / "t")
    pre = Preprocess(resize=(6, 8), channel_order="bgr", mean=(1.0, 2.0, 3.0))
    ds = load_data(str(root), split="train", pre=pre)
    r, g, b = colour(0, 0)
    assert ds.x[0, :, 0, 0].tolist() == [b - 1.0, g - 2.0, r - 3.0]
    assert ds.source.endswith("resized to 6x8, BGR (12 samples)")
    with pytest.raises(DataError, match="unknown channel order 'grb'"):
        load_data(str(root), split="train", pre=Preprocess(resize=(6, 8), channel_order="grb"))
    res = CliRunner().invoke(main, ["eval", str(ROOT / "models" / "resnet20_cifar10.onnx"),
                                    "--data", str(root), "--split", "train", "--resize",
                                    "32,32", "--channel-order", "bgr", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["data"].endswith("resized to 32x32, BGR (12 samples)")


def test_npz_refuses_geometry(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((2, 1, 4, 4), np.float32), y=np.array([0, 1]))
    with pytest.raises(DataError, match="used exactly as stored.*resize"):
        load_data(str(p), pre=Preprocess(resize=(8, 8)))
    with pytest.raises(DataError, match="used exactly as stored.*channel_order"):
        load_data(str(p), pre=Preprocess(channel_order="bgr"))


def test_data_spec_round_trip_keeps_the_geometry(tmp_path: Path) -> None:
    spec = DataSpec(str(tmp_path), "train", 10, 0,
                    Preprocess(resize=(36,), crop=(32, 32), channels=3, channel_order="bgr"))
    again = DataSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    old = DataSpec.from_json({"data": "sklearn:digits", "split": "train"})  # older manifests
    assert old.pre == Preprocess()


def test_shape_mismatch_names_the_fix() -> None:
    from onnxdecomp.runtime import Runner

    runner = Runner(str(ROOT / "models" / "cnn_digits.onnx"), device="cpu")
    with pytest.raises(DataError, match=r"image data: resize 8,8 channels 1\)"):
        runner.check_input(np.zeros((2, 3, 12, 12), np.float32))


def test_decompose_and_union_link_read_resized_images_again(tmp_path: Path) -> None:
    """The manifest records --resize: union linking reads the calibration images again,
    which differ in size, exactly as decompose did."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "digits"
    for j, (img, label) in enumerate(zip(d.images[:300], d.target[:300])):
        folder = root / "train" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        side = (8, 16, 24)[j % 3]
        pil = Image.fromarray((img * 15).astype(np.uint8)).resize((side, side),
                                                                  Image.Resampling.NEAREST)
        pil.save(folder / f"{j}.png")
    out = tmp_path / "m"
    run = CliRunner().invoke
    args = ["decompose", str(ROOT / "models" / "cnn_digits.onnx"), "--data", str(root),
            "--resize", "8,8", "--scale", str(1 / 15), "--keep", "0.5", "-o", str(out)]
    res = run(main, args)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration"]["resize"] == [8, 8]
    linked = tmp_path / "u.onnx"
    res = run(main, ["link", str(out / "class_0.onnx"), str(out / "class_1.onnx"), "-o",
                     str(linked)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == f"PASSED | onnxdecomp link -o {linked}"
    res = run(main, ["decompose", str(ROOT / "models" / "cnn_digits.onnx"), "--data",
                     str(root), "-o", str(tmp_path / "n")])
    assert res.exit_code == 1 and "--resize H,W" in res.output
