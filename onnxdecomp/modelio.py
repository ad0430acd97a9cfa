"""Reading model files and writing outputs: the one place that opens a model path.

Reading validates before anything else looks at the model: a missing file, a folder, bytes
that protobuf cannot parse, or a message with no IR version, opset or graph (protobuf parses
many byte strings, an empty file included, as an empty model) is a one-line error. Writing is
atomic: a temporary file in the target folder, then a rename, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path

import onnx

from onnxdecomp.errors import OnnxDecompError

# External tensors up to this many elements are read even when weights are not: shape
# inference needs the values of shape tensors, Resize scales and the like.
SMALL_TENSOR_ELEMENTS = 4096


def check_model_path(path: str | os.PathLike) -> str:
    """``path`` as a string when it names a file; a one-line error otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "no such file"
        raise OnnxDecompError(f"not an ONNX model: {path} ({reason})")
    return path


def read_model(model: str | os.PathLike | onnx.ModelProto,
               weights: bool = True) -> onnx.ModelProto:
    """The model at ``model`` (a proto passes through untouched).

    ``weights=False`` leaves large external tensors unread (only those of at most
    ``SMALL_TENSOR_ELEMENTS`` elements are loaded), so a multi-GB model costs nothing to
    inspect.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    path = check_model_path(model)
    try:
        proto = onnx.load(path, load_external_data=weights)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        text = " ".join(str(exc).split())
        why = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise OnnxDecompError(f"not an ONNX model: {path} ({why})") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.opset_import:
        raise OnnxDecompError(f"not an ONNX model: {path} (no IR version, opset or graph)")
    if not weights:
        _load_small_external(proto, os.path.dirname(os.path.abspath(path)))
    return proto


def _load_small_external(proto: onnx.ModelProto, base: str) -> None:
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    for init in proto.graph.initializer:
        small = math.prod(int(d) for d in init.dims) <= SMALL_TENSOR_ELEMENTS
        if uses_external_data(init) and small:
            try:
                load_external_data_for_tensor(init, base)
            except Exception:
                # Only shape inference would miss it; a needed shape then errors with its node.
                continue


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
