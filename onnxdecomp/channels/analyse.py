"""Channel-group analysis: run every node's rule over the channel graph."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules import is_origin, rule_for
from onnxdecomp.irutil import axes_operand, const_array


def analyse(model: ir.Model) -> ChannelGraph:
    """Build the channel graph of a normalised model (shapes inferred).

    Graph inputs and outputs are pinned, and so are the values a Loop's, Scan's or If's body
    reads from the graph (not its inputs: the op's rule never sees them); integer inputs
    (token ids) are indices, not channels, and get no space; a float input has its channels
    where its reader puts them (``_input_channel_axis``: channels-last images through a
    Transpose, a sequence's features, Keras' Conv1D and one-channel images).
    A node is visited when one of its inputs has channels or when its rule makes channels
    from none (an embedding lookup, a recurrent layer).
    Raises UnsupportedOpError naming the node and op when an op on the channel path has no
    rule: nothing is guessed.
    """
    cg = ChannelGraph()
    graph = model.graph
    for value in graph.inputs:
        if value.dtype is not None and value.dtype.is_integer():
            continue
        add_activation(cg, value, (_input_channel_axis(value),))
        cg.pin(value, "the graph input")
    for node in graph:
        captured = _captured(node)
        if not any(cg.has(v) for v in [*node.inputs, *captured]) and not is_origin(node):
            continue  # shape arithmetic on constants, untouched by pruning
        for v in captured:  # what a loop's or branch's body reads, pruning cannot follow
            cg.pin(v, node)
        rule = rule_for(node)
        rule.declare(node, cg)
        rule.couple(node, cg)
    for value in graph.outputs:
        cg.pin(value, "the graph output")
    return cg


def _readers(value: ir.Value) -> list:
    """The uses of ``value`` that read its elements (a Shape or Size reads only its dims)."""
    return [u for u in value.uses() if u.node.op_type not in ("Shape", "Size")]


def _input_channel_axis(value: ir.Value) -> int:
    """Where a graph input's channels are, from what its only reader does with it, seen
    through a rescaling by constants (Keras' Rescaling layer, a quantisation) and one
    Unsqueeze: the last
    axis when it is one of size 1 that a Reshape moves to axis 1 ([N, H, W, 1] ->
    [N, 1, H, W]) or when a MatMul reads it ([N, T, F] into a dense layer over every step:
    the features F its weights read), the features F of a sequence [N, T, F] read as
    [T, N, F], the axis a Transpose moves to axis 1; else axis 1."""
    uses = _readers(value)
    while len(uses) == 1 and uses[0].node.op_type in _SCALING and all(
            v is value or const_array(v) is not None for v in uses[0].node.inputs):
        value = uses[0].node.outputs[0]
        uses = _readers(value)
    if len(uses) == 1 and uses[0].node.op_type == "Reshape" and _last_one_to_front(
            value, uses[0].node):
        return len(value.shape) - 1
    if len(uses) == 1 and uses[0].node.op_type == "MatMul" and uses[0].idx == 0 and \
            value.shape is not None and len(value.shape) > 2:
        return len(value.shape) - 1
    if len(uses) == 1 and uses[0].node.op_type == "Unsqueeze":
        inserted = axes_operand(uses[0].node)
        if inserted is not None and value.shape is not None:
            rank = len(value.shape) + len(inserted)
            inserted = sorted(a % rank for a in inserted)
            kept = [a for a in range(rank) if a not in inserted]  # input axis i is kept[i]
            axis = _input_channel_axis(uses[0].node.outputs[0])
            return kept.index(axis) if axis in kept else 1
    perms = {tuple(use.node.attributes.get_ints("perm", ()) or ()) if use.node.op_type ==
             "Transpose" else None for use in uses}
    if len(perms) != 1:
        return 1
    perm = perms.pop()
    if perm is not None and len(perm) == 3 and perm[:2] == (1, 0):  # [N, T, F] as [T, N, F]
        return 2  # the features: what an RNN or a per-step dense layer reads
    return perm[1] if perm is not None and len(perm) > 1 and perm[1] != 0 else 1


# Elementwise by constants: what reads the input after them says where its channels are
# (a quantised TFLite model's input goes through QuantizeLinear before its Transpose).
_SCALING = ("Mul", "Add", "Sub", "Div", "Cast", "Identity", "QuantizeLinear",
            "DequantizeLinear")


def _last_one_to_front(value: ir.Value, reshape: ir.Node) -> bool:
    """Whether the Reshape moves a last axis of size 1 to axis 1 ([N, H, W, 1] ->
    [N, 1, H, W]: tf2onnx's transpose of a one-channel image into NCHW)."""
    target = const_array(reshape.inputs[1])
    shape = value.shape
    if target is None or shape is None or len(target) != len(shape) or shape[-1] != 1:
        return False
    dims = [int(d) if isinstance(d, int) else None for d in shape]
    return target.tolist()[1] == 1 and target.tolist()[2:] == dims[1:-1]


def _captured(node: ir.Node) -> list[ir.Value]:
    """Values of the enclosing graph that ``node``'s subgraphs (at any depth) read."""
    out: dict[str, ir.Value] = {}

    def visit(sub: ir.Graph) -> None:
        inner = {v.name for v in [*sub.inputs, *sub.initializers.values()]}
        for n in ir.traversal.RecursiveGraphIterator(sub):
            inner.update(o.name for o in n.outputs)
        for n in ir.traversal.RecursiveGraphIterator(sub):
            for v in n.inputs:
                if v is not None and v.name not in inner and v.const_value is None:
                    out.setdefault(v.name, v)

    for attr in node.attributes.values():
        if isinstance(attr.value, ir.Graph):
            visit(attr.value)
        elif isinstance(attr.value, (list, tuple)):
            for g in attr.value:
                if isinstance(g, ir.Graph):
                    visit(g)
    return list(out.values())
