"""Model statistics: inputs/outputs, op counts, parameters and MACs per sample.

Used by ``onnxdecomp inspect`` and by the decomposition manifest (parents and modules).

What is counted, and how:

* **MACs** are multiply-accumulates for ONE sample. A light copy of the model (large
  initializers replaced by typed graph inputs, so multi-GB models are never serialized) gets
  the batch axis of every graph input set to 1 and goes through
  ``onnx.shape_inference.infer_shapes(data_prop=True)``. The batch axis is axis 0, except for an
  input fed straight into an RNN/GRU/LSTM with ``layout=0`` (``[seq, batch, in]``), where it is
  axis 1. Existing ``value_info`` is dropped first: a fixed batch recorded there would clash
  with batch 1 and be kept silently. Model-local functions are inlined first, so their nodes
  count too. Only top-level nodes are counted (bodies of If/Loop/Scan count 0: trip counts
  are unknowable). Counted ops (default domain):

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
  :class:`OnnxDecompError` naming the node and op; nothing is guessed.

* **Params** are the elements of weight tensors among the top-level initializers (dense and
  sparse: stored values) and Constant nodes: every floating-point tensor, plus integer tensors
  used as quantized weights (data input of DequantizeLinear, weight/bias of QLinearConv,
  ConvInteger, QLinearMatMul, MatMulInteger). Other integer tensors (shapes, axes, indices,
  zero points) are not parameters and are not counted at all. A layer's ``params`` are the
  weight elements feeding it, traced back through constant-only subgraphs (e.g. a Transpose
  or DequantizeLinear of a weight), so weights shared by layers appear in each of them.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import NoReturn

import numpy as np
import onnx
from onnx import TensorProto

from onnxdecomp.errors import OnnxDecompError

__all__ = ["LayerStat", "ModelStats", "TensorInfo", "format_stats", "model_stats"]

Dim = int | str

# Initializers up to this many elements keep their data in the light copy: shape inference
# needs the values of shape tensors, Resize scales and the like; real weights are bigger.
_KEEP_DATA_MAX_ELEMENTS = 4096

_FLOAT_TYPES = {
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
    TensorProto.FLOAT8E4M3FN,
    TensorProto.FLOAT8E4M3FNUZ,
    TensorProto.FLOAT8E5M2,
    TensorProto.FLOAT8E5M2FNUZ,
}
for _name in ("FLOAT4E2M1", "FLOAT8E8M0"):  # newer onnx only
    if hasattr(TensorProto, _name):
        _FLOAT_TYPES.add(getattr(TensorProto, _name))

# Input slots where an integer tensor is a (quantized) weight rather than a shape or zero point.
_INT_WEIGHT_SLOTS = {
    "DequantizeLinear": (0,),
    "QLinearConv": (3, 8),
    "ConvInteger": (1,),
    "QLinearMatMul": (3,),
    "MatMulInteger": (1,),
}

_RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_DOMAINS = ("", "ai.onnx")


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


# --------------------------------------------------------------------------------------------
# loading


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load(path: str | os.PathLike) -> onnx.ModelProto:
    """Load a model without its external weights (only small external tensors are read)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "no such file"
        raise OnnxDecompError(f"not an ONNX model: {path} ({reason})")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        raise OnnxDecompError(f"not an ONNX model: {path} ({_one_line(exc)})") from None
    # Protobuf happily parses many byte strings (an empty file included) as an empty message.
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise OnnxDecompError(f"not an ONNX model: {path} (no IR version, opset or graph)")
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    base = os.path.dirname(os.path.abspath(path))
    for init in model.graph.initializer:
        if uses_external_data(init) and _numel(init.dims) <= _KEEP_DATA_MAX_ELEMENTS:
            try:
                load_external_data_for_tensor(init, base)
            except Exception:
                # Only shape inference would miss it; a needed shape then errors with its node.
                continue
    return model


def _numel(dims) -> int:
    return math.prod(int(d) for d in dims)


def _dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:  # types numpy has no name for (e.g. without ml_dtypes)
        return TensorProto.DataType.Name(elem_type).lower()


def _shape_of(vtype: onnx.TypeProto) -> list[Dim] | None:
    """Dims of a tensor type; None when not a tensor or the rank is unknown."""
    if vtype.WhichOneof("value") != "tensor_type" or not vtype.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in vtype.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append("?")
    return dims


