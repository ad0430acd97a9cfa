"""Linking modules of several models: across data sets, replacement and patching.

Every module comes from ``onnxdecomp decompose`` with its defaults (1,000 training
calibration samples); linked and replaced models are built with the ``link`` and
``replace`` APIs exactly as the command line builds them, and evaluated on full test splits.

- cross: two parents' modules in one model (default ``link``: each parent's modules united,
  the parts side by side, a combiner fitted on ``--calibrate`` = 1,000 training images of
  each data set), evaluated on both test sets together (labels: the first parent's classes,
  then the second's); every combiner is reported, against the mean of the parents'
  accuracies on their own test sets.
- unlabelled: the same with calibration sets stripped of their labels (1,000 random
  training images of each data set, saved as ``.npz`` without ``y``): the decompositions,
  the unions and the combiners learn from the parents' own decisions alone.
- replace (FSE'20): the model trained with 500 fives with class 5 decided by the normally
  trained model's module; each class of a model replaced by its own module.
- patch (CNNSplitter): the weak Fashion-MNIST model (100 Shirts) with Shirt decided by the
  strong model's module: target-class precision, recall and F1, non-target accuracy.

    python -m benchmarks.link_models [--only cross,unlabelled,replace,patch]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from onnxdecomp import link, replace
from onnxdecomp.data import DataSpec, fit_to_input, load_data
from onnxdecomp.link import combine
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path("/tmp/onnxdecomp-bench")


def modules_of(model: str, data: str, tag: str = "") -> Path:
    """The default decomposition of ``model`` (made once, kept under /tmp)."""
    out = WORK / (Path(model).stem + tag)
    if not (out / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "onnxdecomp.cli", "decompose", model, "--data",
                        data, "-o", str(out)], check=True, cwd=ROOT, capture_output=True)
    return out


def test_split(spec: str, model) -> tuple[np.ndarray, np.ndarray]:
    r = Runner(model, device="cpu")
    ds = fit_to_input(load_data(spec, "test"), r.input.shape, r.input.dtype)
    return ds.x, ds.y


def predict(model, x: np.ndarray) -> np.ndarray:
    out = Runner(model, device="cpu").run(x)
    return out[1] if len(out) > 1 else out[0].argmax(axis=1)


def top1(model, x, y) -> float:
    return round(float(np.mean(predict(model, x) == y)), 4)


def unlabelled_spec(data: str, n: int = 1000, seed: int = 0) -> DataSpec:
    """``n`` random training samples of ``data`` saved without labels (under /tmp)."""
    ds = load_data(data, "train")
    keep = np.sort(np.random.default_rng(seed).choice(len(ds.x), n, replace=False))
    path = WORK / f"unlabelled_{Path(data).name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=ds.x[keep])
    return DataSpec(str(path))


def cross(a: tuple[str, str], b: tuple[str, str], unlabelled: bool = False) -> dict:
    (ma, da), (mb, db) = a, b
    xa, ya = test_split(da, ma)
    xb, yb = test_split(db, mb)
    ka = model_stats(ma).outputs[0].shape[1]
    x, y = np.concatenate([xa, xb]), np.concatenate([ya, yb + ka])
    parents = {"first": top1(ma, xa, ya), "second": top1(mb, xb, yb)}
    mean = (parents["first"] + parents["second"]) / 2
    calib = ([unlabelled_spec(da), unlabelled_spec(db)] if unlabelled
             else [DataSpec(da, "train", 1000), DataSpec(db, "train", 1000)])
    folders = ([modules_of(ma, calib[0].data, "_unlabelled"),
                modules_of(mb, calib[1].data, "_unlabelled")] if unlabelled
               else [modules_of(ma, da), modules_of(mb, db)])
    rows = {}
    for name in combine.COMBINERS:
        result = link(folders, calibrate=calib, combiner=name, device="cpu")
        acc = top1(result.proto, x, y)
        rows[name] = {"chosen": result.combiner, "top1": acc,
                      "loss_pp": round(100 * (mean - acc), 2),
                      "macs": model_stats(result.proto).macs, "held_out": result.held_out,
                      "parts": [{k: p.get(k) for k in ("kind", "keep", "macs_fraction",
                                                        "fidelity")} for p in result.parts]}
        print(name, json.dumps(rows[name]), flush=True)
    return {"first": ma, "second": mb, "parents_top1": parents, "parents_mean": mean,
            "test_samples": int(len(y)), "calibration": [c.data for c in calib],
            "combiners": rows}


def class_scores(pred: np.ndarray, y: np.ndarray, c: int) -> dict:
    tp = int(np.sum((pred == c) & (y == c)))
    precision = tp / max(int(np.sum(pred == c)), 1)
    recall = tp / max(int(np.sum(y == c)), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    other = y != c
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "non_target_top1": round(float(np.mean(pred[other] == y[other])), 4),
            "top1": round(float(np.mean(pred == y)), 4)}


def replacement() -> dict:
    mnist = str(DATA / "mnist")
    weak, normal = "models/lenet5_mnist_five500.onnx", "models/lenet5_mnist.onnx"
    x, y = test_split(mnist, normal)
    folder = modules_of(normal, mnist)
    calib = DataSpec(mnist, "train", 1000)
    out = {"weak": class_scores(predict(weak, x), y, 5),
           "normal": class_scores(predict(normal, x), y, 5)}
    for how, spec in (("raw", None), ("calibrated", calib)):
        result = replace(weak, [(5, folder / "class_5.onnx")], calibrate=spec, device="cpu")
        out[f"replaced_{how}"] = {**class_scores(predict(result.proto, x), y, 5),
                                  "combiner": result.combiner}
    own = []
    base = top1(normal, x, y)
    for k in range(10):
        result = replace(normal, [(k, folder / f"class_{k}.onnx")], device="cpu")
        own.append(round(100 * (base - top1(result.proto, x, y)), 2))
    out["own_module_loss_pp"] = own
    manifest = json.loads((folder / "manifest.json").read_text())
    out["own_module_macs_fractions"] = [m["macs_fraction"] for m in manifest["modules"]]
    print(json.dumps(out), flush=True)
    return out


def patching() -> dict:
    fmnist = str(DATA / "fashion-mnist")
    weak, strong = "models/lenet5_fmnist_shirt100.onnx", "models/resnet8_fmnist.onnx"
    x, y = test_split(fmnist, weak)
    folder = modules_of(strong, fmnist)
    out = {"weak": class_scores(predict(weak, x), y, 6),
           "strong": class_scores(predict(strong, x), y, 6)}
    for how, spec in (("raw", None), ("calibrated", DataSpec(fmnist, "train", 1000))):
        result = replace(weak, [(6, folder / "class_6.onnx")], calibrate=spec, device="cpu")
        out[f"patched_{how}"] = {**class_scores(predict(result.proto, x), y, 6),
                                 "combiner": result.combiner, "held_out": result.held_out}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="cross,unlabelled,replace,patch")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    mnist, fmnist = str(DATA / "mnist"), str(DATA / "fashion-mnist")
    jobs = args.only.split(",")
    if "cross" in jobs:
        res = {"mnist_fmnist": cross(("models/lenet5_mnist.onnx", mnist),
                                     ("models/resnet8_fmnist.onnx", fmnist)),
               "cntk_fmnist": cross((str(DATA / "onnx-third-party" / "mnist-cntk.onnx"), mnist),
                                    ("models/resnet8_fmnist.onnx", fmnist)),
               "command": "python -m benchmarks.link_models --only cross"}
        (RESULTS / "link_cross.json").write_text(json.dumps(res, indent=1) + "\n")
    if "unlabelled" in jobs:
        res = {"mnist_fmnist": cross(("models/lenet5_mnist.onnx", mnist),
                                     ("models/resnet8_fmnist.onnx", fmnist), unlabelled=True),
               "cntk_fmnist": cross((str(DATA / "onnx-third-party" / "mnist-cntk.onnx"), mnist),
                                    ("models/resnet8_fmnist.onnx", fmnist), unlabelled=True),
               "command": "python -m benchmarks.link_models --only unlabelled"}
        (RESULTS / "link_unlabelled.json").write_text(json.dumps(res, indent=1) + "\n")
    if "replace" in jobs or "patch" in jobs:
        res = {"command": "python -m benchmarks.link_models --only replace,patch"}
        if "replace" in jobs:
            res["replace"] = replacement()
        if "patch" in jobs:
            res["patch"] = patching()
        (RESULTS / "link_replace.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
