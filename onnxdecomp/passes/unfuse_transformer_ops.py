"""UnfuseTransformerOpsPass: the ops of ONNX Runtime's transformer optimiser
(``onnxruntime.transformers.optimizer``) as the standard ops they fuse."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import NodeSteps, const_array, input_at, replace_outputs

_MS = "com.microsoft"
FUSED = ("Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "FastGelu")


def is_transformer_fused(node: ir.Node, opset: int) -> bool:
    """Whether the pass writes ``node`` as standard ops: one of ``FUSED``, or ONNX Runtime's
    LayerNormalization in the default domain of an opset before 17 (which has none)."""
    if node.domain == _MS:
        return node.op_type in FUSED
    return node.op_type == "LayerNormalization" and node.domain in ("", "ai.onnx") and \
        opset < 17


class UnfuseTransformerOpsPass(ir.passes.InPlacePass):
    """Write com.microsoft Attention, SkipLayerNormalization, EmbedLayerNormalization and
    FastGelu (and a LayerNormalization before opset 17) as standard ops.

    The math, per op (``LN`` is layer normalisation over the last axis):
    - SkipLayerNormalization: ``s = input + skip (+ bias)``, ``output = LN(s) * gamma
      (+ beta)``; its last output is ``s``.
    - EmbedLayerNormalization: ``output = LN(word[ids] + position[position_ids or 0..S-1]
      (+ segment[segment_ids])) * gamma + beta``; ``mask_index`` = the tokens per row of
      ``mask`` (a sum).
    - Attention (``num_heads`` H, no past state, not unidirectional): ``q, k, v`` = the
      thirds (or ``qkv_hidden_sizes``) of ``input @ weights (+ bias)``, each split into H
      heads; per head ``softmax(q k^T * scale + m) v`` with ``scale`` 1/sqrt(head size) by
      default and ``m`` ``mask_filter_value`` (-10000) on the keys a 2-D 0/1 mask [N, S]
      hides or past a 1-D row length [N]; the heads joined again.
    - FastGelu: ``x (+ bias)``, then ``0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3)))``.

    The channel rules know the standard ops (attention stays whole: its heads are not
    pruned), the MACs are counted on them, and the modules run anywhere (ONNX Runtime's
    optimiser fuses them again).

    Requires: opset 11 or later (earlier models keep their ops, and the channel analysis
    names them). Ensures: the ops above are gone but forms the rewrite does not cover (past
    state, causal masks, attention biases, other mask layouts, statistics outputs that are
    read), which stay as they are.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        if opset < 11:
            return ir.passes.PassResult(model, False)
        graph, modified = model.graph, False
        for node in list(graph):
            if not is_transformer_fused(node, opset):
                continue
            steps = OpsetSteps(graph, node, opset)
            results = _REWRITES[node.op_type](steps, node)
            if results is None:
                continue
            graph.insert_before(node, steps.nodes)
            replace_outputs(graph, node, results + [None] * (len(node.outputs) - len(results)))
            modified = True
        return ir.passes.PassResult(model, modified)


class OpsetSteps(NodeSteps):
    """NodeSteps with the ops whose axes moved from attributes to inputs (opset 13, 18)."""

    def __init__(self, graph: ir.Graph, node: ir.Node, opset: int) -> None:
        super().__init__(graph, node)
        self.opset = opset

    def ints(self, tag: str, values) -> ir.Value:
        return self.const(tag, values, np.int64)

    def unsqueeze(self, x: ir.Value, axes: list[int]) -> ir.Value:
        if self.opset < 13:
            return self.op("Unsqueeze", x, axes=axes)
        return self.op("Unsqueeze", x, self.ints(f"axes{len(self.nodes)}", axes))

    def reduce(self, kind: str, x: ir.Value, axes: list[int], keepdims: int) -> ir.Value:
        as_input = self.opset >= (13 if kind == "ReduceSum" else 18)
        if not as_input:
            return self.op(kind, x, axes=axes, keepdims=keepdims)
        return self.op(kind, x, self.ints(f"axes{len(self.nodes)}", axes), keepdims=keepdims)

    def split(self, x: ir.Value, sizes: list[int]) -> tuple[ir.Value, ...]:
        """``x`` cut along its last axis into parts of ``sizes``."""
        inputs = [x] if self.opset < 13 else [x, self.ints("sizes", sizes)]
        attrs = [ir.AttrInt64("axis", -1)] + (
            [ir.AttrInt64s("split", sizes)] if self.opset < 13 else [])
        node = ir.Node("", "Split", inputs, attrs, num_outputs=len(sizes),
                       name=f"{self.name}_{len(self.nodes)}")
        for i, out in enumerate(node.outputs):
            out.name = f"{node.name}_{i}"
        self.nodes.append(node)
        return tuple(node.outputs)


