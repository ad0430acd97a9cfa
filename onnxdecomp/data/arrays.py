"""Readers of arrays saved by NumPy: ``.npz`` files (x, y, class names, several inputs,
Keras' split layout) and ``.npy`` inputs.

They return raw arrays; every failure is a one-line :class:`~onnxdecomp.errors.DataError`
naming the problem and path.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from onnxdecomp.data.dataset import as_int_labels, class_indices, unlabelled
from onnxdecomp.data.records import as_records
from onnxdecomp.errors import DataError, first_line


def npz_splits(keys: Iterable[str]) -> list[str]:
    """The splits of an ``.npz`` in Keras' datasets layout (``x_train``, ``y_train``,
    ``x_test``, ...): those with an ``x_<split>`` array, when it has no ``x``."""
    keys = set(keys)
    if "x" in keys:
        return []
    return sorted(k[2:] for k in keys if k.startswith("x_") and k[2:] in NPZ_SPLITS)


NPZ_SPLITS = ("train", "val", "test")


def read_npy(path: Path) -> np.ndarray:
    """The array of an ``.npy`` file, [N, ...]; pickled (object) arrays are never unpickled."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read npy file {path}: {first_line(exc)}") from exc
    if x.ndim == 0:
        raise DataError(f"npy file {path}: the inputs must be [N, ...], got a scalar")
    return x


def read_npz(path: Path, split: str = "test"
             ) -> tuple[np.ndarray, np.ndarray, list[str] | None, bool]:
    """``x``, integer ``y``, the optional ``class_names`` of an ``.npz``, and whether
    ``split`` picked its arrays; pickled (object) arrays are never unpickled. Without ``y``
    the samples are unlabelled (every label -1). In Keras' datasets layout (``x_train``,
    ``y_train``, ``x_test``, ``y_test``, as ``mnist.npz``) ``split`` picks the pair
    (``all``: every split's, in the order train, val, test); otherwise it is ignored.
    Without ``x``, or with ``x`` beside other arrays, the arrays are the inputs of a model
    with several, each named after its input, and ``x`` is their records
    (``records.as_records``); a one-input model takes the field named after its input, or
    ``x``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            splits = npz_splits(keys)
            if splits:
                wanted = [sp for sp in NPZ_SPLITS if sp in splits] if split == "all" else [split]
                if split != "all" and split not in splits:
                    raise DataError(f"unknown split {split!r} in {path}: it has "
                                    f"{', '.join(splits)} (or all)")
                xs = [z[f"x_{sp}"] for sp in wanted]
                ys = [z[f"y_{sp}"] if f"y_{sp}" in keys else unlabelled(len(a))
                      for sp, a in zip(wanted, xs)]
                x, y = np.concatenate(xs), np.concatenate(ys)
            else:
                inputs = [k for k in z.files if k not in ("y", "class_names")]
                if "x" not in keys and not inputs:
                    raise DataError(
                        f"npz file {path} has no array 'x' "
                        f"(it has: {', '.join(sorted(keys)) or 'nothing'})"
                    )
                if "x" in keys:  # beside x, an array of another length is no input
                    n = len(z["x"]) if z["x"].ndim else 0  # (a meta array): left
                    inputs = [k for k in inputs
                              if k == "x" or (z[k].ndim and z[k].shape[0] == n)]
                # ``x`` beside other arrays: a model with several inputs, one named x
                x = z["x"] if inputs == ["x"] else as_records({k: z[k] for k in inputs},
                                                               str(path))
                y = z["y"] if "y" in keys else unlabelled(len(x) if x.ndim else 0)
            names = (
                [str(n) for n in z["class_names"].reshape(-1)] if "class_names" in keys else None
            )
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # ValueError also covers pickled (object) arrays, which we never unpickle.
        raise DataError(f"cannot read npz file {path}: {first_line(exc)}") from exc
    if x.ndim == 0 or y.ndim not in (1, 2):
        raise DataError(
            f"npz file {path}: x must be [N, ...] and y (N,) or (N, T); "
            f"got x {x.shape}, y {y.shape}"
        )
    return x, as_int_labels(class_indices(y), str(path)), names, bool(splits)
