"""The normalisation pipeline: any exporter's classifier into one canonical form."""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir
from onnx_ir.passes import common

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import carry_untyped_shapes
from onnxdecomp.passes.canonicalize_flatten import CanonicalizeFlattenPass
from onnxdecomp.passes.dequantize_scores_output import DequantizeScoresOutputPass
from onnxdecomp.passes.expand_binary_logit import ExpandBinaryLogitPass
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
from onnxdecomp.passes.fuse_flattened_sequence_dense import FuseFlattenedSequenceDensePass
from onnxdecomp.passes.fuse_matmul_add import FuseMatMulAddIntoGemmPass
from onnxdecomp.passes.hoist_dequantize_over_layout import HoistDequantizeOverLayoutPass
from onnxdecomp.passes.mark_quantized_weights import MarkQuantizedWeightsPass
from onnxdecomp.passes.name_recurrent_outputs import NameRecurrentOutputsPass
from onnxdecomp.passes.read_probabilities_as_logits import ReadProbabilitiesAsLogitsPass
from onnxdecomp.passes.relax_expand_targets import RelaxExpandTargetsPass
from onnxdecomp.passes.remove_dropout import RemoveDropoutPass
from onnxdecomp.passes.remove_zero_initial_states import RemoveZeroInitialStatesPass
from onnxdecomp.passes.repair_subgraph_outputs import RepairSubgraphOutputsPass
from onnxdecomp.passes.reroll_tanh_recurrence import RerollTanhRecurrencePass
from onnxdecomp.passes.rewrite_channel_shuffle import RewriteChannelShufflePass
from onnxdecomp.passes.rewrite_dynamic_quantization import RewriteDynamicQuantizationPass
from onnxdecomp.passes.rewrite_einsum_as_matmul import RewriteEinsumAsMatMulPass
from onnxdecomp.passes.rewrite_experimental_ops import RewriteExperimentalOpsPass
from onnxdecomp.passes.rewrite_loop_recurrence import RewriteLoopRecurrencePass
from onnxdecomp.passes.rewrite_ml_preprocessing import RewriteMlPreprocessingPass
from onnxdecomp.passes.rewrite_qoperator import RewriteQOperatorPass
from onnxdecomp.passes.strip_output_softmax import StripOutputSoftmaxPass
from onnxdecomp.passes.unfuse_attention import UnfuseAttentionPass
from onnxdecomp.passes.unfuse_group_norm import UnfuseGroupNormPass
from onnxdecomp.passes.unfuse_runtime_ops import UnfuseRuntimeOpsPass
from onnxdecomp.passes.unfuse_transformer_ops import UnfuseTransformerOpsPass


def fold_shape_computations(model: ir.Model, reinfer: Callable[[ir.Model], bool]) -> None:
    """Slice bounds, Reshape targets, Tile repeats, Expand targets and Pad amounts computed
    from shapes (TorchScript's chunk, view, repeat, expand_as and pad) as constants, and
    Ifs those shapes decide as their branch (TorchScript's LocalResponseNorm), ``reinfer``
    inferring the shapes again after each round that folded (it returns False to stop: the
    inference failed). Again while one folds: one folded may give the shapes another one
    reads, so a chain of blocks each reshaping by the shape of the last (ShuffleNetV2's 16
    channel shuffles) takes a round per block; each round folds at least one node, which
    bounds them."""
    for _ in range(len(model.graph)):
        sliced = FoldStaticSliceBoundsPass()(model).modified
        padded = FoldStaticPadsPass()(model).modified
        tiled = FoldBroadcastShapesPass()(model).modified
        branched = FoldStaticIfPass()(model).modified
        if not (FoldReshapeTargetsPass()(model).modified or sliced or padded or tiled
                or branched) \
                or not reinfer(model):
            return


def infer_shapes(model: ir.Model) -> None:
    """Clear stale intermediate shapes, then infer them again (strict); past an op that
    keeps its input's shape but that inference leaves untyped (``irutil.SHAPE_KEEPING``),
    that shape is carried over and inference goes on from there (a round per such op)."""
    for node in model.graph:
        for out in node.outputs:
            if not out.is_graph_output():
                out.shape = None
    while True:
        common.ShapeInferencePass(strict_mode=True, data_prop=True)(model)
        if not carry_untyped_shapes(model):
            return


