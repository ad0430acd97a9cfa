"""Sequential refit: re-solve consumers in topological order against the module's own inputs.

The parallel least-squares refit fits each consumer to the parent's outputs from the
parent's inputs; in a deep module the inputs of a late layer have drifted because every
layer before it was pruned too. Here consumer i is re-solved only once every consumer
before it is final: the module built so far runs on calibration samples, and at the same
sampled positions G' = sum w x~' x~'^T and C = sum w x~' x~^T (x~' the module's input,
x~ the parent's, w the sample's class weight) give W' = (G' + lambda I)^-1 C W^T, which
reproduces the parent's outputs from what the module really sees (He et al. 2017).

A consumer whose output goes straight into a residual Add, y + r, is solved for the Add's
output instead: the target is y + (r - r'), r' the module's own other operand, so the layer
also absorbs the drift the shortcut carries (He et al. 2017, multi-branch networks);
otherwise the drift of the residual stream adds up block after block:
W' = (G' + lambda I)^-1 (C W^T + sum w x~' (r - r')^T).

Every solve needs the module's activations at the next layer's input. A layer's input that
only solved layers feed is final once it is probed; later probes start from such values
(the graph cut there, ``irutil.cut_at``) instead of from the image, so each runs only the
layers since the last cut: a chain of L layers costs O(L) layer runs instead of O(L^2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.channels import ChannelGraph
from onnxdecomp.decompose.columns import consumer_columns, output_rows
from onnxdecomp.irutil import RNN_GATES, cut_at, only_outputs, with_outputs
from onnxdecomp.passes import NameRecurrentOutputsPass
from onnxdecomp.runtime import Runner


class SequentialRefit:
    """Parent activations on calibration samples, cached once for every module; ``solve``
    builds one module with its consumers solved one after another."""

    def __init__(self, parent_proto: onnx.ModelProto, cg: ChannelGraph, x: np.ndarray,
                 positions: int, seed: int, ridge: float, device: str = "auto") -> None:
        self.cg, self.positions, self.seed, self.ridge, self.device = (
            cg, positions, seed, ridge, device)
        self.partner = {c.key: p for c in cg.consumers if c.kind in ("conv", "gemm")
                        and (p := _residual_partner(c.node.outputs[0])) is not None}
        self.names = sorted({c.value.name for c in cg.consumers} | set(self.partner.values()))
        logits = ir.serde.deserialize_model(parent_proto).graph.outputs[0].name
        self.axes = {c.value.name: c.batch_axis for c in cg.consumers}
        runner = Runner(with_outputs(parent_proto, [logits, *self.names]), device=device,
                        probe=True)
        outs = runner.run(x, batch_axes=self.axes)
        self.x = x
        # Probes start from final activations (cut_at) unless the batch is fixed: a cut
        # subgraph is fed whole batches of them.
        self.cut = runner.input.fixed_batch is None
        self.parent_act = dict(zip(self.names, outs[1:]))
        self.pred = outs[0].argmax(axis=1)

    def solve(self, removed: set[int], class_weight: np.ndarray,
              build: Callable[[Callable], onnx.ModelProto], fallback) -> onnx.ModelProto:
        """The module of ``build(refit)`` with every consumer whose input lost channels
        re-solved in order; samples weigh ``class_weight[parent's class] / its share``.
        ``fallback`` (the parallel refit) serves the consumers not solved yet."""
        share = np.bincount(self.pred, minlength=len(class_weight)) / len(self.pred)
        weight = np.where(share > 0, class_weight / np.maximum(share, 1e-12), 0.0)[self.pred]
        solved: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

        def refit(node: ir.Node, w: np.ndarray, rows: np.ndarray,
                  key: str | None = None) -> np.ndarray:
            st = solved.get(key or node.name)
            if st is None or st[0].shape[0] != len(rows):
                return fallback(node, w, rows, key)
            g, c, drift = st
            lam = self.ridge * float(np.trace(g)) / len(rows)
            rhs = c @ w.T if drift is None else c @ w.T + drift
            return np.linalg.solve(g + lam * np.eye(len(rows)), rhs).T

        proto = build(refit)
        final: dict[str, np.ndarray] = {}  # module activations no later solve changes
        for i, cons in enumerate(self.cg.consumers):
            roots = self.cg.input_roots(cons)
            if not any(r in removed for r in roots) or cons.value.name not in self.parent_act:
                continue  # a layer that keeps all its inputs sees no drift from pruning here
            partner = self.partner.get(cons.key)
            wanted = [cons.value.name] + ([partner] if partner else [])
            outs = self._probe(proto, wanted, final)
            act = outs[0]
            if any(v is cons.value for v in cons.node.inputs):
                # Only consumers before this one, all final now, feed its input; a state
                # reader's value is its own node's output, which its solve changes.
                final[cons.value.name] = act
            rng = np.random.default_rng((self.seed, i))
            parent_act = self.parent_act[cons.value.name]
            full, reps = consumer_columns(cons, parent_act, self.positions, rng)
            rng = np.random.default_rng((self.seed, i))
            kept, _ = consumer_columns(cons, act, self.positions, rng)
            kw = kept * np.repeat(weight, reps).astype(np.float32)[:, None]
            drift = None
            if partner:
                y = cons.node.outputs[0]
                parent_r = self.parent_act[partner]
                if self.cg.has(y):
                    parent_r = parent_r[:, [c for c, r in enumerate(self.cg.roots(y))
                                            if r not in removed]]
                delta = parent_r - outs[-1]
                rng = np.random.default_rng((self.seed, i))
                rows = output_rows(cons, parent_act.shape, delta, self.positions, rng)
                drift = (kw.T @ rows.astype(np.float32)).astype(np.float64)
            solved[cons.key] = ((kw.T @ kept).astype(np.float64),
                                      (kw.T @ full).astype(np.float64), drift)
            proto = build(refit)
        return proto

    def _probe(self, proto: onnx.ModelProto, wanted: list[str],
               final: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The module's ``wanted`` values on the calibration samples, computed from the
        ``final`` activations where a path meets one (the graph cut there: each probe then
        runs only the layers since the last one), else from the input."""
        if all(name in final for name in wanted):  # a layer reading what another one read
            return [final[name] for name in wanted]
        named = _named_states(proto)
        if final and self.cut:
            try:
                sub, bounds = cut_at(named, wanted, set(final))
            except ValueError:  # a graph the cut cannot bound (a subgraph reading outer values)
                pass
            else:
                feeds = {name: final[name] if name in final else self.x for name in bounds}
                return Runner(sub, device=self.device, probe=True).run_feeds(
                    feeds, wanted, self.axes)
        return Runner(only_outputs(named, wanted), device=self.device, probe=True).run(
            self.x, outputs=wanted, batch_axes=self.axes)


def _named_states(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The module with its recurrent ops' Y named again (finalising unnamed it, unused), by
    the rule that named the parent's: the probe asks for it by that name."""
    if not any(n.op_type in RNN_GATES for n in proto.graph.node):
        return proto
    model = ir.serde.deserialize_model(proto)
    NameRecurrentOutputsPass()(model)
    return ir.serde.serialize_model(model)


def _residual_partner(y: ir.Value) -> str | None:
    """The other operand of the Add that ``y`` feeds alone, or None."""
    uses = list(y.uses())
    if len(uses) != 1:
        return None
    node = uses[0].node
    if node.op_type != "Add" or len(node.inputs) != 2:
        return None
    other = node.inputs[1] if node.inputs[0] is y else node.inputs[0]
    if other is None or other is y or other.const_value is not None or other.shape is None:
        return None
    if y.shape is None or list(other.shape) != list(y.shape):
        return None  # a broadcast operand is a bias, not a shortcut
    return other.name
