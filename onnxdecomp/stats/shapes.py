"""Dims of onnx-ir values as the statistics report them, and how messages spell them."""

from __future__ import annotations

import onnx_ir as ir

Dim = int | str  # a fixed size, or a symbolic dim by name ("?" when it has none)


def dims(value: ir.Value | None) -> list[Dim] | None:
    """The dims of a tensor value; None when unknown, of unknown rank, or not a tensor."""
    if value is None or value.shape is None:
        return None
    if value.type is not None and not isinstance(value.type, ir.TensorType):
        return None  # onnx-ir gives a sequence the shape of its elements, not its own
    return [d if isinstance(d, int) else (d.value or "?") for d in value.shape]


def fmt_shape(shape: object) -> str:
    if not isinstance(shape, list | tuple):
        return str(shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line, for messages that quote a failure."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
