"""Finalise an emitted model: drop dead nodes, re-infer shapes, full check, ORT load."""

from __future__ import annotations

import onnx
import onnx_ir as ir
from onnx_ir.passes import common

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import to_proto
from onnxdecomp.normalize import infer_shapes


def finalize(model: ir.Model, check: bool = True) -> onnx.ModelProto:
    """Clean ``model`` in place and return its proto.

    With ``check``: ``onnx.checker`` full check and an ONNX Runtime load; a failure here is
    a bug in a pass, reported with the checker's first line.
    """
    ir.passes.PassManager(
        [common.RemoveUnusedNodesPass(), common.TopologicalSortPass()]
    )(model)
    infer_shapes(model)
    proto = to_proto(model)
    if check:
        check_emitted(proto)
    return proto


def check_emitted(proto: onnx.ModelProto) -> None:
    """``onnx.checker`` full check and an ONNX Runtime load of a finalised model."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0]
        raise OnnxDecompError(f"emitted model fails onnx.checker: {first}") from exc
    from onnxdecomp.runtime import Runner

    Runner(proto, device="cpu")
