"""Samples of a model with several inputs (a text classifier's token ids and attention mask)
as one array of records: a NumPy structured array ``[N]`` with one field per input, each
field holding that input's part of a sample (``x["ids"]`` is ``[N, T]``).

Everything that selects, splits, subsamples or concatenates samples (``x[idx]``,
``x[a:b]``, ``np.concatenate``) works on records unchanged; only the Runner, which feeds
ONNX Runtime, looks inside them, input by input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from onnxdecomp.errors import DataError


def is_records(x: np.ndarray) -> bool:
    """Whether ``x`` holds several inputs' samples (a structured array)."""
    return x.dtype.names is not None


def as_records(arrays: Mapping[str, np.ndarray], where: str = "data") -> np.ndarray:
    """One record per sample from named arrays of samples ``[N, ...]`` (the fields keep the
    mapping's order); one-line DataError when their sample counts differ."""
    counts = {name: (a.shape[0] if a.ndim else 0) for name, a in arrays.items()}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise DataError(f"the input arrays of {where} differ in their sample counts ({listed})")
    n = next(iter(counts.values()))
    dtype = np.dtype([(name, a.dtype, a.shape[1:]) for name, a in arrays.items()])
    out = np.empty(n, dtype=dtype)
    for name, a in arrays.items():
        out[name] = a
    return out


def fields(x: np.ndarray) -> dict[str, np.ndarray]:
    """The per-input arrays of records ``x`` (views, samples first)."""
    return {name: x[name] for name in x.dtype.names}


def sample_shape(x: np.ndarray) -> tuple[int, ...]:
    """One sample's shape: of the first input's part for records."""
    if is_records(x):
        return tuple(int(d) for d in x.dtype[0].shape)
    return tuple(int(d) for d in x.shape[1:])

