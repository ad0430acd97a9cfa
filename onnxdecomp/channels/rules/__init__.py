"""The channel rules by op family (``elementwise``, ``dense``, ``layout``, ``recurrent``)
and the table that picks one per node (``table``)."""

from onnxdecomp.channels.rules.base import Pinning, PruneContext, Rule
from onnxdecomp.channels.rules.table import TABLE, is_origin, rule_for

__all__ = ["TABLE", "Pinning", "PruneContext", "Rule", "is_origin", "rule_for"]
