"""PruneChannelsPass: physically remove channel units from every tensor they flow through."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph
from onnxdecomp.channels.rules import PruneContext, rule_for


def plain_slice(node: ir.Node, w: np.ndarray, rows: np.ndarray,
                key: str | None = None) -> np.ndarray:
    """No compensation: keep the surviving input columns as they are."""
    return w[:, rows]


class PruneChannelsPass(ir.passes.InPlacePass):
    """Slice weights, biases, per-channel parameters and channel-size constants so that the
    units in ``removed`` disappear from every tensor.

    Requires: the model is the normalised model ``cg`` was built on (or a copy of it:
    values and nodes are matched by name); ``removed`` holds only unpinned units.
    Ensures: every op's parameters agree with the kept channel counts; consumers whose
    inputs lost channels have weights from ``refit`` (plain slicing by default). Stale
    intermediate shapes remain: run shape inference afterwards.
    """

    def __init__(
        self,
        cg: ChannelGraph,
        removed: set[int],
        refit: Callable[..., np.ndarray] = plain_slice,
    ) -> None:
        super().__init__()
        self.cg, self.removed, self.refit = cg, removed, refit

    def requires(self, model: ir.Model) -> None:
        pinned = self.cg.pinned_roots()
        if self.removed & pinned:
            raise ir.passes.PreconditionError("asked to remove pinned channels")

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if not self.removed:
            return ir.passes.PassResult(model, False)
        ctx = PruneContext(model.graph, self.cg, self.removed, self.refit)
        for node in list(model.graph):
            if any(self.cg.has(v) for v in [*node.inputs, *node.outputs]):
                rule_for(node).prune(node, ctx)
        return ir.passes.PassResult(model, True)