def _tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(vi.name, [], kind or "undefined")
    return TensorInfo(vi.name, _shape_of(vi.type) or [], _dtype_name(vi.type.tensor_type.elem_type))


# --------------------------------------------------------------------------------------------
# the batch-1 light copy and its shapes


def _batch_axes(graph: onnx.GraphProto, input_names: list[str]) -> dict[str, int]:
    """Batch axis per graph input: 0, or 1 for ``[seq, batch, in]`` fed straight to an RNN."""
    axes = dict.fromkeys(input_names, 0)
    for node in graph.node:
        if node.op_type in _RNN_GATES and node.domain in _DEFAULT_DOMAINS and node.input:
            layout = _attr(node, "layout", 0)
            if node.input[0] in axes and layout == 0:
                axes[node.input[0]] = 1
    return axes


def _light_copy(model: onnx.ModelProto, real_inputs: list[str]) -> onnx.ModelProto:
    """Weightless copy with batch 1 on the real inputs and no stale value_info."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, src = light.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.sparse_initializer.extend(src.sparse_initializer)
    listed = {vi.name for vi in src.input}
    g.input.extend(src.input)
    for init in src.initializer:
        if _numel(init.dims) <= _KEEP_DATA_MAX_ELEMENTS:
            g.initializer.append(init)
        elif init.name not in listed:  # (IR < 4 lists it among the inputs already)
            # Shape inference only needs the type of a big weight, not its bytes.
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    # Outputs keep their element type only: a fixed batch there would clash with batch 1.
    for out in src.output:
        vi = g.output.add()
        vi.name = out.name
        if out.type.WhichOneof("value") == "tensor_type":
            vi.type.tensor_type.elem_type = out.type.tensor_type.elem_type
        else:
            vi.type.CopyFrom(out.type)
    axes = _batch_axes(src, real_inputs)
    for vi in g.input:
        axis = axes.get(vi.name)
        if axis is None or vi.type.WhichOneof("value") != "tensor_type":
            continue
        shape = vi.type.tensor_type.shape
        if vi.type.tensor_type.HasField("shape") and len(shape.dim) > axis:
            shape.dim[axis].Clear()
            shape.dim[axis].dim_value = 1
    if light.functions:
        from onnx.inliner import inline_local_functions

        light = inline_local_functions(light)
    return light


def _collect_shapes(graph: onnx.GraphProto) -> dict[str, list[Dim] | None]:
    shapes: dict[str, list[Dim] | None] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shapes[vi.name] = _shape_of(vi.type)
    for init in graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    for sp in graph.sparse_initializer:
        shapes[sp.values.name] = [int(d) for d in sp.dims]
    return shapes


# --------------------------------------------------------------------------------------------
# parameters


def _constant_tensor(node: onnx.NodeProto) -> tuple[int, int] | None:
    """(elem_type, elements) of a Constant node's value, or None if it holds no tensor."""
    for a in node.attribute:
        if a.name == "value":
            return a.t.data_type, _numel(a.t.dims)
        if a.name == "sparse_value":
            return a.sparse_tensor.values.data_type, _numel(a.sparse_tensor.values.dims)
        if a.name == "value_float":
            return TensorProto.FLOAT, 1
        if a.name == "value_floats":
            return TensorProto.FLOAT, len(a.floats)
    return None


def _weight_sizes(model: onnx.ModelProto, graph: onnx.GraphProto) -> dict[str, int]:
    """Elements of each weight tensor (initializer or Constant output) by value name.

    Initializers come from the original ``model`` (the light ``graph`` lacks the big ones);
    Constant nodes from ``graph``, which has local functions inlined.
    """
    int_weights = set()
    for node in graph.node:
        if node.domain in _DEFAULT_DOMAINS:
            for slot in _INT_WEIGHT_SLOTS.get(node.op_type, ()):
                if slot < len(node.input) and node.input[slot]:
                    int_weights.add(node.input[slot])

    def is_weight(name: str, elem_type: int) -> bool:
        return elem_type in _FLOAT_TYPES or name in int_weights

    sizes: dict[str, int] = {}
    for init in model.graph.initializer:
        if is_weight(init.name, init.data_type):
            sizes[init.name] = _numel(init.dims)
    for sp in model.graph.sparse_initializer:
        if is_weight(sp.values.name, sp.values.data_type):
            sizes[sp.values.name] = _numel(sp.values.dims)  # stored values, not dense size
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS and node.output:
            const = _constant_tensor(node)
            if const is not None and is_weight(node.output[0], const[0]):
                sizes[node.output[0]] = const[1]
    return sizes