def _used(value: ir.Value) -> bool:
    return bool(value.uses()) or value.is_graph_output()


def _layer_norm(s: OpsetSteps, x: ir.Value, gamma: ir.Value, beta: ir.Value | None,
                eps: float) -> ir.Value:
    """``LN(x) * gamma (+ beta)`` over the last axis (LayerNormalization from opset 17)."""
    if s.opset >= 17:
        args = [x, gamma] + ([beta] if beta is not None else [])
        return s.op("LayerNormalization", *args, axis=-1, epsilon=eps)
    centred = s.op("Sub", x, s.reduce("ReduceMean", x, [-1], 1))
    var = s.reduce("ReduceMean", s.op("Mul", centred, centred), [-1], 1)
    y = s.op("Div", centred, s.op("Sqrt", s.op("Add", var, s.const("eps", eps))))
    y = s.op("Mul", y, gamma)
    return y if beta is None else s.op("Add", y, beta)


def _eps(node: ir.Node) -> float:
    return node.attributes.get_float("epsilon", 1e-12 if node.domain == _MS else 1e-5)


def _skip_layer_norm(s: OpsetSteps, node: ir.Node) -> list | None:
    if any(_used(o) for o in node.outputs[1:3]):
        return None  # the mean and inverse deviation are read: no standard op gives them
    x = s.op("Add", node.inputs[0], node.inputs[1])
    if input_at(node, 4) is not None:
        x = s.op("Add", x, node.inputs[4])
    y = _layer_norm(s, x, node.inputs[2], input_at(node, 3), _eps(node))
    return [y, None, None, x][:len(node.outputs)]


def _layer_norm_node(s: OpsetSteps, node: ir.Node) -> list | None:
    axis = node.attributes.get_int("axis", -1)
    shape = node.inputs[0].shape
    if any(_used(o) for o in node.outputs[1:]) or (
            axis != -1 and (shape is None or axis != len(shape) - 1)):
        return None
    return [_layer_norm(s, node.inputs[0], node.inputs[1], input_at(node, 2), _eps(node))]


def _embed_layer_norm(s: OpsetSteps, node: ir.Node) -> list | None:
    ids, segments, words, positions = (input_at(node, i) for i in range(4))
    table, gamma, beta = input_at(node, 4), node.inputs[5], node.inputs[6]
    mask, position_ids = input_at(node, 7), input_at(node, 8)
    mask_read = len(node.outputs) > 1 and _used(node.outputs[1])
    if (mask_read and mask is None) or any(_used(o) for o in node.outputs[2:]):
        return None
    x = s.op("Gather", words, ids)
    if position_ids is None:  # positions 0..S-1: the first S rows of the table
        steps = s.op("Shape", ids)
        end = s.op("Slice", steps, s.ints("from", [1]), s.ints("to", [2]))
        rows = s.op("Slice", positions, s.ints("zero", [0]), end, s.ints("rows", [0]))
        x = s.op("Add", x, rows)
    else:
        x = s.op("Add", x, s.op("Gather", positions, position_ids))
    if segments is not None and table is not None:
        x = s.op("Add", x, s.op("Gather", table, segments))
    outs: list[ir.Value | None] = [_layer_norm(s, x, gamma, beta, _eps(node))]
    if mask_read:
        count = s.reduce("ReduceSum", s.op("Cast", mask, to=ir.DataType.INT64), [1], 0)
        outs.append(s.op("Cast", count, to=ir.DataType.INT32))
    return outs


