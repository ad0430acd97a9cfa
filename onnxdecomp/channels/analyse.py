"""Channel-group analysis: run every node's rule over the channel graph."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules import is_origin, rule_for


def analyse(model: ir.Model) -> ChannelGraph:
    """Build the channel graph of a normalised model (shapes inferred).

    Graph inputs and outputs are pinned; integer inputs (token ids) are indices, not
    channels, and get no space. A node is visited when one of its inputs has channels or
    when its rule makes channels from none (an embedding lookup, a recurrent layer).
    Raises UnsupportedOpError naming the node and op when an op on the channel path has no
    rule: nothing is guessed.
    """
    cg = ChannelGraph()
    graph = model.graph
    for value in graph.inputs:
        if value.dtype is not None and value.dtype.is_integer():
            continue
        add_activation(cg, value)
        cg.pin(value)
    for node in graph:
        if not any(cg.has(v) for v in node.inputs) and not is_origin(node):
            continue  # shape arithmetic on constants, untouched by pruning
        rule = rule_for(node)
        rule.declare(node, cg)
        rule.couple(node, cg)
    for value in graph.outputs:
        cg.pin(value)
    return cg