class _WeightTracer:
    """Finds the weight tensors behind a value through constant-only subgraphs."""

    def __init__(self, graph: onnx.GraphProto, weights: dict[str, int]) -> None:
        self.weights = weights
        self.constants = {i.name for i in graph.initializer} | set(weights)
        self.producer = {out: node for node in graph.node for out in node.output if out}
        self._memo: dict[str, frozenset[str] | None] = {}

    def sources(self, name: str) -> frozenset[str] | None:
        """Weight names behind ``name``; None when it depends on a runtime input."""
        if name in self._memo:
            return self._memo[name]
        self._memo[name] = None  # guards against cycles in malformed graphs
        result: frozenset[str] | None
        if name in self.weights:
            result = frozenset([name])
        elif name in self.constants:
            result = frozenset()
        elif (node := self.producer.get(name)) is None:
            result = None  # a graph input
        elif node.op_type == "Constant":
            result = frozenset()
        else:
            found: set[str] = set()
            result = frozenset()
            inputs = [i for i in node.input if i]
            if not inputs:
                result = None  # e.g. RandomNormal: not a stored weight
            for i in inputs:
                sub = self.sources(i)
                if sub is None:
                    result = None
                    break
                found |= sub
            if result is not None:
                result = frozenset(found)
        self._memo[name] = result
        return result

    def layer_params(self, node: onnx.NodeProto) -> int:
        found: set[str] = set()
        for i in node.input:
            if i and (sub := self.sources(i)):
                found |= sub
        return sum(self.weights[w] for w in found)


# --------------------------------------------------------------------------------------------
# MACs


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class _Shapes:
    """Shape lookup that raises a one-line error naming the node when a shape is unknown."""

    def __init__(self, shapes: dict[str, list[Dim] | None], infer_error: str | None) -> None:
        self.shapes = shapes
        self.infer_error = infer_error

    def get(self, node: onnx.NodeProto, label: str, index: int, output: bool = False) -> list[int]:
        names = node.output if output else node.input
        name = names[index] if index < len(names) else ""
        shape = self.shapes.get(name) if name else None
        if shape is not None and all(isinstance(d, int) for d in shape):
            return shape  # type: ignore[return-value]
        self.fail(node, label, name, shape)

    def fail(self, node: onnx.NodeProto, label: str, name: str, shape) -> NoReturn:
        if not name:
            what = "missing"
        else:
            what = "unknown" if shape is None else f"not static {_fmt_shape(shape)}"
        self.mismatch(node, f"shape of {label} {name!r} is {what}")

    def mismatch(self, node: onnx.NodeProto, detail: str) -> NoReturn:
        msg = f"cannot count MACs of node {node.name or '(unnamed)'!r} ({node.op_type}): {detail}"
        if self.infer_error:
            msg += f" (shape inference failed: {self.infer_error})"
        raise OnnxDecompError(msg)


def _conv_macs(node: onnx.NodeProto, sh: _Shapes, w: int) -> int:
    wshape = sh.get(node, "weight", w)
    out = sh.get(node, "output", 0, output=True)
    # W is [Cout, Cin/groups, k...]: dim 1 is already the per-group input channels.
    return math.prod(out) * wshape[1] * math.prod(wshape[2:])


def _conv_transpose_macs(node: onnx.NodeProto, sh: _Shapes) -> int:
    xshape = sh.get(node, "input", 0)
    wshape = sh.get(node, "weight", 1)
    # W is [Cin, Cout/groups, k...]: each input element is scattered to Cout/groups * k outputs.
    return math.prod(xshape) * wshape[1] * math.prod(wshape[2:])


def _gemm_macs(node: onnx.NodeProto, sh: _Shapes) -> int:
    a = sh.get(node, "input A", 0)
    b = sh.get(node, "input B", 1)
    if len(a) != 2 or len(b) != 2:
        sh.mismatch(node, f"inputs must be 2-D, got {_fmt_shape(a)} and {_fmt_shape(b)}")
    m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
    k_b, n = (b[1], b[0]) if _attr(node, "transB", 0) else (b[0], b[1])
    if k != k_b:  # e.g. a Reshape hard-coding the original batch: refuse rather than guess
        sh.mismatch(node, f"inner dimensions differ: {_fmt_shape(a)} x {_fmt_shape(b)}")
    return m * n * k


