"""Small helpers over onnx-ir shared by the passes: domains, constants, probe copies."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from onnxdecomp.errors import node_error

DEFAULT_DOMAINS = ("", "ai.onnx")
RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}  # the recurrent ops and their gate blocks


def is_default_domain(domain: str) -> bool:
    """True for the standard ONNX operator set, however the model spells its domain."""
    return domain in DEFAULT_DOMAINS


def opset_version(model: onnx.ModelProto) -> int:
    """The model's default-domain opset (1 when it imports none)."""
    return next((o.version for o in model.opset_import if is_default_domain(o.domain)), 1)


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
    graph = ir.convenience.extract(model.graph, list(model.graph.inputs), names)
    return to_proto(ir.Model(graph, ir_version=model.ir_version))


def cut_at(proto: onnx.ModelProto, names: list[str],
           known: set[str]) -> tuple[onnx.ModelProto, list[str]]:
    """The part of ``proto`` that computes the values ``names`` from the ``known`` values
    (and from graph inputs where a path reaches one without meeting a known value), as a
    model whose inputs are those boundary values; with their names, in the model's order."""
    model = ir.serde.deserialize_model(proto)
    graph = model.graph
    by_name = {v.name: v for v in graph.inputs}
    by_name.update({v.name: v for node in graph for v in node.outputs})
    bounds: list[ir.Value] = []
    seen: set[str] = set()
    stack = [by_name[n] for n in names]
    while stack:
        value = stack.pop()
        if value.name in seen:
            continue
        seen.add(value.name)
        if value.name in known or value.is_graph_input():
            bounds.append(value)
        elif (node := value.producer()) is not None:
            stack.extend(v for v in node.inputs if v is not None)
    sub = ir.convenience.extract(graph, bounds, names)
    return to_proto(ir.Model(sub, ir_version=model.ir_version)), [v.name for v in bounds]


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant content (initializer), or None for data-dependent values."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def run_node(node: ir.Node, arrays: list[np.ndarray], opset: int) -> list[np.ndarray] | None:
    """``node``'s outputs computed by ONNX's reference evaluator from ``arrays``, one for each
    of its inputs that is present (in order); None where the reference cannot run it."""
    inputs = [v for v in node.inputs if v is not None]
    feeds = {v.name: a for v, a in zip(inputs, arrays)}
    proto = ir.serde.serialize_node(node)
    # As a model at ``opset`` first: the reference runs a bare node by the op's newest
    # version, which reads an older one's attributes (Unsqueeze-1's axes) as errors; the
    # bare node where the reference has no implementation of that version
    # (DequantizeLinear before 19), the newer one computing the same.
    graph = onnx.helper.make_graph(
        [proto], "node", [onnx.helper.make_empty_tensor_value_info(v.name) for v in inputs],
        [onnx.helper.make_empty_tensor_value_info(o) for o in proto.output if o])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    for program, kwargs in ((model, {}), (proto, {"opsets": {"": opset}})):
        try:
            out = ReferenceEvaluator(program, **kwargs).run(None, feeds)
        except Exception:  # noqa: BLE001 - an op the reference cannot run stays unknown
            continue
        return [np.asarray(a) for a in out]
    return None


def node_opset(node: ir.Node) -> int:
    """The default-domain opset ``node`` runs at: its graph's (17 where that imports none,
    as a subgraph's own list may not)."""
    imports = node.graph.opset_imports if node.graph is not None else {}
    return next((v for d, v in imports.items() if is_default_domain(d)), 17)


def softmax_axis(node: ir.Node) -> int:
    """A Softmax's, LogSoftmax's or Hardmax's ``axis``, or its opset's default: -1 from
    opset 13, 1 before."""
    return node.attributes.get_int("axis", -1 if node_opset(node) >= 13 else 1)


def softmax_axes(node: ir.Node, rank: int) -> range:
    """The axes such an op on a rank-``rank`` input normalises over: from opset 13 its
    ``axis`` alone; before, the input was coerced to 2-D at ``axis``, so every axis from
    there on."""
    axis = softmax_axis(node) % rank
    return range(axis, axis + 1 if node_opset(node) >= 13 else rank)


def copy_attributes(node: ir.Node, names: tuple[str, ...] | None = None) -> list[ir.Attr]:
    """Fresh copies of ``node``'s attributes (those in ``names``, where given), for a new
    node of the same kind."""
    return [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values()
            if names is None or a.name in names]


