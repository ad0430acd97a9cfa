"""Reading model files and writing outputs: the one place that opens a model path.

Reading validates before anything else looks at the model: a missing file, a folder, bytes
that protobuf cannot parse, or a message with no IR version, opset or graph (protobuf parses
many byte strings, an empty file included, as an empty model) is a one-line error. Writing is
atomic: a temporary file in the target folder, then a rename, so readers never see half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from onnxdecomp.errors import OnnxDecompError, first_line

# External tensors up to this many elements are read even when weights are not: shape
# inference needs the values of shape tensors, Resize scales and the like.
SMALL_TENSOR_ELEMENTS = 4096
# Protobuf cannot serialise a message over 2 GB, and the tool holds whole models as protos.
MAX_MODEL_BYTES = 2**31 - 1


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
    proto = _read_checked(path)
    if weights:
        _load_external(proto, path)
    else:
        _load_small_external(proto, os.path.dirname(os.path.abspath(path)))
    return proto


def _read_checked(path: str) -> onnx.ModelProto:
    """The model file at ``path``, checked, its external tensors unread (see ``read_model``)."""
    if os.path.getsize(path) > MAX_MODEL_BYTES:
        raise _too_big(path)
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        text = " ".join(str(exc).split())
        why = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise OnnxDecompError(f"not an ONNX model: {path} ({why})") from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.opset_import:
        raise OnnxDecompError(f"not an ONNX model: {path} (no IR version, opset or graph)")
    base = os.path.dirname(os.path.abspath(path))
    bad = _undecodable_string(proto)
    if bad is not None:
        raise OnnxDecompError(f"invalid ONNX model: {path} (field {bad} is not UTF-8 text)")
    _check_external(proto, path, base)
    try:  # the graph well formed (every input defined ...) before anything reads it
        onnx.checker.check_model(path)
    except Exception as exc:
        raise OnnxDecompError(f"invalid ONNX model: {path} ({first_line(exc)})") from None
    return proto


def _load_external(proto: onnx.ModelProto, path: str) -> None:
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
    except Exception as exc:
        raise OnnxDecompError(
            f"cannot read the external data of {path}: {first_line(exc)}") from None


def runtime_source(model: str | os.PathLike) -> tuple[str | bytes, onnx.ModelProto]:
    """What ONNX Runtime loads for the model file ``model`` (checked as ``read_model``
    checks it), and its proto: the path, or, where the model keeps tensors in external
    data, the model's bytes with them read in, since ORT reading such a file itself cannot
    infer a Reshape whose target is external (1.32)."""
    path = check_model_path(model)
    proto = _read_checked(path)
    if any(True for _ in _external_tensors(proto)):
        _load_external(proto, path)
        return proto.SerializeToString(), proto
    return path, proto


def _undecodable_string(message, where: str = "model") -> str | None:
    """The first string field that protobuf could not decode as UTF-8 (it hands those over
    as bytes, which onnx's checker lets pass and onnx-ir cannot serialise), or None."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if _repeated(field) else [value]
            if any(not isinstance(v, str) for v in values):
                return f"{where}.{field.name}"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            values = value if _repeated(field) else [value]
            for i, v in enumerate(values):
                bad = _undecodable_string(v, f"{where}.{field.name}[{i}]")
                if bad is not None:
                    return bad
    return None


def _repeated(field) -> bool:
    """protobuf >= 6 says ``is_repeated``; older ones only ``label``."""
    from google.protobuf.descriptor import FieldDescriptor

    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _too_big(path: str) -> OnnxDecompError:
    return OnnxDecompError(f"{path}: models over 2 GB (weights included) are not supported: "
                           "protobuf cannot hold them in one message")


def _external_tensors(proto: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, str]]:
    """(initializer, the file it names) for each initializer kept in external data."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    for init in proto.graph.initializer:
        if uses_external_data(init):
            yield init, ExternalDataInfo(init).location


def _check_external(proto: onnx.ModelProto, path: str, base: str) -> None:
    """External data must stay in the model's folder (ONNX Runtime refuses it otherwise) and
    exist; all of it together stays under MAX_MODEL_BYTES."""
    root = Path(base).resolve()
    total = os.path.getsize(path)
    seen: set[Path] = set()
    for init, location in _external_tensors(proto):
        target = (root / location).resolve()
        if root not in target.parents:
            raise OnnxDecompError(f"{path}: the external data of tensor {init.name!r} is "
                                  f"outside the model's folder ({location}): refused")
        if not target.is_file():
            raise OnnxDecompError(f"{path}: the external data of tensor {init.name!r} is "
                                  f"missing ({location})")
        if target not in seen:
            seen.add(target)
            total += target.stat().st_size
    if total > MAX_MODEL_BYTES:
        raise _too_big(path)


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


def model_sha256(model: str | os.PathLike | onnx.ModelProto) -> str:
    """What a module records of its parent, to know it again: the sha256 of the model
    file's bytes, then those of every external data file its initializers name (in the
    order they first appear), so that a parent whose weights sit beside it is the same
    parent only with the same weights; of a proto in memory, of its serialisation.

    The file's own bytes, not the proto read and serialised again: that is the weights
    loaded into it (not the file) for a model with external data, and need not be the
    file's bytes for any other writer's field order either."""
    if isinstance(model, onnx.ModelProto):
        return sha256_bytes(model.SerializeToString())
    path = check_model_path(model)
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data)
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception:  # not a model: the hash of its bytes says it is not the parent
        return digest.hexdigest()
    base = Path(path).resolve().parent
    for location in dict.fromkeys(loc for _, loc in _external_tensors(proto)):
        target = base / location
        if target.is_file():
            with open(target, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Stop now, not after the work, when the folder ``path`` is to be written in refuses a
    file (read-only, no permission, a file where a folder should be). A probe file is made
    and removed in its nearest existing folder; no missing folder is made (a failure writes
    nothing)."""
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _unwritable(path, exc) from exc


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unwritable(path: Path, exc: OSError) -> OnnxDecompError:
    """A write the file system refused (read-only, full, no permission): the user's to fix."""
    return OnnxDecompError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_folder(path: str | os.PathLike, force: bool = False,
                        inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``path`` as a folder to write: refused when it is a file, when it exists with files
    in it (unless ``force``) and when it holds one of ``inputs`` (force would delete it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OnnxDecompError(f"output path exists and is not a folder: {path}")
    for src in inputs:
        if path.resolve() in Path(src).resolve().parents:
            raise OnnxDecompError(f"the output folder {path} holds the input {src}: give "
                                  "another folder")
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise OnnxDecompError(f"the output folder {path} is or holds the current folder, which "
                              "cannot be replaced: give another folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OnnxDecompError(f"output folder {path} exists and is not empty: give {{force}} "
                              "to replace it", options=["force"])
    check_writable(path)  # said now, not after the work
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """A hidden folder beside ``path`` to fill; when the block ends without an error it
    replaces ``path`` as a whole, else it is removed and ``path`` is untouched.

    Replacing an existing folder takes two renames (the old one aside, the new one in): a
    crash between them leaves the old content as ``.NAME.old-*`` beside, never half of it.
    Without ``force`` a folder that another run filled meanwhile is left and the new one
    refused (two runs into one ``-o`` both said they wrote it; one run's files were lost).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
        if not force and path.is_dir() and any(path.iterdir()):
            raise OnnxDecompError(f"output folder {path} was filled by another run meanwhile: "
                                  "give {force} to replace it", options=["force"])
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.rmdir(old)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise
