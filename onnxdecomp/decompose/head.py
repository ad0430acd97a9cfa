"""A module's head: the log-odds of its class against the rest, as a pass and as math.

s_k = z_k - log sum_{j != k} exp z_j is log(p_k / (1 - p_k)) under the parent's softmax, so
the scores of different modules are on one scale and argmax over them is argmax over z.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import axes_node, leading_dims, new_initializer

SCORE = "score"


class AppendLogOddsPass(ir.passes.InPlacePass):
    """Replace the logits output z [N, K] by ``score`` [N, 1] = z_k - log sum_{j != k} e^{z_j}
    (a tagger's z [N, T, K] by [N, T, 1], the same at every step, over the last axis).

    That is log(p_k / (1 - p_k)) under the parent's softmax: scores of different modules
    are on one scale, and argmax over them equals argmax over the logits.

    Requires: one graph output of shape [N, K] or [N, T, K] holding logits (normalised
    model).
    Ensures: one graph output named ``score`` of shape [N, 1] or [N, T, 1], same dtype as the
    logits.
    """

    def __init__(self, class_index: int, num_classes: int) -> None:
        super().__init__()
        if not 0 <= class_index < num_classes:
            raise ValueError(f"class {class_index} outside 0..{num_classes - 1}")
        self.k, self.num_classes = class_index, num_classes

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        z = graph.outputs[0]
        for value in [*graph.inputs, *(o for n in graph for o in n.outputs)]:
            if value.name == SCORE:  # the parent's own "score" would clash with ours
                value.name = f"{SCORE}_parent"
        opset = model.opset_imports.get("", 17)
        rest = np.array([j for j in range(self.num_classes) if j != self.k], dtype=np.int64)
        own = new_initializer(graph, "onnxdecomp_class", np.array([self.k], dtype=np.int64))
        others = new_initializer(graph, "onnxdecomp_rest", rest)
        lead = leading_dims(z)
        axis = len(lead)
        zk = ir.node("Gather", [z, own], attributes={"axis": axis}, name="onnxdecomp_own")
        zr = ir.node("Gather", [z, others], attributes={"axis": axis}, name="onnxdecomp_others")
        lse = axes_node(graph, "ReduceLogSumExp", zr.outputs[0], [axis], opset,
                        "onnxdecomp_lse", axes_name="onnxdecomp_axes", keepdims=1)
        score = ir.node("Sub", [zk.outputs[0], lse.outputs[0]], name="onnxdecomp_score")
        for n in (zk, zr, lse, score):
            graph.append(n)
        out = score.outputs[0]
        out.name = SCORE
        out.dtype = z.dtype
        out.shape = ir.Shape([*lead, 1])
        graph.outputs[0] = out
        return ir.passes.PassResult(model, True)


def logodds_from_logits(z: np.ndarray) -> np.ndarray:
    """s_k = z_k - log sum_{j != k} exp z_j for every class k (stable)."""
    z = z.astype(np.float64)
    k = z.shape[1]
    s = np.empty_like(z)
    for c in range(k):
        rest = np.delete(z, c, axis=1)
        m = rest.max(axis=1, keepdims=True)
        s[:, c] = z[:, c] - (m[:, 0] + np.log(np.exp(rest - m).sum(axis=1)))
    return s


def head_sensitivity(z: np.ndarray) -> np.ndarray:
    """[K, K] sum over samples of |d s_k / d z_j|: 1 for j = k, -softmax_{-k}(z)_j otherwise."""
    z = z.astype(np.float64)
    k = z.shape[1]
    out = np.zeros((k, k))
    for c in range(k):
        rest = z.copy()
        rest[:, c] = -np.inf
        q = np.exp(rest - rest.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        out[c] = q.sum(axis=0)
        out[c, c] = len(z)
    return out
