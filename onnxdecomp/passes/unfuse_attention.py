"""UnfuseAttentionPass: ONNX's own Attention op (opset 23 on, what torch's dynamo exporter
writes for ``F.scaled_dot_product_attention`` there) as the standard ops it stands for."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import input_at, replace_outputs
from onnxdecomp.passes.unfuse_transformer_ops import OpsetSteps


class UnfuseAttentionPass(ir.passes.InPlacePass):
    """Write ``Attention`` (default domain) as MatMuls, a Softmax and the masks.

    The math: ``Y = softmax(Q K^T * scale + bias) V`` per head, ``scale`` the attribute or
    1/sqrt(head size); ``bias`` is the float ``attn_mask`` as given, a boolean one as 0
    where it is true and -inf where false, plus with ``is_causal`` -inf on the keys after
    each query (key j hidden from query i when j > i + kv_len - q_len, the spec's
    bottom-right alignment). Q, K, V are [N, H, S, d], or [N, S, H * d] with ``q_num_heads``
    and ``kv_num_heads`` (split into heads and joined again).

    The channel rules then see a BERT-style attention: heads split on their own axis, the
    score and context MatMuls per head, so heads are units (``channels.rules.attention``),
    and the MACs are counted on the MatMuls.

    Requires: nothing. Ensures: Attention nodes are gone except the forms the rewrite does
    not cover, which stay as they are (the channel analysis names them): past keys and
    values, grouped-query attention (fewer key/value heads), ``softcap``, padding lengths
    (``nonpad_kv_seqlen``), read ``present_*`` or ``qk_matmul_output`` outputs, head sizes
    the shapes do not give.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        graph, modified = model.graph, False
        for node in list(graph):
            if node.op_type != "Attention" or node.domain not in ("", "ai.onnx"):
                continue
            steps = OpsetSteps(graph, node, opset)
            result = _attention(steps, node)
            if result is None:
                continue
            graph.insert_before(node, steps.nodes)
            replace_outputs(graph, node, [result] + [None] * (len(node.outputs) - 1))
            modified = True
        return ir.passes.PassResult(model, modified)


def _dim(value: ir.Value, axis: int) -> int | None:
    shape = value.shape
    if shape is None or not -len(shape) <= axis < len(shape):
        return None
    d = shape[axis]
    return d if isinstance(d, int) else None


def _attention(s: OpsetSteps, node: ir.Node) -> ir.Value | None:
    q, k, v = node.inputs[0], node.inputs[1], node.inputs[2]
    mask = input_at(node, 3)
    a = node.attributes
    if (any(input_at(node, i) is not None for i in range(4, len(node.inputs)))
            or any(o.uses() or o.is_graph_output() for o in node.outputs[1:])
            or a.get_float("softcap", 0.0) or q.shape is None or k.shape is None):
        return None
    rank = len(q.shape)
    if rank == 3:
        heads, kv_heads = a.get_int("q_num_heads", 0), a.get_int("kv_num_heads", 0)
        hidden, v_hidden = _dim(q, 2), _dim(v, 2)
        if heads <= 0 or heads != kv_heads or hidden is None or v_hidden is None or \
                hidden % heads or v_hidden % heads:
            return None
        d = hidden // heads

        def split(x: ir.Value, size: int, perm: list[int]) -> ir.Value:
            shaped = s.op("Reshape", x, s.ints(f"heads{len(s.nodes)}", [0, 0, heads, size]))
            return s.op("Transpose", shaped, perm=perm)

        qh, kt, vh = split(q, d, [0, 2, 1, 3]), split(k, d, [0, 2, 3, 1]), \
            split(v, v_hidden // heads, [0, 2, 1, 3])
    elif rank == 4:
        d = _dim(q, 3)
        if d is None or _dim(q, 1) is None or _dim(q, 1) != _dim(k, 1):
            return None  # grouped-query attention repeats key heads: not written out
        qh, kt, vh = q, s.op("Transpose", k, perm=[0, 1, 3, 2]), v
    else:
        return None
    scale = a.get_float("scale", 0.0) or 1.0 / np.sqrt(d)
    scores = s.op("Mul", s.op("MatMul", qh, kt), s.const("scale", scale))
    if mask is not None:
        scores = s.op("Add", scores, _bias(s, mask))
    if a.get_int("is_causal", 0):
        scores = s.op("Add", scores, _causal(s, scores))
    y = s.op("MatMul", s.op("Softmax", scores, axis=-1), vh)
    if rank == 4:
        return y
    joined = s.op("Transpose", y, perm=[0, 2, 1, 3])
    return s.op("Reshape", joined, s.ints("joined", [0, 0, v_hidden]))


def _bias(s: OpsetSteps, mask: ir.Value) -> ir.Value:
    """A float mask as it is; a boolean one 0 where true, -inf where false."""
    if mask.dtype != ir.DataType.BOOL:
        return mask
    return s.op("Where", mask, s.const("attend", 0.0), s.const("hide", -np.inf))


def _causal(s: OpsetSteps, scores: ir.Value) -> ir.Value:
    """[Sq, Skv]: -inf on key j for query i where j > i + Skv - Sq, 0 elsewhere."""
    shape = s.op("Shape", scores)
    sq = s.op("Gather", shape, s.ints("q_axis", 2))
    skv = s.op("Gather", shape, s.ints("kv_axis", 3))
    rows = s.op("Range", s.ints("zero", 0), sq, s.ints("one", 1))
    cols = s.op("Range", s.ints("zero_kv", 0), skv, s.ints("one_kv", 1))
    last = s.op("Add", rows, s.op("Sub", skv, sq))  # the last key query i may see
    hidden = s.op("Greater", s.unsqueeze(cols, [0]), s.unsqueeze(last, [1]))
    return s.op("Where", hidden, s.const("hide", -np.inf), s.const("attend", 0.0))