def _matmul_macs(node: onnx.NodeProto, sh: _Shapes, a_idx: int, b_idx: int) -> int:
    a = sh.get(node, "input A", a_idx)
    b = sh.get(node, "input B", b_idx)
    # numpy semantics: a 1-D operand is a row (A) or column (B) vector, not batched.
    if not a or not b:
        sh.mismatch(node, "scalar operand")
    m, k, a_batch = (1, a[0], []) if len(a) == 1 else (a[-2], a[-1], a[:-2])
    k_b, n, b_batch = (b[0], 1, []) if len(b) == 1 else (b[-2], b[-1], b[:-2])
    try:
        batch = math.prod(np.broadcast_shapes(tuple(a_batch), tuple(b_batch)))
    except ValueError:
        batch = -1
    if k != k_b or batch < 0:
        sh.mismatch(node, f"shapes do not multiply: {_fmt_shape(a)} x {_fmt_shape(b)}")
    return batch * m * n * k


def _rnn_macs(node: onnx.NodeProto, sh: _Shapes) -> tuple[int, bool]:
    x = sh.shapes.get(node.input[0]) if node.input else None
    w = sh.get(node, "W", 1)
    r = sh.get(node, "R", 2)
    if x is None or len(x) != 3:
        sh.fail(node, "input X", node.input[0] if node.input else "", x)
    seq_axis, batch_axis = (1, 0) if _attr(node, "layout", 0) == 1 else (0, 1)
    seq, batch = x[seq_axis], x[batch_axis]
    if not isinstance(batch, int):
        sh.fail(node, "input X", node.input[0], x)
    if len(w) != 3 or len(r) != 3:
        sh.mismatch(node, f"W and R must be 3-D, got {_fmt_shape(w)} and {_fmt_shape(r)}")
    dirs, gh, inp = w
    hidden = r[2]
    gates = _RNN_GATES[node.op_type]
    if gh != gates * hidden or x[2] != inp:
        sh.mismatch(node, f"X {_fmt_shape(x)}, W {_fmt_shape(w)}, R {_fmt_shape(r)} do not fit")
    per_step = batch * dirs * gates * (hidden * inp + hidden * hidden)
    if isinstance(seq, int):
        return seq * per_step, False
    return per_step, True  # symbolic sequence length: honest per-step count


def _node_macs(node: onnx.NodeProto, sh: _Shapes) -> tuple[int, bool]:
    """(MACs, per_step) of one node; 0 for ops that are not counted."""
    if node.domain not in _DEFAULT_DOMAINS:
        return 0, False
    op = node.op_type
    if op in ("Conv", "ConvInteger"):
        return _conv_macs(node, sh, 1), False
    if op == "QLinearConv":
        return _conv_macs(node, sh, 3), False
    if op == "ConvTranspose":
        return _conv_transpose_macs(node, sh), False
    if op == "Gemm":
        return _gemm_macs(node, sh), False
    if op in ("MatMul", "MatMulInteger"):
        return _matmul_macs(node, sh, 0, 1), False
    if op == "QLinearMatMul":
        return _matmul_macs(node, sh, 0, 3), False
    if op in _RNN_GATES:
        return _rnn_macs(node, sh)
    return 0, False


# --------------------------------------------------------------------------------------------
# public API


