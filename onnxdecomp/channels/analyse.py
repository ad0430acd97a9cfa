"""Channel-group analysis: run every node's rule over the channel graph."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules import is_origin, rule_for


def analyse(model: ir.Model) -> ChannelGraph:
    """Build the channel graph of a normalised model (shapes inferred).

    Graph inputs and outputs are pinned; integer inputs (token ids) are indices, not
    channels, and get no space; an input read only through one Transpose (channels-last
    images, [N, H, W, C] -> [N, C, H, W]) has its channels on the axis that becomes 1.
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
        if not any(cg.has(v) for v in node.inputs) and not is_origin(node):
            continue  # shape arithmetic on constants, untouched by pruning
        rule = rule_for(node)
        rule.declare(node, cg)
        rule.couple(node, cg)
    for value in graph.outputs:
        cg.pin(value, "the graph output")
    return cg


def _input_channel_axis(value: ir.Value) -> int:
    """Axis 1, or the axis that every reader's Transpose moves to axis 1 unless that is the
    batch axis (a sequence [N, T, F] read as [T, N, F])."""
    perms = {tuple(use.node.attributes.get_ints("perm", ()) or ()) if use.node.op_type ==
             "Transpose" else None for use in value.uses()}
    if len(perms) != 1:
        return 1
    perm = perms.pop()
    return perm[1] if perm is not None and len(perm) > 1 and perm[1] != 0 else 1