def normalize(model: ir.Model) -> ir.Model:
    """Run the normalisation passes in place and return the model.

    After it: local functions inlined, constants are initializers and folded, no
    Identity/Dropout, BatchNorm after a
    Conv folded, dense layers are Gemm (one applied to every step through reshapes: a MatMul
    over the sequence), flattening Reshapes are Flatten, the single output
    is logits (a trailing Softmax/LogSoftmax stripped), recurrent ops have no all-zero initial
    state and a named Y, a recurrence unrolled or run as a Loop is one recurrent op where
    one reproduces it, no Gather picks a slice out of a Concat, GroupNormalization is an
    InstanceNormalization between Reshapes, shapes inferred.
    """
    if len(model.graph.outputs) != 1:
        raise OnnxDecompError(
            f"model has {len(model.graph.outputs)} outputs; a classifier with one output "
            "(logits or probabilities) is expected"
        )
    # IR < 4 lists initializers as graph inputs; from IR 4 on they need not be, and a
    # module's only input must be the data.
    model.ir_version = max(model.ir_version, 4)
    passes = ir.passes.PassManager(
        [
            common.RemoveInitializersFromInputsPass(),
            # Modules exported as local functions (TorchScript's export_modules_as_functions,
            # onnxscript): their ops need channel rules, the calls have none.
            common.InlinePass(),
            # Node names are optional in ONNX; profiles, refits and cuts key on them.
            common.NameFixPass(),
            common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
            RewriteMlPreprocessingPass(),  # skl2onnx's Scaler, Normalizer, Imputer
            RewriteExperimentalOpsPass(),  # opset 1-9's ImageScaler, Affine, ...
            UnfuseRuntimeOpsPass(),  # ONNX Runtime's FusedConv, FusedGemm as Conv + Relu ...
            UnfuseTransformerOpsPass(),  # its transformer optimiser's Attention, ...
            UnfuseAttentionPass(),  # ONNX's Attention (opset 23: dynamo's SDPA)
            RewriteQOperatorPass(),  # QLinearConv, QGemm, ... as QDQ around float ops
            RewriteDynamicQuantizationPass(),  # MatMulInteger, ... as float ops on DQ inputs
            HoistDequantizeOverLayoutPass(),  # tf2onnx's TFLite: transposes on int8
            DequantizeScoresOutputPass(),  # ... and its int8 logits
            MarkQuantizedWeightsPass(),  # before their dequantisation is folded
            FoldConstantsPass(),
            RewriteEinsumAsMatMulPass(),  # Keras' EinsumDense, torch.einsum dense layers
            RemoveDropoutPass(),
            common.IdentityEliminationPass(),
            RepairSubgraphOutputsPass(),  # what that pass makes of an If branch's Identity
            RerollTanhRecurrencePass(),  # dynamo's unrolled nn.RNN as one RNN op
            StripOutputSoftmaxPass(),
            RemoveZeroInitialStatesPass(),
            common.RemoveUnusedNodesPass(),
            common.TopologicalSortPass(),
        ]
    )
    passes(model)
    infer_shapes(model)

    def reinfer(m: ir.Model) -> bool:
        common.RemoveUnusedNodesPass()(m)
        infer_shapes(m)
        return True

    # Recurrent layers run as Loops (tf2onnx's Keras GRU, SimpleRNN, hard-sigmoid LSTM;
    # jax2onnx's scans), the sequence's length read off its shape
    while RewriteLoopRecurrencePass()(model).modified:  # a loop over another's sequence
        reinfer(model)  # reads its length once that one's output has a shape

    # What the folded constants feed has shapes after the next inference, and the channel
    # rules can read and patch them.
    fold_shape_computations(model, reinfer)
    if FoldMeasuredReshapeTargetsPass()(model).modified:
        reinfer(model)
        fold_shape_computations(model, reinfer)
    passes = ir.passes.PassManager(
        [
            # Again with shapes inferred: an Attention whose inputs' shapes the file did not
            # carry (its head size comes from them).
            UnfuseAttentionPass(),
            # ONNX Runtime runs GroupNormalization as its slow function body (shapes needed).
            UnfuseGroupNormPass(),
            FoldBatchNormIntoConvPass(),
            FuseMatMulAddIntoGemmPass(),
            FuseFlattenedSequenceDensePass(),
            CanonicalizeFlattenPass(),
            RelaxExpandTargetsPass(),
            FoldTransposeIntoDensePass(),
            FoldTransposedGemmInputPass(),
            StripOutputSoftmaxPass(),  # again with shapes: one behind a pooled head's Flatten
            ReadProbabilitiesAsLogitsPass(),  # skl2onnx's binary [1 - p, p], soft voting
            ExpandBinaryLogitPass(),
            RewriteChannelShufflePass(),
            FoldGatherOfConcatPass(),
            common.RemoveUnusedNodesPass(),  # it also unnames unused outputs: name Y after it
            NameRecurrentOutputsPass(),
            common.TopologicalSortPass(),
        ]
    )
    passes(model)
    infer_shapes(model)
    return model
