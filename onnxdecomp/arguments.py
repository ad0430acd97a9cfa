"""What the Python API takes, checked once where a call comes in: a model is a path or an
``onnx.ModelProto``, a list may be given as its one item, class indices may be numpy
integers. Anything else is one ``OnnxDecompError`` naming the argument, not a TypeError
from deep inside (or, worse, a path read as its characters)."""

from __future__ import annotations

import numbers
import os
from collections import Counter
from collections.abc import Iterable

import numpy as np
import onnx

from onnxdecomp.errors import OnnxDecompError

Model = str | os.PathLike | onnx.ModelProto


def model_argument(model: object, what: str = "model") -> Model:
    """``model`` as given when it is a path or a proto."""
    if isinstance(model, (str, os.PathLike, onnx.ModelProto)):
        return model
    if isinstance(model, (bytes, bytearray)):
        raise OnnxDecompError(f"{what}: {len(model):,} bytes given; give a path or an "
                              "onnx.ModelProto (onnx.load_model_from_string(data))")
    raise OnnxDecompError(f"{what} must be a path or an onnx.ModelProto, got "
                          f"{type(model).__name__}")


def model_list(models: object, what: str = "inputs") -> list[Model]:
    """One path or proto as a list of it; a list or tuple checked item by item."""
    if isinstance(models, (str, os.PathLike, onnx.ModelProto, bytes, bytearray)):
        return [model_argument(models, what)]
    if not isinstance(models, (list, tuple)):
        raise OnnxDecompError(f"{what} must be a list of paths or onnx.ModelProto, got "
                              f"{type(models).__name__}")
    return [model_argument(m, what) for m in models]


def class_index(value: object, what: str = "classes") -> int:
    """An integer class index (a numpy integer too; not a bool, float or string)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise OnnxDecompError(f"{{{what}}}: class indices are integers, got {value!r}",
                          options=[what])


def class_list(classes: object, names: bool = False) -> list[int | str] | None:
    """None, or the classes as a list: one index (or, with ``names``, one name) alone, a
    list, tuple, range or numpy array of them; a class named twice is refused."""
    if classes is None:
        return None
    if isinstance(classes, (str, numbers.Integral)):
        classes = [classes]
    elif isinstance(classes, np.ndarray):
        classes = classes.reshape(-1).tolist()
    elif not isinstance(classes, Iterable) or isinstance(classes, (bytes, dict)):
        raise OnnxDecompError(f"{{classes}} takes a list of class indices, got "
                              f"{type(classes).__name__}", options=["classes"])
    out = [c if names and isinstance(c, str) else class_index(c) for c in classes]
    twice = [c for c, n in Counter(out).items() if n > 1]
    if twice:  # one file, two columns or manifest entries of the same class
        raise OnnxDecompError(f"{{classes}} names class {twice[0]} twice", options=["classes"])
    return out


def replacement_list(replacements: object) -> list[tuple[int, Model]]:
    """``(class, module)`` pairs from a list of them, one pair, or a dict."""
    if isinstance(replacements, dict):
        replacements = list(replacements.items())
    elif isinstance(replacements, tuple) and len(replacements) == 2 and \
            isinstance(replacements[0], numbers.Integral):
        replacements = [replacements]
    if not isinstance(replacements, (list, tuple)) or not all(
            isinstance(r, (list, tuple)) and len(r) == 2 for r in replacements):
        raise OnnxDecompError("replacements are (class index, module) pairs, e.g. "
                              "[(5, 'out/class_5.onnx')], or a dict {5: 'out/class_5.onnx'}")
    return [(class_index(c), model_argument(m, "a replacing module")) for c, m in replacements]


def path_list(paths: object, what: str) -> list[str]:
    """One path alone or a list of them, as strings."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not all(
            isinstance(p, (str, os.PathLike)) for p in paths):
        raise OnnxDecompError(f"{what} must be paths, got {paths!r}")
    return [os.fspath(p) for p in paths]


def data_spec(data: object, what: str = "calibrate"):
    """A ``DataSpec``, or a path read as the command line reads ``--calibrate``: 1,000
    samples of its train split."""
    from onnxdecomp.data import DataSpec

    if isinstance(data, DataSpec):
        return data
    if isinstance(data, (str, os.PathLike)):
        return DataSpec(os.fspath(data), "train", 1000)
    raise OnnxDecompError(f"{what} takes a DataSpec or a path, got {type(data).__name__}")


def fraction(value: float | None, what: str) -> float | None:
    """None, or a number in (0, 1] (NaN refused)."""
    if value is not None and not (isinstance(value, numbers.Real) and 0.0 < value <= 1.0):
        raise OnnxDecompError(f"{{{what}}} must be in (0, 1], got {value!r}", options=[what])
    return value


def calibration_arrays(x: object, y: object) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and ``y`` as arrays (lists too), checked as the command line's loaders check
    data: samples, matching lengths, finite values; at least 2 samples (one profiled, one
    held out to measure fidelity)."""
    from onnxdecomp.data import Dataset, check_dataset

    if x is None:
        raise OnnxDecompError("x: calibration inputs are needed (an array, as the model "
                              "takes them)")
    x, y = np.asarray(x), None if y is None else np.asarray(y)
    check_dataset(Dataset(x, np.full(len(x) if x.ndim else 0, -1) if y is None else y,
                          None, "the calibration arrays"), None)
    if len(x) < 2:
        raise OnnxDecompError(f"{len(x)} calibration sample: at least 2 are needed (30% "
                              "are held out to measure fidelity; give hundreds)")
    return x, y
