"""Which classes the calibration data has: a module needs samples of its class."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from onnxdecomp.errors import OnnxDecompError


def label_counts(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Samples (or labelled steps) of each class."""
    flat = np.asarray(y).reshape(-1)
    return np.bincount(flat[flat >= 0], minlength=num_classes)


def check_classes_have_samples(counts: np.ndarray, classes: Iterable[int] | None,
                               labelled: bool, names: list[str] | None = None) -> None:
    """A one-line error naming the ``classes`` (None: all of ``counts``') with no
    calibration sample: a module fitted and measured on no sample of its class would claim
    a fidelity of 1. Where the data names other classes than the model has (``names``: a
    table's string labels, an image tree's folders), it says how they were numbered."""
    if classes is None:
        classes = range(len(counts))
    empty = [c for c in classes if 0 <= c < len(counts) and counts[c] == 0]
    if not empty:
        return
    how = "no sample has that label" if labelled else "the parent decides it for no sample"
    if names and len(names) != len(counts):
        shown_names = ", ".join(f"{n} = {i}" for i, n in enumerate(names[:3]))
        how += (f"; the data names {len(names)} classes, numbered in sorted order "
                f"({shown_names}{', ...' if len(names) > 3 else ''}), the model has "
                f"{len(counts)}: label the data with the model's class indices")
    shown = ",".join(map(str, empty[:12])) + (f",... ({len(empty)} classes)"
                                              if len(empty) > 12 else "")
    raise OnnxDecompError(
        f"class{'es' if len(empty) > 1 else ''} {shown}: no calibration sample ({how}); give "
        f"data with {'them' if len(empty) > 1 else 'it'}, or leave "
        f"{'them' if len(empty) > 1 else 'it'} out: {{classes}} present cuts the classes the "
        "data has (or name them, ranges too: 0-9,12)", options=["classes"])
