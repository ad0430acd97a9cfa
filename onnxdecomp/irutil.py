"""Small helpers over onnx-ir shared by the passes: constants, loading, atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes import common

from onnxdecomp.errors import OnnxDecompError


def load_proto(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Read an ONNX file (weights inside) or pass a proto through; one-line error otherwise."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise OnnxDecompError(f"model file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise OnnxDecompError(f"not an ONNX model: {path} ({type(exc).__name__})") from exc


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)


def with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``proto`` that also outputs the intermediate values ``names``."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    have = {o.name for o in proto.graph.output}
    for name in names:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    return proto


def only_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``proto`` whose outputs are just the values ``names``, without the nodes
    they do not need: probing an early layer then costs only the layers before it."""
    model = ir.serde.deserialize_model(proto)
    values = {v.name: v for v in model.graph.inputs}
    values.update((v.name, v) for node in model.graph for v in node.outputs)
    model.graph.outputs.clear()
    model.graph.outputs.extend(values[name] for name in names)
    common.RemoveUnusedNodesPass()(model)
    return to_proto(model)


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant content (initializer), or None for data-dependent values."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def set_const(value: ir.Value, array: np.ndarray) -> None:
    """Replace an initializer's content; onnx-ir does not update the shape by itself."""
    tensor = ir.tensor(np.ascontiguousarray(array), name=value.name)
    value.const_value = tensor
    value.shape = ir.Shape(array.shape)
    value.dtype = tensor.dtype


def new_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Register a fresh initializer whose name does not clash with existing values."""
    taken = {v.name for v in graph.initializers.values()}
    taken.update(v.name for n in graph for v in n.outputs)
    base, i = name, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    value = ir.Value(name=name)
    set_const(value, array)
    graph.register_initializer(value)
    return value


def rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


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
