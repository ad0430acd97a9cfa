"""Load a data spec into model-ready arrays.

A data spec is one of (auto-detected, see :func:`load_data`):

* a ``.npz`` file with ``x`` (inputs exactly as the model takes them), ``y`` (int labels,
  ``(N,)`` or ``(N, T)``, ``-1`` = ignore; without it the data is unlabelled) and optionally
  ``class_names``, or with ``x_<split>`` and ``y_<split>`` pairs (Keras' datasets layout);
* an IDX folder in the MNIST layout (``train-images-idx3-ubyte[.gz]``, ``t10k-...``);
* a folder, ``.tar.gz`` or ``.zip`` of ``<split>/<class>/*.jpg|*.png`` (possibly under one
  top folder), of ``<class>/*.png`` with no split folders (read whole for any split), or of
  ``*.png`` alone (unlabelled, read whole);
* a ``.csv`` or ``.tsv`` table of features and a label column (:mod:`onnxdecomp.data.table`);
* a ``.npy`` array of inputs, unlabelled;
* ``sklearn:digits`` (scikit-learn's bundled 8x8 digits; needs no file).
"""

from __future__ import annotations

import numbers
import os
import tarfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from onnxdecomp.data.arrays import read_npy, read_npz
from onnxdecomp.data.dataset import Dataset, check_dataset, unlabelled
from onnxdecomp.data.geometry import describe_fit, fit_arrays, fit_image
from onnxdecomp.data.preprocess import Preprocess, apply_preprocess, target_dtype
from onnxdecomp.data.readers import (
    is_idx_folder,
    is_image_zip,
    read_digits,
    read_idx,
    read_image_tree,
)
from onnxdecomp.data.records import is_records
from onnxdecomp.data.table import TABLE_EXTS, read_table
from onnxdecomp.errors import DataError

SPLITS = ("train", "test", "all", "val")


def _detect(spec: str) -> str:
    """Which reader handles ``spec``: 'sklearn', 'npz', 'idx' or 'tree'."""
    if spec.startswith("sklearn:"):
        return "sklearn"
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data not found: {spec}")
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".npz"):
            return "npz"
        if name.endswith(TABLE_EXTS):
            return "table"
        if name.endswith(".npy"):
            return "npy"
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return "tree"
        if zipfile.is_zipfile(path):  # an npz under another name, or a zip of images
            return "tree" if is_image_zip(path) else "npz"
        if tarfile.is_tarfile(path):
            return "tree"
    elif path.is_dir():
        if is_idx_folder(path):
            return "idx"
        return "tree"
    raise DataError(
        f"unrecognised data {spec}: expected a .npz or .npy file, an IDX folder, a folder, "
        ".tar.gz or .zip of [<split>/]<class>/images, a .csv table, or sklearn:digits"
    )


