"""Rules for the ops that cut the channel path with weights: Conv, Gemm, MatMul, the
depthwise Conv that keeps channels apart and the grouped Conv that keeps its groups."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, Consumer, add_activation
from onnxdecomp.channels.rules.attention import HeadMatMul
from onnxdecomp.channels.rules.base import Pinning, PruneContext, Rule
from onnxdecomp.channels.weights import bias_add, dense_bias, dense_weight, to_op_layout
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array, fresh_name, input_batch_dim, new_initializer


def _is_sequence(node: ir.Node) -> bool:
    """A MatMul over the last axis of a rank-3 sequence ([N, T, F] or [T, N, F]) or of a
    channels-last map ([N, H, W, F]: ConvNeXt's pointwise layers), whose positions are the
    steps."""
    x = node.inputs[0]
    return node.op_type == "MatMul" and x.shape is not None and len(x.shape) >= 3


def _batch_axis(node: ir.Node) -> int:
    """Which of the two leading axes of a sequence MatMul's input holds the samples: the one
    whose dimension is the graph input's batch dimension, else the one dimension of the two
    that is not a fixed number (a fixed-length sequence with a dynamic batch)."""
    x = node.inputs[0]
    if len(x.shape) > 3:
        return 0  # a map [N, H, W, F]: the samples come first
    lead = list(x.shape)[:2]
    batch = input_batch_dim(node.graph)
    same = [a for a, d in enumerate(lead) if batch is not None and d == batch]
    if len(same) == 1:
        return same[0]
    free = [a for a, d in enumerate(lead) if not isinstance(d, int)]
    if len(free) == 1:
        return free[0]
    raise node_error(node, f"cannot tell which axis of {x.name!r} {[str(d) for d in lead]} "
                     "holds the samples: export with a named dynamic batch axis")


class Dense(Rule):
    """Conv (groups=1), Gemm and MatMul with constant weights.

    They cut the channel path: input channels are read through weights (a consumer), output
    channels are new units. Pruning slices output rows (and bias) and input columns; when
    input channels were removed, ``ctx.refit`` re-solves the kept columns. A MatMul over the
    last axis of a rank-3 sequence (a tagger's per-step head, a projection) or of a
    channels-last map is a "seq" consumer (the map's positions its steps); its bias is the
    constant of the Add that follows it (``weights.bias_add``).
    """

    def origin(self, node: ir.Node) -> bool:
        """Visited even when its input has no channel space (the output of a region the
        channel rules do not follow, such as attention): its outputs are new units."""
        x = node.inputs[0]
        return const_array(node.inputs[1]) is not None and x.dtype is not None and \
            x.dtype.is_floating_point()

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        if not cg.has(x) and x.shape is not None:
            # Channels nobody upstream can remove: a pinned space, so that it is a consumer
            want = len(x.shape) - 1 if _is_sequence(node) else 1
            add_activation(cg, x, (want,))
            cg.pin(x)
        elif not cg.has(x) and node.op_type == "Gemm":
            # A Gemm's input is [N, F] by the op's definition: F from its weight (the output
            # of a loop whose shapes inference cannot give), pinned as above
            w = const_array(node.inputs[1])
            trans_b = node.attributes.get_int("transB", 0)
            if w is not None and w.ndim == 2:
                cg.add_space(x, int(w.shape[1 if trans_b else 0]))
                cg.pin(x)
        if _is_sequence(node):
            add_activation(cg, node.outputs[0], (len(node.inputs[0].shape) - 1,))
        else:
            super().declare(node, cg)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        op, x = node.op_type, node.inputs[0]
        if const_array(node.inputs[1]) is None:
            raise node_error(node, "weights are computed, not constant")
        if op == "Gemm" and node.attributes.get_int("transA", 0):
            raise node_error(node, "transA=1 is not supported")
        sequence = _is_sequence(node)
        if op == "MatMul" and not sequence and (x.shape is None or len(x.shape) != 2):
            raise node_error(node, "MatMul of an input of unknown rank has no rule")
        if not cg.has(x):
            raise node_error(node, "input channel count unknown")
        want = (len(x.shape) - 1,) if sequence else (1,)
        if cg.axes[x.name] != want:
            raise node_error(node, f"reads channels on axes {list(cg.axes[x.name])}, not on "
                             f"the axis {want[0]} its weights read")
        if op == "MatMul" and const_array(node.inputs[1]).ndim != 2:
            raise node_error(node, "a batched (rank > 2) MatMul weight has no rule")
        kind = "conv" if op == "Conv" else "seq" if sequence else "gemm"
        if kind != "conv":
            k = cg.size[x.name] * cg.mult[x.name]
            if dense_weight(node).shape[1] != k:
                raise node_error(node, "weight and input feature counts differ")
        batch = _batch_axis(node) if sequence else 0
        cg.consumers.append(Consumer(node, x, kind, batch=batch))

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x, y = node.inputs[0], node.outputs[0]
        in_changed, out_changed = ctx.changed(x), ctx.changed(y)
        if not (in_changed or out_changed):
            return
        w = dense_weight(node)
        out = w.shape[0]
        b, bidx = dense_bias(node, out)
        after = bias_add(node)  # before the weights change: it checks their shape
        span = int(np.prod(w.shape[2:])) if w.ndim > 2 else ctx.cg.mult[x.name]
        w2 = np.concatenate([w.reshape(out, -1).astype(np.float64), b[:, None]], axis=1)
        keep_in = ctx.kept(x)
        rows = (keep_in[:, None] * span + np.arange(span)).reshape(-1)
        rows = np.append(rows, w2.shape[1] - 1)
        keep_out = ctx.kept(y) if ctx.cg.has(y) else np.arange(out)
        w2 = self._solve(node, ctx, w2, rows, keep_out, in_changed)
        dtype = const_array(node.inputs[1]).dtype
        new_w = w2[:, :-1]
        if w.ndim > 2:
            new_w = new_w.reshape((len(keep_out), new_w.shape[1] // span) + w.shape[2:])
        ctx.replace(node, 1, to_op_layout(node, new_w).astype(dtype))
        if node.op_type == "Gemm":  # alpha and beta are folded into the new weights and bias
            node.attributes["alpha"] = ir.AttrFloat32("alpha", 1.0)
            node.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
        new_b = w2[:, -1].astype(dtype)
        if bidx is not None and len(node.inputs) > bidx and node.inputs[bidx] is not None:
            ctx.replace(node, bidx, new_b)
        elif after is not None:
            # The Add's own rule slices the kept channels out of the full-size bias after us.
            add, index = after
            full = np.broadcast_to(const_array(add.inputs[index]).reshape(-1), (out,)).copy()
            full[keep_out] = new_b
            ctx.replace(add, index, full.astype(dtype))
        elif np.any(new_b != 0):
            if node.op_type == "MatMul":
                _append_bias(ctx.graph, node, new_b)
                return
            node.resize_inputs(3)
            node.replace_input_with(2, new_initializer(ctx.graph, f"{node.name}_bias", new_b))


    def _solve(self, node: ir.Node, ctx: PruneContext, w2: np.ndarray, rows: np.ndarray,
               keep_out: np.ndarray, in_changed: bool) -> np.ndarray:
        """The kept output rows of [W | b] over the kept columns ``rows`` (bias last), re-solved
        when input channels went."""
        return ctx.refit(node, w2[keep_out], rows) if in_changed else w2[keep_out]


def _append_bias(graph: ir.Graph, node: ir.Node, bias: np.ndarray) -> None:
    """Add ``bias`` after a MatMul that had none (a bias-free dense layer over a sequence:
    no Gemm holds one); the Add's output takes over the MatMul output's uses and name."""
    y = node.outputs[0]
    uses = list(y.uses())
    add = ir.node("Add", [y, new_initializer(graph, f"{node.name}_bias", bias)],
                  name=f"{node.name}_bias_add")
    graph.insert_after(node, add)
    out = add.outputs[0]
    for use in uses:
        use.node.replace_input_with(use.idx, out)
    if y.is_graph_output():
        graph.outputs[graph.outputs.index(y)] = out
    name = y.name
    y.name = fresh_name(graph, f"{name}_unbiased")
    out.name = name


class Depthwise(Rule):
    """Conv with group == C_in == C_out: y[c] = w[c] * x[c]; weights, bias and group sliced."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if const_array(node.inputs[1]) is None:
            raise node_error(node, "weights are computed, not constant")
        if cg.axis(node.inputs[0], node) != 1:
            raise node_error(node, "input channels are not on axis 1")
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        if not ctx.changed(node.outputs[0]):
            return
        keep = ctx.kept(node.outputs[0])
        ctx.replace(node, 1, const_array(node.inputs[1])[keep])
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            ctx.replace(node, 2, const_array(node.inputs[2])[keep])
        node.attributes["group"] = ir.AttrInt64("group", len(keep))


class GroupedConv(Dense):
    """Conv with 1 < group < C_in (ResNeXt, AlexNet's two towers): output channel o of
    group g reads the input channels of group g only. The i-th channel of every group is
    one unit, on the input side and on the output side, so a module keeps the same count
    in every group and stays one grouped conv. It is a consumer like a dense conv whose
    weight is the block-diagonal one (``weights.dense_weight``), pruned as one; each
    group's rows are re-solved on its own kept columns."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        super().couple(node, cg)
        group = node.attributes.get_int("group", 1)
        for v in (node.inputs[0], node.outputs[0]):
            if not cg.has(v) or cg.size[v.name] % group:
                raise node_error(node, f"{v.name!r} does not split into {group} groups")
            per = cg.size[v.name] // group
            for c in range(per, cg.size[v.name]):
                cg.unify(v, c, v, c % per)

    def _solve(self, node: ir.Node, ctx: PruneContext, w2: np.ndarray, rows: np.ndarray,
               keep_out: np.ndarray, in_changed: bool) -> np.ndarray:
        """Group by group: the group's kept output rows over its own kept columns."""
        group = node.attributes.get_int("group", 1)
        cols, bias = rows[:-1], rows[-1:]
        per_col, per_out = (w2.shape[1] - 1) // group, w2.shape[0] // group
        parts = []
        for g in range(group):
            g_rows = np.concatenate([cols[cols // per_col == g], bias])
            part = w2[keep_out[keep_out // per_out == g]]
            parts.append(ctx.refit(node, part, g_rows) if in_changed else part[:, g_rows])
        return np.concatenate(parts)


class ConvRule(Rule):
    """Conv by its grouping: dense (group 1), depthwise (group == C_in == C_out, one input
    channel per group) or grouped (the i-th channel of every group one unit)."""

    def resolve(self, node: ir.Node) -> Rule:
        group = node.attributes.get_int("group", 1)
        if group == 1:
            return DENSE
        w = const_array(node.inputs[1])
        cin = node.inputs[0].shape[1] if node.inputs[0].shape is not None else None
        if w is not None and group == cin == w.shape[0] and w.shape[1] == 1:
            return DEPTHWISE
        return GROUPED


class MatMulRule(Rule):
    """MatMul by its second operand: constant weights make it dense; two activations are
    attention's scores and context, pruned by whole heads where the operands hold heads
    (``attention.HeadMatMul``), else pinned."""

    def resolve(self, node: ir.Node) -> Rule:
        return DENSE if const_array(node.inputs[1]) is not None else HEAD_MATMUL


DENSE, DEPTHWISE, GROUPED, PINNING = Dense(), Depthwise(), GroupedConv(), Pinning()
HEAD_MATMUL = HeadMatMul()
RULES: dict[str, Rule] = {
    "Conv": ConvRule(),
    "Gemm": DENSE,
    "MatMul": MatMulRule(),
    # Its input patches are not the forward conv's windows, so the profiled Gram (and the
    # refit) would be wrong: keep its channels until it has a rule of its own.
    "ConvTranspose": PINNING,
}
