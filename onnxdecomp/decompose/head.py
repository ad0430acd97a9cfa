"""A module's head: the log-odds of its class against the rest, as a pass and as math.

s_k = z_k - log sum_{j != k} exp z_j is log(p_k / (1 - p_k)) under the parent's softmax, so
the scores of different modules are on one scale and argmax over them is argmax over z.
"""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.weights import dense_bias, dense_weight, set_dense_gemm
from onnxdecomp.irutil import axes_node, leading_dims, new_initializer
from onnxdecomp.passes.mark_quantized_weights import QUANTIZED_WEIGHTS
from onnxdecomp.passes.rewrite_dynamic_quantization import DYNAMIC_QUANTIZED

SCORE = "score"


class AppendLogOddsPass(ir.passes.InPlacePass):
    """Replace the logits output z [N, K] by ``score`` [N, 1] = z_k - log sum_{j != k} e^{z_j}
    (a tagger's z [N, T, K] by [N, T, 1], the same at every step, over the last axis).

    That is log(p_k / (1 - p_k)) under the parent's softmax: scores of different modules
    are on one scale, and argmax over them equals argmax over the logits.

    With two classes s_k = z_k - z_j: where a Gemm with constant float weights makes the
    logits (and nothing else reads them), its two rows become one, w_k - w_j and b_k - b_j,
    so a binary classifier's module is no bigger than its parent (whose one logit
    ``ExpandBinaryLogitPass`` spread over two rows).

    Requires: one graph output of shape [N, K] or [N, T, K] holding logits (normalised
    model).
    Ensures: one graph output named ``score`` of shape [N, 1] or [N, T, 1], same dtype as the
    logits (float32 for float16 or bfloat16 logits: computed in float16, the log-odds of a
    float16 model were 2-3 float16 steps off its parent's).
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
        if self.num_classes == 2 and _fold_two_classes(model, z, self.k):
            return ir.passes.PassResult(model, True)
        opset = model.opset_imports.get("", 17)
        rest = np.array([j for j in range(self.num_classes) if j != self.k], dtype=np.int64)
        own = new_initializer(graph, "onnxdecomp_class", np.array([self.k], dtype=np.int64))
        others = new_initializer(graph, "onnxdecomp_rest", rest)
        lead = leading_dims(z)
        axis = len(lead)
        if z.dtype in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
            # in float32: a float16 model's log-odds were 2-3 float16 steps off (0.02)
            cast = ir.node("Cast", [z], attributes={"to": ir.DataType.FLOAT},
                           name="onnxdecomp_logits_float")
            graph.append(cast)
            z = cast.outputs[0]
            z.dtype, z.shape = ir.DataType.FLOAT, graph.outputs[0].shape
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


def _fold_two_classes(model: ir.Model, z: ir.Value, k: int) -> bool:
    """Make the Gemm that writes the two logits ``z`` write s_k = z_k - z_j, one row; False
    where it is not such a Gemm, or its weights are the parent's integers (their requantised
    difference would not be the parent's)."""
    node = z.producer()
    if node is None or node.op_type != "Gemm" or z.uses() or \
            node.attributes.get_int("transA", 0) or node.inputs[1].const_value is None:
        return False
    w = dense_weight(node)  # [2, F], alpha applied
    if w.shape[0] != 2 or w.dtype.kind != "f" or any(
            node.name in json.loads(model.metadata_props.get(key, "{}"))
            for key in (QUANTIZED_WEIGHTS, DYNAMIC_QUANTIZED)):
        return False
    b, _ = dense_bias(node, 2)
    graph, j = model.graph, 1 - k
    row = (w[k].astype(np.float64) - w[j])[None, :].astype(w.dtype)
    set_dense_gemm(graph, node, row, np.array([b[k] - b[j]], dtype=w.dtype), "logodds")
    z.name = SCORE
    z.shape = ir.Shape([z.shape[0] if z.shape is not None else None, 1])
    return True


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
