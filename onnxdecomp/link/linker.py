"""``link``: the one entry point of the linker, by mode."""

from __future__ import annotations

import os

import onnx

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link.parallel import link_parallel

MODES = ("parallel",)


def link(modules: list[str | os.PathLike | onnx.ModelProto],
         mode: str = "parallel") -> onnx.ModelProto:
    """One model from ``modules`` whose output ``scores`` [N, K] has their columns in the
    order given. ``parallel``: the modules side by side on the shared input."""
    if mode not in MODES:
        raise OnnxDecompError(f"unknown {{mode}} {mode!r}: choose one of {', '.join(MODES)}",
                              options=["mode"])
    return link_parallel(modules)
