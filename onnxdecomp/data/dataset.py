"""The data every command works on, and the checks it must pass before any model sees it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxdecomp.data.records import fields, is_records
from onnxdecomp.errors import DataError


@dataclass
class Dataset:
    """Inputs exactly as the model takes them, with labels (all -1 for unlabelled data)."""

    x: np.ndarray
    y: np.ndarray  # int64, (N,) or (N, T) per-timestep labels; -1 = ignore
    class_names: list[str] | None
    source: str  # human description, e.g. "mnist IDX test split (10000 samples)"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labelled(self) -> bool:
        """Whether any sample has a label: data read without labels has every label -1."""
        return bool(np.any(self.y >= 0))


def unlabelled(n: int) -> np.ndarray:
    """The labels of ``n`` samples read without labels: -1 (ignore) for each."""
    return np.full(n, -1, dtype=np.int64)


def require_labels(ds: Dataset, what: str) -> None:
    """One-line DataError where ``what`` (e.g. "eval measures accuracy") needs labels."""
    if not ds.labelled:
        raise DataError(f"{ds.source or 'the data'} has no labels: {what} against labels")


def class_indices(y: np.ndarray) -> np.ndarray:
    """Labels given one-hot ([N, K] rows of 0 and a single 1, as Keras' ``to_categorical``
    writes them) or as a column ([N, 1]) as the class indices (N,) they stand for; other
    labels as they are. Per-step labels ([N, T], -1 = ignore) hold class indices: only a
    binary tagger's with one step of class 1 in every sentence and no padding would look
    one-hot."""
    if y.ndim != 2 or y.dtype.kind not in "biuf":
        return y
    if y.shape[1] == 1:
        return y[:, 0]
    if y.shape[1] >= 2 and len(y) and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return y.argmax(axis=1)
    return y


def as_int_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Integer labels as int64; integral floats (0.0, 1.0...) are accepted, others are not."""
    if y.dtype.kind in "iu":
        return y.astype(np.int64, copy=False)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    raise DataError(f"labels must be integers, got {y.dtype} in {where}")


def check_dataset(ds: Dataset, num_classes: int | None, where: str | None = None) -> None:
    """One-line DataError for data that cannot be used.

    Checks: empty data; x and y lengths differing; NaN or inf in float ``x``; labels that are
    not integers; labels outside ``[0, num_classes)`` other than -1 (``num_classes=None``
    only rejects labels below -1).
    """
    src = where or ds.source or "data"
    x, y = ds.x, ds.y
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"data is empty: no samples in {src}")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"x and y differ in length: {x.shape[0]} inputs but "
            f"{y.shape[0] if y.ndim else 0} labels in {src}"
        )
    for part in fields(x).values() if is_records(x) else (x,):
        if part.dtype.kind in "fc":
            bad = ~np.isfinite(part)
            if bad.any():
                rows = int(bad.reshape(len(part), -1).any(axis=1).sum())
                raise DataError(f"data has NaN or inf values in {rows} sample(s) of {src}")
    check_labels(y, num_classes, src)


def labelled_steps(y: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The [N, T] mask of the steps a tagger (outputs ``shape`` [N, T, K]) is judged on: the
    labelled ones (label >= 0) where labels are per step, every step otherwise."""
    if y is not None and y.ndim == 2:
        return y >= 0
    return np.ones(shape[:2], bool)


def check_label_shape(y: np.ndarray, per_step: bool, src: str = "data") -> None:
    """Labels shaped as the model decides: (N,) class indices for a model that scores whole
    samples, (N, T) for a tagger's steps (-1 = ignore); a one-line DataError otherwise."""
    if not per_step and y.ndim != 1:
        raise DataError(f"labels of shape {tuple(y.shape)} in {src}: the model scores whole "
                        "samples, so labels are (N,) class indices (or one-hot [N, K] rows)")
    if per_step and y.ndim != 2:
        raise DataError(f"labels of shape {tuple(y.shape)} in {src}: the model tags every "
                        "step ([N, T, K] scores), so labels are (N, T), -1 = ignore")


def check_labels(y: np.ndarray, num_classes: int | None, src: str = "data") -> None:
    """Integer labels in ``[0, num_classes)`` or -1 (ignore); ``None`` only rejects < -1."""
    if y.dtype.kind not in "iu":
        raise DataError(f"labels must be integers, got {y.dtype} in {src}")
    valid = y[y != -1]
    if valid.size == 0:
        return
    lo, hi = int(valid.min()), int(valid.max())
    if lo < 0:
        raise DataError(f"label {lo} is negative in {src} (only -1 = ignore is allowed)")
    if num_classes is not None and hi >= num_classes:
        # Labels 1..K (R, MATLAB, some CSVs) for K classes: say so, never shift them silently.
        hint = ": they look numbered from 1; subtract 1" if lo == 1 and hi == num_classes \
            else ""
        raise DataError(
            f"label {hi} is out of range: the model has {num_classes} classes "
            f"(labels 0..{num_classes - 1}, -1 = ignore) in {src}{hint}"
        )
