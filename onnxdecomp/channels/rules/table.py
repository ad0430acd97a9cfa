"""The explicit per-op rule table for channel coupling and pruning.

Each rule says, for one kind of op, (1) ``couple``: which channels of its inputs and outputs
are the same unit, which it pins, and whether it is a consumer whose weights read channels;
(2) ``prune``: how to slice its parameters once a set of units is removed. The table is the
union of each op family's ``RULES``; an op that reaches the channel path without a rule
stops the analysis with an error naming the node and op.
"""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.channels.rules import (
    broadcast,
    dense,
    elementwise,
    groups,
    indexing,
    layout,
    recurrent,
    reshape,
    space,
)
from onnxdecomp.channels.rules.base import Pinning, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import is_default_domain

TABLE: dict[str, Rule] = {
    **elementwise.RULES, **dense.RULES, **layout.RULES, **reshape.RULES, **recurrent.RULES,
    **broadcast.RULES, **space.RULES, **groups.RULES, **indexing.RULES,
    # A body computes anything from what it reads: everything around it is pinned (what its
    # body reads from the graph too, ``analyse``).
    **dict.fromkeys(["Loop", "Scan", "If"], Pinning())}


def rule_for(node: ir.Node) -> Rule:
    """The rule of ``node``; raises UnsupportedOpError when there is none."""
    if node.domain == "com.microsoft.nchwc":  # ORT_ENABLE_ALL's blocked layout, saved
        raise node_error(node, "ONNX Runtime's blocked (NCHWc) layout op, which a model "
                         "optimised at its ALL level holds, has no channel rule: give the "
                         "model as exported, or as saved at the EXTENDED level")
    if not is_default_domain(node.domain):
        raise node_error(node, f"custom-domain op ({node.domain}) has no channel rule")
    rule = TABLE.get(node.op_type)
    if rule is None:
        raise node_error(node, "no channel-coupling rule for this op; nothing was written")
    return rule.resolve(node)


def is_origin(node: ir.Node) -> bool:
    """Whether the node's rule makes channels from inputs that have none."""
    rule = TABLE.get(node.op_type) if is_default_domain(node.domain) else None
    return rule is not None and rule.resolve(node).origin(node)
