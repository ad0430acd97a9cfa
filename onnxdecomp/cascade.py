"""Cascade refit: re-solve every consumer against the pruned module's own activations.

The parallel least-squares refit fits each consumer to the parent's outputs from the
parent's inputs; in a module the inputs of a deep layer have drifted because the layers
before it were pruned too. One more streaming pass runs parent and module side by side on
calibration samples and accumulates, at the same sampled positions,
G' = sum w x~' x~'^T and C = sum w x~' x~^T (x~' from the module, x~ from the parent, w the
class weight of the sample); then W' = (G' + lambda I)^-1 C W^T reproduces the parent's
outputs from what the module really sees (He et al. 2017 reconstruct the same way).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.channels import ChannelGraph
from onnxdecomp.profile import consumer_columns
from onnxdecomp.runtime import Runner


def _with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    have = {o.name for o in proto.graph.output}
    for name in names:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    return proto


def cascade_statistics(
    parent_proto: onnx.ModelProto,
    module_proto: onnx.ModelProto,
    cg: ChannelGraph,
    x: np.ndarray,
    class_weight: np.ndarray,
    positions: int,
    seed: int,
    device: str = "auto",
    batch_size: int = 100,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per consumer node: (G' [D'+1, D'+1], C [D'+1, D+1]) over ``x``.

    ``class_weight[c]`` weighs samples the parent assigns to class c (it should already be
    divided by how common the class is).
    """
    consumers = cg.consumers
    names = sorted({c.value.name for c in consumers})
    logits = ir.serde.deserialize_model(parent_proto).graph.outputs[0].name
    parent = Runner(_with_outputs(parent_proto, names), device=device)
    module = Runner(_with_outputs(module_proto, names), device=device)
    stats: dict[str, list[np.ndarray]] = {}
    p_names = [logits] + names
    for b, ((start, stop, p_out), (_, _, m_out)) in enumerate(zip(
            parent.iter_batches(x, batch_size, p_names),
            module.iter_batches(x, batch_size, names))):
        pred = p_out[0].argmax(axis=1)
        p_act, m_act = dict(zip(names, p_out[1:])), dict(zip(names, m_out))
        for i, cons in enumerate(consumers):
            rng = np.random.default_rng((seed, b, i))
            full, reps, _ = consumer_columns(cons, p_act[cons.value.name], cg, positions, rng)
            rng = np.random.default_rng((seed, b, i))
            kept, _, _ = consumer_columns(cons, m_act[cons.value.name], cg, positions, rng)
            w = np.repeat(class_weight[pred], reps).astype(np.float32)[:, None]
            kw = kept * w
            g, c = kw.T @ kept, kw.T @ full
            if cons.node.name in stats:
                stats[cons.node.name][0] += g
                stats[cons.node.name][1] += c
            else:
                stats[cons.node.name] = [g.astype(np.float64), c.astype(np.float64)]
        del start, stop
    return {name: (g, c) for name, (g, c) in stats.items()}


def make_cascade_refit(stats: dict[str, tuple[np.ndarray, np.ndarray]], ridge: float,
                       fallback):
    """A refit callback that uses the cascade statistics where it has them."""

    def refit(node: ir.Node, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if node.name not in stats:
            return fallback(node, w, rows)
        g, c = stats[node.name]
        if g.shape[0] != len(rows):
            return fallback(node, w, rows)
        lam = ridge * float(np.trace(g)) / len(rows)
        return np.linalg.solve(g + lam * np.eye(len(rows)), c @ w.T).T

    return refit
