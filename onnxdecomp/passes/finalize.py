"""Finalise an emitted model: drop dead nodes, re-infer shapes, full check, ORT load."""

from __future__ import annotations

import onnx
import onnx_ir as ir
from onnx_ir.passes import common

from onnxdecomp.errors import OnnxDecompError, first_line
from onnxdecomp.irutil import to_proto
from onnxdecomp.passes.fuse_dynamic_quantization import FuseDynamicQuantizationPass
from onnxdecomp.passes.mark_quantized_weights import QUANTIZED_WEIGHTS
from onnxdecomp.passes.normalize import infer_shapes
from onnxdecomp.passes.quantize_weights import QuantizeWeightsPass
from onnxdecomp.passes.rewrite_dynamic_quantization import DYNAMIC_QUANTIZED
from onnxdecomp.runtime import Runner


def requantize(model: ir.Model) -> None:
    """Integer weights, and integer ops, again where the parent had them: the normalisation
    made them float for the analysis and the refit (``MarkQuantizedWeightsPass``,
    ``RewriteDynamicQuantizationPass``)."""
    QuantizeWeightsPass()(model)
    FuseDynamicQuantizationPass()(model)


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
    """``onnx.checker`` full check and an ONNX Runtime load of a finalised model.

    The checker runs on the proto that is written, not through onnx-ir's ``CheckerPass``:
    that pass checks a copy whose initializers over 1 KB are graph inputs, so a weight whose
    bytes do not fit its shape passes it (checked with onnx-ir 1.1).
    """
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise OnnxDecompError(f"emitted model fails onnx.checker: {first_line(exc)}") from exc
    Runner(proto, device="cpu")


def with_integer_ops(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` (built without ``integer_ops``, or the normalised parent) with them: what
    a quantised parent really computes. A dynamically quantised one's DynamicQuantizeLSTM
    quantises X and H inside, which the float twin the analysis runs on does not; a
    statically quantised one's int8 weights run ONNX Runtime's integer kernels, whose logits
    differ from the float twin's by a few quantisation steps (a QDQ MLP's by 0.0038, its
    unpruned modules measured at fidelity 0.9997 against the twin, 1.0 against the file)."""
    if not {DYNAMIC_QUANTIZED, QUANTIZED_WEIGHTS} & {p.key for p in proto.metadata_props}:
        return proto
    model = ir.serde.deserialize_model(proto)
    requantize(model)
    return finalize(model, check=False)