def _stratified_subsample(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` samples, class proportions kept (largest remainder).

    Not scikit-learn's ``train_test_split(stratify=)``: that keeps the same class counts but
    draws other samples (checked on MNIST), and every committed figure was measured on these.
    """
    n = len(y)
    if limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if y.ndim != 1:  # per-timestep labels have no single class to stratify on
        return np.sort(rng.choice(n, size=limit, replace=False))
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (limit / n)
    quota = np.floor(exact).astype(np.int64)
    short = limit - int(quota.sum())
    # Hand the leftover places to the largest remainders; ties go to the bigger class.
    order = np.lexsort((-counts, -(exact - quota)))
    quota[order[:short]] += 1
    picked = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
        if q > 0
    ]
    return np.sort(np.concatenate(picked))


class _Selection:
    """The samples a load keeps, from their labels alone: those of ``classes`` (labelled
    data only: unlabelled data is the caller's to label; a sample with per-step labels is
    kept whole when a step is of one of them), then at most ``limit`` of them
    (``_stratified_subsample``). Called once with every label; ``describe`` then says what
    was kept."""

    def __init__(self, spec: str, classes: list[int] | None, limit: int | None, seed: int):
        self.spec, self.classes, self.limit, self.seed = spec, classes, limit, seed
        self.total = 0
        self.subsampled = False

    def __call__(self, y: np.ndarray) -> np.ndarray:
        chosen = np.arange(len(y))
        if self.classes is not None and len(y) and (y >= 0).any():
            hit = np.isin(y, self.classes)
            chosen = np.flatnonzero(hit.reshape(len(hit), -1).any(axis=1))
            if not len(chosen):
                raise DataError(f"no sample of classes {list(self.classes)} in {self.spec}")
        self.total = len(chosen)
        if self.limit is not None and self.limit < len(chosen):
            self.subsampled = True
            chosen = chosen[_stratified_subsample(y[chosen], self.limit, self.seed)]
        return chosen

    def describe(self, what: str, y: np.ndarray) -> str:
        """``what`` with what was kept: unlabelled, the classes, how many of how many."""
        labelled = bool(len(y)) and bool((y >= 0).any())
        if not labelled:
            what += ", unlabelled"
        elif self.classes is not None:
            what += f", classes {','.join(map(str, self.classes))}"
        if not self.subsampled:
            return f"{what} ({self.total} samples)"
        how = "stratified" if y.ndim == 1 and labelled else "random"
        return f"{what} ({len(y)} of {self.total} samples, {how}, seed {self.seed})"


def spec_path(spec: object) -> str:
    """A data spec as a string: a path (``pathlib.Path`` too) or sklearn:digits."""
    if not isinstance(spec, (str, os.PathLike)):
        raise DataError(f"a data spec is a path or sklearn:digits, got {spec!r}")
    return os.fspath(spec)


def check_limit(limit: object) -> None:
    """None or a positive integer."""
    if limit is not None and (not isinstance(limit, numbers.Integral) or limit < 1):
        raise DataError(f"{{limit}} must be an integer of at least 1, got {limit!r}",
                        options=["limit"])


def load_data(
    spec: str | os.PathLike,
    split: str = "test",
    pre: Preprocess | None = None,
    limit: int | None = None,
    seed: int = 0,
    classes: list[int] | None = None,
    label_column: str | None = None,
) -> Dataset:
    """Load a data spec (see the module docstring) as model-ready arrays.

    Image formats (IDX, image trees, ``sklearn:digits``) get ``pre`` applied; the default is
    raw pixel values as float32 NCHW, since our models normalise inside the graph. IDX and
    digits images have one channel: ``[N, 1, H, W]`` (or ``[N, H, W, 1]``). An ``.npz`` is
    used exactly as stored (``split`` picks its arrays only in Keras' layout, ``x_train``,
    ``y_train``, ``x_test``, ...); only an explicit ``pre.dtype`` converts
    its ``x``, and scale/mean/std/layout raise, since silently ignoring them would mislead.
    ``limit`` keeps at most that many samples: a stratified subsample drawn with
    ``np.random.default_rng(seed)``, in the original order. ``classes`` keeps only samples
    of those labels, before the limit (a sub-task's calibration data); unlabelled data is
    returned whole, for the caller to label (``Dataset.labelled``).
    """
    pre = pre or Preprocess()
    spec = spec_path(spec)
    check_limit(limit)
    kind = _detect(spec)
    if label_column is not None and kind != "table":
        raise DataError(f"{spec}: {{label_column}} names a table's column; this data is not a "
                        ".csv or .tsv table", options=["label_column"])
    if split not in SPLITS and kind != "tree":  # a tree's splits are its folders' names
        raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    images: np.ndarray | None = None  # raw images, preprocessed after any subsampling
    picked = _Selection(spec, classes, limit, seed)
    if kind == "sklearn":
        name = spec.split(":", 1)[1]
        if name != "digits":
            raise DataError(f"unknown scikit-learn data set {spec!r}: only sklearn:digits")
        images, y = read_digits(split)
        ds = Dataset(images, y, [str(i) for i in range(10)], "")
        what = f"sklearn digits {split} split"
    elif kind == "table":
        _refuse_image_options(spec, pre, "a table's features", scale_ok=True)
        x, y, names = read_table(Path(spec), label_column)
        if pre.scale != 1.0:  # a table of pixels 0..255 for a model that takes 0..1
            x = x * np.float32(pre.scale)
        x = _as_dtype(x, pre)
        ds = Dataset(x, y, names, "")
        what = f"{Path(spec).name} table"
    elif kind == "npy":  # one array: the inputs, unlabelled (labels need an .npz)
        _refuse_image_options(spec, pre, ".npy inputs")
        x = read_npy(Path(spec))
        x = _as_dtype(x, pre)
        ds = Dataset(x, unlabelled(len(x)), None, "")
        what = f"{Path(spec).name} npy"
    elif kind == "npz":
        _refuse_image_options(spec, pre, ".npz inputs")
        x, y, names, by_split = read_npz(Path(spec), split)
        if pre.dtype is not None and is_records(x):
            raise DataError(
                f"{spec}: {{dtype}} converts one input's array; this npz holds several "
                f"({', '.join(x.dtype.names)}): store each in the type its input takes",
                options=["dtype"])
        x = _as_dtype(x, pre)
        ds = Dataset(x, y, names, "")
        what = f"{Path(spec).name} npz" + (f" {split} split" if by_split else "")
    elif kind == "idx":
        images, y = read_idx(spec, split)
        n_cls = max(10, int(y.max()) + 1) if len(y) else 10
        # IDX files carry no class names (Fashion-MNIST's neither): digits, never guesses.
        ds = Dataset(images, y, [str(i) for i in range(n_cls)], "")
        what = f"{Path(spec).resolve().name} IDX {split} split"
    else:  # an image tree: decoding dominates, so it decodes only what the selection keeps
        fit = None
        if pre.fits_images:
            def fit(im, name):
                return fit_image(im, pre.resize, pre.crop, pre.channels, name)
        images, y, names = read_image_tree(spec, split, select=picked, fit=fit)
        ds = Dataset(images, y, names, "")
        what = f"{Path(spec).name} images {split} split"
    check_dataset(ds, None, where=spec)  # lengths must agree before subsampling
    if kind != "tree":  # the tree has kept only the selection's samples
        keep = picked(ds.y)
        ds = replace(ds, x=ds.x[keep], y=ds.y[keep])
    if images is not None and pre.fits_images:
        what += ", " + describe_fit(pre.resize, pre.crop, pre.channels)
    if images is not None and pre.channel_order == "bgr":
        what += ", BGR"
    ds.source = picked.describe(what, ds.y)
    if images is not None:  # preprocess only what is kept: --limit stays cheap on big sets
        if kind != "tree":  # the tree fitted each image as it decoded it
            ds.x = fit_arrays(ds.x, pre.resize, pre.crop, pre.channels)
        ds.x = apply_preprocess(ds.x, pre)
        if not pre.is_identity:  # e.g. --std 1e-320 can overflow to inf
            check_dataset(ds, None, where=spec)
    return ds


def _as_dtype(x: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Data used as stored, converted only to an explicit ``--dtype`` (the user asked)."""
    return x if pre.dtype is None else x.astype(target_dtype(pre.dtype), copy=False)


def _refuse_image_options(spec: str, pre: Preprocess, what: str,
                          scale_ok: bool = False) -> None:
    """Image preprocessing asked of data that is used as stored (but for ``--scale`` where
    ``scale_ok``): an error, since silently ignoring it would mislead."""
    options = ["scale", "mean", "std", "layout", "resize", "crop", "channels", "channel_order"]
    asked = [pre.scale != 1.0 and not scale_ok, pre.mean is not None, pre.std is not None,
             pre.layout is not None, pre.resize is not None, pre.crop is not None,
             pre.channels is not None, pre.channel_order is not None]
    if any(asked):
        refused = options[1:] if scale_ok else options
        raise DataError(
            f"{spec}: {what} are used exactly as stored"
            f"{' but for {scale}' if scale_ok else ''}; "
            f"{'/'.join('{' + o + '}' for o in refused)} only apply to image data "
            "(preprocess before saving)", options=options)


@dataclass
class DataSpec:
    """A data spec with everything needed to load it again: what ``manifest.json`` records
    of the calibration data, so that linking can read the same samples later."""

    data: str  # a path (made absolute by ``resolved``) or sklearn:digits
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    pre: Preprocess = field(default_factory=Preprocess)
    label_column: str | None = None  # a table's, when not named as table.LABEL_COLUMNS

    def __post_init__(self) -> None:  # what the API is given: a pathlib.Path too
        self.data = spec_path(self.data)
        check_limit(self.limit)

    def load(self, classes: list[int] | None = None) -> Dataset:
        return load_data(self.data, self.split, self.pre, self.limit, self.seed, classes,
                         self.label_column)

    def resolved(self) -> DataSpec:
        """The same spec with an absolute path, valid from any working folder."""
        if self.data.startswith("sklearn:"):
            return self
        return replace(self, data=str(Path(self.data).resolve()))

    def to_json(self) -> dict:
        return {"data": self.data, "split": self.split, "limit": self.limit,
                "seed": self.seed, **asdict(self.pre), "label_column": self.label_column}

    @classmethod
    def from_json(cls, d: dict) -> DataSpec:
        pre = {k: d.get(k) for k in ("scale", "mean", "std", "layout", "dtype", "resize",
                                     "crop", "channels", "channel_order")}
        pre["scale"] = 1.0 if pre["scale"] is None else float(pre["scale"])
        for k in ("mean", "std", "resize", "crop"):
            pre[k] = None if pre[k] is None else tuple(pre[k])
        return cls(d["data"], d.get("split", "test"), d.get("limit"), int(d.get("seed", 0)),
                   Preprocess(**pre), d.get("label_column"))
