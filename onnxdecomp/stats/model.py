"""Model statistics: inputs/outputs, op counts, parameters and MACs per sample.

Used by ``onnxdecomp inspect`` and by the decomposition manifest (parents and modules).

What is counted, and how:

* **MACs** are multiply-accumulates for ONE sample. The model, read into onnx-ir, gets the
  batch axis of every real graph input set to 1 and goes through onnx shape inference with
  data propagation (large initializers are left out, so multi-GB models are never
  serialized). The batch axis is axis 0, except for a sequence that reaches an
  RNN/GRU/LSTM with ``layout=0`` (``[seq, batch, in]``) on its axis 1. Existing
  ``value_info`` is dropped first: a fixed batch recorded there would clash with batch 1 and
  be kept silently. Model-local functions are inlined first, so their nodes count too;
  integer arithmetic on constants is folded, and shape computations evaluated, so that the
  shapes after them are static (TorchScript's ``F.pad`` pads, ``x.view(x.size(0), -1)``). Only
  top-level nodes are counted (bodies of If/Loop/Scan count 0: trip counts are unknowable).
  Counted ops (default domain):

  - Conv / ConvInteger / QLinearConv: ``out_elements * Cin/groups * prod(kernel)``; bias adds
    are not MACs.
  - ConvTranspose: ``in_elements * Cout/groups * prod(kernel)``.
  - Gemm: ``M * N * K`` (transA/transB respected); MatMul / MatMulInteger / QLinearMatMul:
    ``prod(broadcast batch dims) * M * N * K`` (1-D operands as numpy does).
  - RNN / GRU / LSTM: ``seq * batch * dirs * G * (H*in + H*H)`` with G = 1 / 3 / 4
    (peephole and bias adds are element-wise, not MACs; ``sequence_lens`` is ignored, so this
    is the upper bound). When the sequence length is symbolic the layer's MACs are per time
    step and its :class:`LayerStat` says ``per_step=True``; the model total then adds those
    per-step counts as they are (``format_stats`` flags it).
  - everything else: 0.

  A shape that such a node needs but that is unknown or symbolic raises
  :class:`OnnxDecompError` naming the node and op, with the shape-inference failure appended
  when inference failed; nothing is guessed.

* **Params** are the elements of weight tensors among the top-level initializers (dense and
  sparse: stored values) and Constant nodes: every floating-point tensor, plus integer tensors
  used as quantized weights (data input of DequantizeLinear, weight/bias of QLinearConv,
  ConvInteger, QLinearMatMul, MatMulInteger). Other integer tensors (shapes, axes, indices,
  zero points) are not parameters and are not counted at all. A layer's ``params`` are the
  weight elements feeding it, traced back through constant-only subgraphs (e.g. a Transpose
  or DequantizeLinear of a weight), so weights shared by layers appear in each of them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto
from onnx_ir.passes.common import (
    InlinePass,
    LiftConstantsToInitializersPass,
    RemoveUnusedNodesPass,
)

from onnxdecomp import provenance
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import is_default_domain
from onnxdecomp.modelio import read_model
from onnxdecomp.passes.fold_constants import FoldConstantsPass
from onnxdecomp.passes.normalize import fold_shape_computations
from onnxdecomp.passes.rewrite_dynamic_quantization import (
    RewriteDynamicQuantizationPass,
    is_dynamic_quantized,
)
from onnxdecomp.passes.rewrite_qoperator import RewriteQOperatorPass, qop_spec
from onnxdecomp.passes.unfuse_attention import UnfuseAttentionPass
from onnxdecomp.passes.unfuse_runtime_ops import UnfuseRuntimeOpsPass, is_fused
from onnxdecomp.passes.unfuse_transformer_ops import (
    UnfuseTransformerOpsPass,
    is_transformer_fused,
)
from onnxdecomp.stats import infer, macs, params
from onnxdecomp.stats.compat import to_ir
from onnxdecomp.stats.shapes import Dim, one_line
from onnxdecomp.unrolled_rnn import reroll

# InlinePass names unnamed function nodes "node", "node_2", ...: such a layer is reported
# like any unnamed node ("MatMul#7"). Set on the function body; the inliner copies node meta.
_UNNAMED = "onnxdecomp.stats.unnamed"


@dataclass
class TensorInfo:
    """A graph input or output: symbolic dims are their names, unknown dims ``"?"``."""

    name: str
    shape: list[Dim]  # [] for scalars and for tensors of unknown rank
    dtype: str  # numpy-style name, e.g. "float32"


@dataclass
class LayerStat:
    """One node that does multiply-accumulates.

    ``output_shape`` is the shape for batch 1. ``per_step`` is True for a recurrent layer whose
    sequence length is symbolic: ``macs`` is then per time step.
    """

    node: str
    op: str
    macs: int
    params: int
    output_shape: list[Dim]
    per_step: bool = False


@dataclass
class ModelStats:
    """Summary of one model; see the module docstring for what is counted."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: dict[str, int]  # sorted by count desc, then name
    params: int
    macs: int  # per sample; per-step layers add their per-step MACs
    layers: list[LayerStat]  # nodes with macs > 0, graph order
    producer: str
    opset: int
    ir_version: int

    @property
    def macs_per_step(self) -> bool:
        """True when some recurrent layer could only be counted per time step."""
        return any(layer.per_step for layer in self.layers)

    def to_json(self) -> dict:
        """A plain dict of builtins (json.dumps-able)."""
        return {
            "inputs": [asdict(t) for t in self.inputs],
            "outputs": [asdict(t) for t in self.outputs],
            "op_counts": dict(self.op_counts),
            "params": int(self.params),
            "macs": int(self.macs),
            "layers": [asdict(layer) for layer in self.layers],
            "producer": self.producer,
            "opset": int(self.opset),
            "ir_version": int(self.ir_version),
        }