def _attention(s: OpsetSteps, node: ir.Node) -> list | None:
    a = node.attributes
    heads = a.get_int("num_heads", 0)
    weights = const_array(node.inputs[1])
    if (heads <= 0 or a.get_int("unidirectional", 0) or weights is None or weights.ndim != 2
            or any(input_at(node, i) is not None for i in range(4, len(node.inputs)))
            or any(_used(o) for o in node.outputs[1:])):
        return None  # past state, attention biases, causal masks: not rewritten
    sizes = list(a.get_ints("qkv_hidden_sizes", ()) or ()) or [weights.shape[1] // 3] * 3
    if sum(sizes) != weights.shape[1] or sizes[0] != sizes[1] or sizes[0] % heads or \
            sizes[2] % heads:
        return None
    mask = input_at(node, 3)
    mask_rank = _rank(mask) if mask is not None else None
    if mask is not None and mask_rank not in (1, 2):
        return None
    qkv = s.op("MatMul", node.inputs[0], node.inputs[1])
    if input_at(node, 2) is not None:
        qkv = s.op("Add", qkv, node.inputs[2])
    q, k, v = s.split(qkv, sizes)
    d = sizes[0] // heads

    def heads_of(x: ir.Value, size: int, perm: list[int]) -> ir.Value:
        shaped = s.op("Reshape", x, s.ints(f"heads{len(s.nodes)}", [0, 0, heads, size]))
        return s.op("Transpose", shaped, perm=perm)

    scores = s.op("MatMul", heads_of(q, d, [0, 2, 1, 3]), heads_of(k, d, [0, 2, 3, 1]))
    scale = a.get_float("scale", 0.0) or 1.0 / np.sqrt(d)
    scores = s.op("Mul", scores, s.const("scale", scale))
    if mask is not None:
        scores = s.op("Add", scores, _mask_bias(s, node, mask, mask_rank))
    probs = s.op("Softmax", scores, axis=3)
    context = s.op("MatMul", probs, heads_of(v, sizes[2] // heads, [0, 2, 1, 3]))
    joined = s.op("Transpose", context, perm=[0, 2, 1, 3])
    return [s.op("Reshape", joined, s.ints("joined", [0, 0, sizes[2]]))]


def _rank(value: ir.Value, depth: int = 8) -> int | None:
    """The rank of ``value``: its shape's, else followed back through the ops the
    optimiser puts before a mask (Casts, a sum over axes, EmbedLayerNormalization's or its
    rewrite's row lengths)."""
    if value.shape is not None:
        return len(value.shape)
    node = value.producer()
    if node is None or depth == 0:
        return None
    if node.op_type == "EmbedLayerNormalization" and value is node.outputs[1]:
        return 1
    if node.op_type == "Cast":
        return _rank(node.inputs[0], depth - 1)
    if node.op_type == "ReduceSum" and not node.attributes.get_int("keepdims", 1):
        axes = const_array(input_at(node, 1))
        axes = node.attributes.get_ints("axes", None) if axes is None else axes.tolist()
        inner = _rank(node.inputs[0], depth - 1)
        return None if inner is None or axes is None else inner - len(axes)
    return None


def _mask_bias(s: OpsetSteps, node: ir.Node, mask: ir.Value, rank: int) -> ir.Value:
    """[N, 1, 1, S]: 0 on the keys attended, ``mask_filter_value`` on the others."""
    fill = node.attributes.get_float("mask_filter_value", -10000.0)
    if rank == 2:  # 0/1 per key
        hidden = s.op("Sub", s.const("one", 1.0), s.as_float(mask))
        bias = s.op("Mul", hidden, s.const("fill", fill))
    else:  # a row's length: the keys from it on are hidden
        steps = s.op("Gather", s.op("Shape", node.inputs[0]), s.ints("seq_axis", 1))
        keys = s.op("Range", s.ints("start", 0), steps, s.ints("delta", 1))
        lengths = s.unsqueeze(s.op("Cast", mask, to=ir.DataType.INT64), [1])
        bias = s.op("Where", s.op("Less", keys, lengths), s.const("zero", 0.0),
                    s.const("fill", fill))
    return s.unsqueeze(bias, [1, 2])


def _fast_gelu(s: OpsetSteps, node: ir.Node) -> list:
    x = node.inputs[0]
    if input_at(node, 1) is not None:
        x = s.op("Add", x, node.inputs[1])
    cube = s.op("Mul", x, s.op("Mul", x, x))
    inner = s.op("Mul", s.op("Add", x, s.op("Mul", cube, s.const("c", 0.044715))),
                 s.const("k", 0.7978845608028654))
    half = s.op("Mul", x, s.const("half", 0.5))
    return [s.op("Mul", half, s.op("Add", s.const("one", 1.0), s.op("Tanh", inner)))]


_REWRITES = {"Attention": _attention, "SkipLayerNormalization": _skip_layer_norm,
             "EmbedLayerNormalization": _embed_layer_norm, "FastGelu": _fast_gelu,
             "LayerNormalization": _layer_norm_node}
