"""Graph passes over onnx-ir models, one concern per file, named ``<Verb><Object>Pass``, and
the two pipelines that run them: ``normalize`` (any exporter's classifier into one canonical
form) and ``finalize`` (what every emitted model goes through)."""

from onnxdecomp.passes.canonicalize_flatten import CanonicalizeFlattenPass
from onnxdecomp.passes.dequantize_scores_output import DequantizeScoresOutputPass
from onnxdecomp.passes.expand_binary_logit import ExpandBinaryLogitPass
from onnxdecomp.passes.finalize import check_emitted, finalize, requantize
from onnxdecomp.passes.fold_batchnorm import FoldBatchNormIntoConvPass
from onnxdecomp.passes.fold_broadcast_shapes import FoldBroadcastShapesPass
from onnxdecomp.passes.fold_constants import FoldConstantsPass
from onnxdecomp.passes.fold_gather_of_concat import FoldGatherOfConcatPass
from onnxdecomp.passes.fold_measured_reshape_targets import FoldMeasuredReshapeTargetsPass
from onnxdecomp.passes.fold_reshape_targets import FoldReshapeTargetsPass
from onnxdecomp.passes.fold_static_if import FoldStaticIfPass
from onnxdecomp.passes.fold_static_pads import FoldStaticPadsPass
from onnxdecomp.passes.fold_static_slice_bounds import FoldStaticSliceBoundsPass
from onnxdecomp.passes.fold_transpose_into_dense import FoldTransposeIntoDensePass
from onnxdecomp.passes.fold_transposed_gemm_input import FoldTransposedGemmInputPass
from onnxdecomp.passes.fuse_dynamic_quantization import FuseDynamicQuantizationPass
from onnxdecomp.passes.fuse_flattened_sequence_dense import FuseFlattenedSequenceDensePass
from onnxdecomp.passes.fuse_matmul_add import FuseMatMulAddIntoGemmPass
from onnxdecomp.passes.hoist_dequantize_over_layout import HoistDequantizeOverLayoutPass
from onnxdecomp.passes.mark_quantized_weights import MarkQuantizedWeightsPass
from onnxdecomp.passes.name_recurrent_outputs import NameRecurrentOutputsPass
from onnxdecomp.passes.normalize import fold_shape_computations, infer_shapes, normalize
from onnxdecomp.passes.quantize_weights import QuantizeWeightsPass
from onnxdecomp.passes.relax_expand_targets import RelaxExpandTargetsPass
from onnxdecomp.passes.remove_dropout import RemoveDropoutPass
from onnxdecomp.passes.remove_zero_initial_states import RemoveZeroInitialStatesPass
from onnxdecomp.passes.repair_subgraph_outputs import RepairSubgraphOutputsPass
from onnxdecomp.passes.reroll_tanh_recurrence import RerollTanhRecurrencePass
from onnxdecomp.passes.rewrite_channel_shuffle import RewriteChannelShufflePass
from onnxdecomp.passes.rewrite_dynamic_quantization import (
    DYNAMIC_QUANTIZED,
    RewriteDynamicQuantizationPass,
)
from onnxdecomp.passes.rewrite_einsum_as_matmul import RewriteEinsumAsMatMulPass
from onnxdecomp.passes.rewrite_experimental_ops import RewriteExperimentalOpsPass
from onnxdecomp.passes.rewrite_qoperator import RewriteQOperatorPass
from onnxdecomp.passes.select_scores_output import select_scores_output
from onnxdecomp.passes.strip_output_softmax import StripOutputSoftmaxPass
from onnxdecomp.passes.unfuse_attention import UnfuseAttentionPass
from onnxdecomp.passes.unfuse_group_norm import UnfuseGroupNormPass
from onnxdecomp.passes.unfuse_runtime_ops import UnfuseRuntimeOpsPass
from onnxdecomp.passes.unfuse_transformer_ops import UnfuseTransformerOpsPass

__all__ = [
    "DYNAMIC_QUANTIZED",
    "CanonicalizeFlattenPass",
    "DequantizeScoresOutputPass",
    "ExpandBinaryLogitPass",
    "FoldBatchNormIntoConvPass",
    "FoldBroadcastShapesPass",
    "FoldConstantsPass",
    "FoldGatherOfConcatPass",
    "FoldMeasuredReshapeTargetsPass",
    "FoldReshapeTargetsPass",
    "FoldStaticIfPass",
    "FoldStaticPadsPass",
    "FoldStaticSliceBoundsPass",
    "FoldTransposeIntoDensePass",
    "FoldTransposedGemmInputPass",
    "FuseDynamicQuantizationPass",
    "FuseFlattenedSequenceDensePass",
    "FuseMatMulAddIntoGemmPass",
    "HoistDequantizeOverLayoutPass",
    "MarkQuantizedWeightsPass",
    "NameRecurrentOutputsPass",
    "QuantizeWeightsPass",
    "RelaxExpandTargetsPass",
    "RemoveDropoutPass",
    "RemoveZeroInitialStatesPass",
    "RepairSubgraphOutputsPass",
    "RerollTanhRecurrencePass",
    "RewriteChannelShufflePass",
    "RewriteDynamicQuantizationPass",
    "RewriteEinsumAsMatMulPass",
    "RewriteExperimentalOpsPass",
    "RewriteQOperatorPass",
    "StripOutputSoftmaxPass",
    "UnfuseAttentionPass",
    "UnfuseGroupNormPass",
    "UnfuseRuntimeOpsPass",
    "UnfuseTransformerOpsPass",
    "check_emitted",
    "finalize",
    "fold_shape_computations",
    "infer_shapes",
    "normalize",
    "requantize",
    "select_scores_output",
]