# The declared signature stays on protobuf: onnx-ir 1.1 raises on map types (ZipMap outputs),
# gives a sequence the shape of its elements, and merges value_info into the same Value.


def _dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:  # types numpy has no name for (e.g. without ml_dtypes)
        return TensorProto.DataType.Name(elem_type).lower()


def _tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(vi.name, [], kind or "undefined")
    tensor = vi.type.tensor_type
    shape: list[Dim] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        else:
            shape.append(d.dim_param or "?")
    return TensorInfo(vi.name, shape, _dtype_name(tensor.elem_type))


def _inline_functions(model: ir.Model) -> None:
    if not model.functions:
        return
    for function in model.functions.values():
        for node in function.all_nodes():
            if not node.name:
                node.meta[_UNNAMED] = True
    try:
        InlinePass()(model)
    except Exception as exc:  # cycles, opset clashes between a function and the model
        raise OnnxDecompError(
            f"cannot inline the model's local functions: {one_line(exc)}"
        ) from None


def _op_label(node: ir.Node) -> str:
    return node.op_type if is_default_domain(node.domain) else f"{node.domain}.{node.op_type}"


def model_stats(model: onnx.ModelProto | str | os.PathLike,
                sample_shape: Sequence[int] | None = None) -> ModelStats:
    """Statistics of ``model`` (a ModelProto, never modified, or a path to a .onnx file).

    MACs are counted at batch 1; an input with other dynamic axes (an image classifier for
    any size) is counted at ``sample_shape`` (one sample's shape), else at the size the model
    records (``provenance.MACS_AT``: modules of such a parent record their calibration's).
    Raises :class:`OnnxDecompError` (one line) for a file that is missing or not ONNX, and for
    a MAC-counted node whose needed shapes stay unknown or symbolic.
    """
    proto = read_model(model, weights=False)
    sample_shape = sample_shape if sample_shape is not None else provenance.macs_at(proto)
    src = proto.graph
    sparse_names = {s.values.name for s in src.sparse_initializer}
    weight_names = {i.name for i in src.initializer} | sparse_names
    # IR < 4 lists initializers among the inputs; those are weights, not model inputs.
    real_inputs = [vi for vi in src.input if vi.name not in weight_names]

    ir_model = to_ir(proto)
    opset = next((v for d, v in ir_model.opset_imports.items() if is_default_domain(d)), 0)
    _inline_functions(ir_model)
    counts: Counter[str] = Counter(_op_label(node) for node in ir_model.graph)
    # Integer arithmetic on constants (TorchScript computes F.pad's pads through
    # ConstantOfShape, Slice, Transpose, Reshape) as numbers: shapes after it are static.
    LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(ir_model)
    FoldConstantsPass(integers_only=True)(ir_model)
    graph = ir_model.graph
    weights = params.weight_sizes(graph, src.sparse_initializer)
    # Every initializer is a constant, whatever its size or type (the old light copy lost
    # those over 4096 elements, so a Gather by a big int64 table hid the weight behind it).
    constants = set(graph.initializers.values())
    constants.update(v for v in graph.inputs if v.name in sparse_names)
    tracer = params.WeightTracer(weights, constants)
    # ONNX Runtime's own ops (QGemm, QLinearAdd, FusedConv, DynamicQuantizeLSTM, ...) and
    # the QOperator ones are counted as the standard ops they compute: onnx's shape
    # inference knows none of the com.microsoft ones. Their layers keep the file's op names
    # and parameter counts.
    runtime_ops = {n.name: (_op_label(n), tracer.layer_params(n)) for n in graph
                   if n.name and (qop_spec(n) is not None or is_fused(n)
                                  or is_dynamic_quantized(n)
                                  or is_transformer_fused(n, opset)
                                  or (n.op_type == "Attention" and is_default_domain(n.domain)))}
    if runtime_ops:
        UnfuseRuntimeOpsPass()(ir_model)
        UnfuseTransformerOpsPass()(ir_model)
        RewriteQOperatorPass()(ir_model)
        RewriteDynamicQuantizationPass(standard_ops=False)(ir_model)
    # Dynamo's unrolled nn.RNN as the RNN it is: the samples' axis of a steps-first input
    # is found on the layer's X (the MACs are the same either way).
    if reroll(ir_model):  # its step nodes left beside the RNN were counted too (twice)
        RemoveUnusedNodesPass()(ir_model)
    batches = infer.batch_one(ir_model, {vi.name for vi in real_inputs}, sample_shape)
    failure = infer.infer_shapes(ir_model)
    if failure is None and batches and infer.unpin_reshape_batch(ir_model, batches):
        failure = infer.infer_shapes(ir_model)
    # ONNX's Attention as its ops once its inputs have shapes (its head size is theirs).
    if failure is None and UnfuseAttentionPass()(ir_model).modified:
        failure = infer.infer_shapes(ir_model)

    def reinfer(m: ir.Model) -> bool:
        nonlocal failure
        failure = infer.infer_shapes(m)
        return failure is None

    # Shape computations as numbers at batch 1: onnx's data propagation stops at some of
    # them, and the shapes after them would stay unknown.
    if failure is None:
        fold_shape_computations(ir_model, reinfer)
    shapes = macs.ShapeLookup(failure)
    try:
        counted = [macs.node_macs(node, shapes) for node in graph]
    except OnnxDecompError:
        # A shape that static inference cannot follow (rows picked by computed indices):
        # measured by running one sample of the model, where every input's size is known.
        if not measure_shapes(ir_model):
            raise
        shapes = macs.ShapeLookup(None)
        counted = [macs.node_macs(node, shapes) for node in graph]

    layers: list[LayerStat] = []
    for index, (node, (n_macs, per_step)) in enumerate(zip(graph, counted, strict=True)):
        if n_macs > 0:
            out = next((o for o in node.outputs if o.name), None)
            name = "" if node.meta.get(_UNNAMED) else node.name
            op, n_params = runtime_ops.get(node.name) or (_op_label(node),
                                                         tracer.layer_params(node))
            layers.append(
                LayerStat(
                    node=name or f"{node.op_type}#{index}",
                    op=op,
                    macs=int(n_macs),
                    params=n_params,
                    output_shape=list((shapes.dims(out) if out else None) or []),
                    per_step=per_step,
                )
            )

    return ModelStats(
        inputs=[_tensor_info(vi) for vi in real_inputs],
        outputs=[_tensor_info(vi) for vi in src.output],
        op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        params=sum(weights.values()),
        macs=sum(layer.macs for layer in layers),
        layers=layers,
        producer=f"{ir_model.producer_name or ''} {ir_model.producer_version or ''}".strip(),
        opset=int(opset),
        ir_version=int(ir_model.ir_version),
    )


def measure_shapes(model: ir.Model) -> bool:
    """Give every node output of ``model`` (its inputs static: batch 1 and a known size)
    the shape it has when ONNX Runtime runs one sample of zeros; False (nothing changed)
    where an input's size is unknown or the model does not run."""
    from onnxdecomp.runtime import run_values

    feeds = {}
    for value in model.graph.inputs:
        if value.shape is None or value.dtype is None or not all(
                isinstance(d, int) for d in value.shape):
            return False
        feeds[value.name] = np.zeros(tuple(value.shape), value.dtype.numpy())
    values = {o.name: o for node in model.graph for o in node.outputs if o.name}
    runs = run_values(model, list(values), [feeds])  # one batch: scalars too
    if runs is None:  # the static error stands
        return False
    for value, array in zip(values.values(), runs[0], strict=True):
        if isinstance(array, np.ndarray):
            value.shape = ir.Shape(array.shape)
    return True