def model_stats(model: onnx.ModelProto | str | os.PathLike) -> ModelStats:
    """Statistics of ``model`` (a ModelProto, never modified, or a path to a .onnx file).

    Raises :class:`OnnxDecompError` (one line) for a file that is missing or not ONNX, and for
    a MAC-counted node whose needed shapes stay unknown or symbolic at batch 1.
    """
    if not isinstance(model, onnx.ModelProto):
        model = _load(model)
    src = model.graph
    init_names = {i.name for i in src.initializer} | {s.values.name for s in src.sparse_initializer}
    # IR < 4 lists initializers among the inputs; those are weights, not model inputs.
    real_inputs = [vi for vi in src.input if vi.name not in init_names]

    light = _light_copy(model, [vi.name for vi in real_inputs])
    infer_error = None
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception as exc:  # malformed graphs, unsupported opsets: fail only if a shape is needed
        inferred, infer_error = light, _one_line(exc)
    graph = inferred.graph
    shapes = _Shapes(_collect_shapes(graph), infer_error)

    weights = _weight_sizes(model, graph)
    tracer = _WeightTracer(graph, weights)
    layers: list[LayerStat] = []
    counts: Counter[str] = Counter()
    for index, node in enumerate(graph.node):
        op = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        counts[op] += 1
        macs, per_step = _node_macs(node, shapes)
        if macs > 0:
            out = next((o for o in node.output if o), "")
            layers.append(
                LayerStat(
                    node=node.name or f"{node.op_type}#{index}",
                    op=op,
                    macs=int(macs),
                    params=tracer.layer_params(node),
                    output_shape=list(shapes.shapes.get(out) or []),
                    per_step=per_step,
                )
            )

    opset = next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 0)
    return ModelStats(
        inputs=[_tensor_info(vi) for vi in real_inputs],
        outputs=[_tensor_info(vi) for vi in src.output],
        op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        params=sum(weights.values()),
        macs=sum(layer.macs for layer in layers),
        layers=layers,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opset=int(opset),
        ir_version=int(model.ir_version),
    )


# --------------------------------------------------------------------------------------------
# formatting


def _fmt_shape(shape) -> str:
    if not isinstance(shape, list | tuple):
        return str(shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _table(rows: list[list[str]], right: set[int], indent: str = "  ") -> list[str]:
    """Aligned columns; ``right`` holds the indices of right-aligned (numeric) columns."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(row)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def format_stats(stats: ModelStats, top: int | None = None) -> str:
    """Human-readable report.

    ``top=None`` lists every counted layer in graph order; ``top=k`` lists the ``k`` layers
    with the most MACs (largest first) and sums up the rest in one line.
    """
    lines = [
        f"producer: {stats.producer or '(unknown)'}   opset: {stats.opset}   "
        f"IR version: {stats.ir_version}",
        "",
    ]
    for title, tensors in (("inputs", stats.inputs), ("outputs", stats.outputs)):
        lines.append(f"{title}:")
        if tensors:
            rows = [[t.name, t.dtype, _fmt_shape(t.shape)] for t in tensors]
            lines += _table(rows, right=set())
        else:
            lines.append("  (none)")
    total_nodes = sum(stats.op_counts.values())
    lines += ["", f"ops ({total_nodes} nodes, {len(stats.op_counts)} types):"]
    if stats.op_counts:
        lines += _table([[op, str(n)] for op, n in stats.op_counts.items()], right={1})
    step_note = " (recurrent layers marked * are per time step)" if stats.macs_per_step else ""
    lines += [
        "",
        f"params:      {stats.params:,} ({_human(stats.params)})",
        f"MACs/sample: {stats.macs:,} ({_human(stats.macs)}){step_note}",
    ]
    if not stats.layers:
        return "\n".join(lines) + "\n"

    layers = list(stats.layers)
    if top is not None:
        layers = sorted(layers, key=lambda layer: -layer.macs)[: max(top, 0)]
    total = stats.macs or 1

    def pct(macs: int) -> str:
        return f"{100.0 * macs / total:.1f}%"

    header = ["layer", "op", "output shape", "params", "MACs", "%"]
    rows = [header] + [
        [
            layer.node,
            layer.op,
            _fmt_shape(layer.output_shape),
            f"{layer.params:,}",
            f"{layer.macs:,}" + ("*" if layer.per_step else ""),
            pct(layer.macs),
        ]
        for layer in layers
    ]
    shown = {id(layer) for layer in layers}  # by identity: equal-looking layers are distinct
    rest = [layer for layer in stats.layers if id(layer) not in shown]
    if rest:
        rest_macs = sum(layer.macs for layer in rest)
        rows.append(
            [
                f"... {len(rest)} more",
                "",
                "",
                f"{sum(r.params for r in rest):,}",
                f"{rest_macs:,}",
                pct(rest_macs),
            ]
        )
    title = "layers" if top is None else f"top {len(layers)} layers by MACs"
    lines += ["", f"{title}:"] + _table(rows, right={3, 4, 5})
    return "\n".join(lines) + "\n"