def axes_operand(node: ir.Node) -> list[int] | None:
    """The ``axes`` of a Squeeze/Unsqueeze/Reduce node, attribute or constant input 1 by
    opset (None when it has none); raises when they are computed."""
    axes = node.attributes.get_ints("axes", None)
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        if arr is None:
            raise node_error(node, "axes are computed, not constant")
        axes = arr.tolist()
    return None if axes is None else list(axes)


def set_const(value: ir.Value, array: np.ndarray) -> None:
    """Replace an initializer's content; onnx-ir does not update the shape by itself."""
    # np.ascontiguousarray makes a 0-d array 1-d: a scalar must stay a scalar.
    array = np.asarray(array)
    tensor = ir.tensor(np.ascontiguousarray(array) if array.ndim else array, name=value.name)
    value.const_value = tensor
    value.shape = ir.Shape(array.shape)
    value.dtype = tensor.dtype


def fresh_name(graph: ir.Graph, name: str) -> str:
    """``name``, or ``name_1``, ``name_2`` ... whichever no initializer or value holds yet."""
    taken = {v.name for v in graph.initializers.values()}
    taken.update(v.name for n in graph for v in n.outputs)
    taken.update(v.name for v in graph.inputs)
    base, i = name, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def new_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Register a fresh initializer whose name does not clash with existing values."""
    value = ir.Value(name=fresh_name(graph, name))
    set_const(value, array)
    graph.register_initializer(value)
    return value


class NodeSteps:
    """New nodes computing what ``node`` did, one after another, named after it
    (``name_0``, ``name_1`` ...), their constants ``name_tag``; ``nodes`` for
    ``replace_node``. Float constants and casts are of ``dtype``, by default the float type
    of the node's first float input (float32 where none says: a float16 model's stay
    float16)."""

    def __init__(self, graph: ir.Graph, node: ir.Node, dtype: ir.DataType | None = None
                 ) -> None:
        self.graph, self.name, self.nodes = graph, node.name or node.op_type, []
        floats = [v.dtype for v in node.inputs
                  if v is not None and v.dtype is not None and v.dtype.is_floating_point()]
        self.float = dtype or (floats[0] if floats else ir.DataType.FLOAT)

    def op(self, kind: str, *inputs: ir.Value, **attributes) -> ir.Value:
        n = ir.node(kind, list(inputs), attributes=attributes,
                    name=f"{self.name}_{len(self.nodes)}")
        n.outputs[0].name = f"{self.name}_{len(self.nodes)}"
        self.nodes.append(n)
        return n.outputs[0]

    def const(self, tag: str, values, dtype=None) -> ir.Value:
        """A constant of ``dtype`` (default: the node's float type)."""
        return new_initializer(self.graph, f"{self.name}_{tag}",
                               np.asarray(values, dtype or self.float.numpy()))

    def as_float(self, x: ir.Value) -> ir.Value:
        """``x`` in the node's float type (cast when it is not)."""
        if x.dtype == self.float:
            return x
        return self.op("Cast", x, to=self.float)


def input_at(node: ir.Node, i: int) -> ir.Value | None:
    """Input ``i`` of ``node``, None when it is absent (optional inputs may be left out)."""
    return node.inputs[i] if i < len(node.inputs) else None


def only_use(value: ir.Value) -> ir.Node | None:
    """The one node reading ``value``, or None when it has several readers or is a graph
    output."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0].node


def replace_node(graph: ir.Graph, node: ir.Node, added: list[ir.Node]) -> None:
    """``added`` (new nodes computing what ``node`` computed) in its place: the last one's
    outputs take over (``replace_outputs``)."""
    graph.insert_before(node, added)
    replace_outputs(graph, node, list(added[-1].outputs))


def replace_outputs(graph: ir.Graph, node: ir.Node, results: list[ir.Value | None]) -> None:
    """``results`` take over ``node``'s outputs: their uses, graph output slots, names, types
    and shapes; ``node`` is removed (an output whose result is None must be unused)."""
    pairs = [(r, old) for r, old in zip(results, node.outputs, strict=True) if r is not None]
    for result, old in pairs:
        result.shape, result.type = old.shape, old.type
        if old.is_graph_output():
            graph.outputs[graph.outputs.index(old)] = result
        ir.convenience.replace_all_uses_with(old, result)
    names = [old.name for _, old in pairs]
    graph.remove(node, safe=True)
    for (result, _), name in zip(pairs, names, strict=True):
        result.name = name


def rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def leading_dims(scores: ir.Value) -> list:
    """The dims before the class axis (the last) of a scores tensor: [N] for [N, K], [N, T]
    for a tagger's [N, T, K], [None] when the shape is unknown; their count is the class
    axis."""
    return list(scores.shape)[:-1] if scores.shape is not None else [None]


def input_batch_dim(graph: ir.Graph | None) -> ir.SymbolicDim | None:
    """The graph input's batch dimension when it is a named symbol (a dynamic batch), else
    None: values that carry it hold the samples on that axis."""
    first = graph.inputs[0] if graph is not None and graph.inputs else None
    if first is None or first.shape is None or not len(first.shape):
        return None
    batch = first.shape[min(input_batch_axis(first), len(first.shape) - 1)]
    return None if isinstance(batch, int) else batch


# Ops through which an axis of the input keeps its position (elementwise on one tensor).
_SAME_AXES = {"Cast", "Identity", "Relu", "Tanh", "Sigmoid", "Neg", "Abs", "Dropout", "Clip",
              "Add", "Sub", "Mul", "Div"}


def input_batch_axis(value: ir.Value, depth: int = 16) -> int:
    """The axis of graph input ``value`` that holds the samples: 0, except for a sequence
    that reaches a recurrent layer's X (``layout=0``: [T, N, F]), or its initial state
    ([dirs, N, H]), with its own axis 1 there,
    itself or through an embedding lookup (Gather of its ids), Transposes and elementwise
    ops (PyTorch's ``nn.LSTM`` without ``batch_first`` takes token ids [T, N])."""
    if value.shape is None:
        return 0
    todo = [(value, list(range(len(value.shape))), 0)]  # value, where each input axis is
    while todo:
        v, pos, steps = todo.pop()
        if steps > depth:
            continue
        for node, i in v.uses():
            op, out = node.op_type, node.outputs[0] if node.outputs else None
            if not is_default_domain(node.domain) or out is None:
                continue
            # X [T, N, F] and the initial states (5, 6) [dirs, N, H] hold the samples on
            # their axis 1 at layout 0
            if op in RNN_GATES and i in (0, 5, 6):
                if node.attributes.get_int("layout", 0) == 0 and 1 in pos:
                    return pos.index(1)
                return 0
            if op == "Transpose":
                perm = list(node.attributes.get_ints("perm", ()) or ())
                if len(perm) != len(pos):
                    continue
                nxt = [perm.index(p) for p in pos]
            elif op == "Gather" and i == 1:  # ids into a table: their axes at ``axis``
                nxt = [node.attributes.get_int("axis", 0) + p for p in pos]
            elif (op in _SAME_AXES or (op == "Slice" and i == 0)) and (
                    out.shape is None or rank(out) == rank(v)):  # a per-layer state's slice
                nxt = pos
            else:
                continue
            todo.append((out, nxt, steps + 1))
    return 0


# The opset from which an op takes ``axes`` as an input instead of an attribute.
_AXES_AS_INPUT = {"Squeeze": 13, "Unsqueeze": 13, "ReduceSum": 13}
_REDUCE_AXES_AS_INPUT = 18


def axes_node(graph: ir.Graph, op: str, x: ir.Value, axes: list[int], opset: int, name: str,
              axes_name: str | None = None, **attributes) -> ir.Node:
    """``op`` over ``axes`` of ``x``, with the axes where this opset wants them: an int64
    initializer ``axes_name`` (registered in ``graph``; the node is not) or an attribute."""
    since = _AXES_AS_INPUT.get(op, _REDUCE_AXES_AS_INPUT if op.startswith("Reduce") else None)
    if since is None:
        raise ValueError(f"{op} takes no axes")
    if opset >= since:
        axes_value = new_initializer(graph, axes_name or f"{name}_axes",
                                     np.array(axes, dtype=np.int64))
        return ir.node(op, [x, axes_value], attributes=attributes, name=name)
    return ir.node(op, [x], attributes={"axes": list(axes), **attributes}, name=name)


# Ops whose output has their input's shape and type, which onnx's inference (1.23) leaves
# untyped: it infers nothing from GroupNormalization-21's function body, and so nothing
# after it.
SHAPE_KEEPING = ("GroupNormalization",)


def carry_untyped_shapes(model: ir.Model) -> bool:
    """Give each ``SHAPE_KEEPING`` output that inference left untyped its input's shape and
    type; whether any was given (then inference can go on past it)."""
    carried = False
    for node in model.graph:
        if node.op_type in SHAPE_KEEPING and node.inputs and node.inputs[0] is not None and \
                node.inputs[0].shape is not None and node.outputs[0].shape is None:
            node.outputs[0].shape, node.outputs[0].type = node.inputs[0].shape, \
                node.inputs[0].type
            carried = True
    return carried
