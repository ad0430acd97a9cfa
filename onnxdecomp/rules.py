"""The explicit per-op rule table for channel coupling and pruning.

Each rule says, for one kind of op, (1) ``couple``: which channels of its inputs and outputs
are the same unit, which it pins, and whether it is a consumer whose weights read channels;
(2) ``prune``: how to slice its parameters once a set of units is removed. An op that reaches
the channel path without a rule stops the analysis with an error naming the node and op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels import ChannelGraph, Consumer, add_activation
from onnxdecomp.errors import UnsupportedOpError
from onnxdecomp.irutil import const_array, new_initializer


@dataclass
class PruneContext:
    """What a rule needs to slice its node: the channel graph and the removed units.

    ``refit(node, w, rows)`` returns consumer weights ``w`` [out, in_columns + 1] (bias as the
    last column) re-solved for the kept input columns ``rows`` (bias column included), or
    just ``w[:, rows]`` when no compensation is wanted.
    """

    graph: ir.Graph
    cg: ChannelGraph
    removed: set[int]
    refit: Callable[[ir.Node, np.ndarray, np.ndarray], np.ndarray]
    _kept: dict[str, np.ndarray] = field(default_factory=dict)

    def kept(self, value: ir.Value) -> np.ndarray | None:
        """Kept channel indices of ``value``, or None when it has no channel space."""
        if not self.cg.has(value):
            return None
        if value.name not in self._kept:
            self._kept[value.name] = self.cg.kept_channels(value, self.removed)
        return self._kept[value.name]

    def changed(self, value: ir.Value) -> bool:
        k = self.kept(value)
        return k is not None and len(k) != self.cg.size[value.name]

    def replace(self, node: ir.Node, index: int, array: np.ndarray) -> None:
        """Give input ``index`` a new initializer (initializers can be shared by nodes)."""
        old = node.inputs[index]
        node.replace_input_with(index, new_initializer(self.graph, old.name, array))


def _fail(node: ir.Node, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"node {node.name!r} ({node.op_type}): {why}")


class Rule:
    """Base rule: outputs with a static channel axis get a space."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        for out in node.outputs:
            add_activation(cg, out)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        raise NotImplementedError

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        """Nothing to slice by default: the op adapts to any channel count."""


class Elementwise(Rule):
    """Unary or n-ary elementwise ops: y[c] = f(x1[c], x2[c], ...).

    An operand whose aligned channel axis has the full size C is the same unit as the output
    (a residual Add ties both branches); a constant of size C there is a per-channel
    parameter and is sliced; an operand of size 1 there is a broadcast and couples nothing
    (Torch-Pruning #510).
    """

    def _aligned(self, node: ir.Node, operand: ir.Value) -> tuple[int | None, int]:
        """(size of the operand on the output's channel axis, that axis in the operand)."""
        out = node.outputs[0]
        if out.shape is None or operand.shape is None:
            raise _fail(node, "operand shapes unknown; run shape inference")
        axis = 1 - (len(out.shape) - len(operand.shape))
        if axis < 0:
            return None, axis
        dim = operand.shape[axis]
        return (dim if isinstance(dim, int) else None), axis

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        out = node.outputs[0]
        if not cg.has(out):
            raise _fail(node, "output channel count unknown")
        c = cg.size[out.name]
        for v in node.inputs:
            if v is None:
                continue
            size, _ = self._aligned(node, v)
            if cg.has(v) and size == c:
                if len(v.shape) != len(out.shape):
                    raise _fail(node, "operand of another rank on the channel axis")
                cg.unify_all(v, out, node)
            elif cg.has(v) and size not in (None, 1):
                raise _fail(node, f"operand {v.name!r} broadcasts {size} channels onto {c}")
            elif not cg.has(v) and const_array(v) is None and size not in (None, 1):
                raise _fail(node, f"operand {v.name!r} is computed, not constant, and per-channel")

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        out = node.outputs[0]
        if not ctx.changed(out):
            return
        keep = ctx.kept(out)
        for i, v in enumerate(node.inputs):
            a = const_array(v)
            if a is None or a.ndim == 0:
                continue
            size, axis = self._aligned(node, v)
            if size == ctx.cg.size[out.name] and size > 1:
                ctx.replace(node, i, np.take(a, keep, axis=axis))


class PerChannelParams(Rule):
    """BatchNormalization / InstanceNormalization: y[c] = a[c] * x[c] + b[c]; params sliced."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        if ctx.changed(node.outputs[0]):
            keep = ctx.kept(node.outputs[0])
            for i in range(1, len(node.inputs)):
                a = const_array(node.inputs[i])
                if a is None:
                    raise _fail(node, "parameters must be constants")
                ctx.replace(node, i, a[keep])


class ChannelPreserving(Rule):
    """Pooling, spatial reductions, spatial pads and resizes: y[c] depends on x[c] only.

    Reductions and pads are checked not to touch axes 0 and 1.
    """

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        op = node.op_type
        if op.startswith("Reduce"):
            axes = node.attributes.get_ints("axes", None)
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                arr = const_array(node.inputs[1])
                if arr is None:
                    raise _fail(node, "reduction axes are not constant")
                axes = arr.tolist()
            if not axes:
                raise _fail(node, "reduces over all axes, channels included")
            rank = len(node.inputs[0].shape)
            if any(a % rank in (0, 1) for a in axes):
                raise _fail(node, f"reduces over the batch or channel axis (axes={list(axes)})")
            if not node.attributes.get_int("keepdims", 1) and 0 in [a % rank for a in axes]:
                raise _fail(node, "drops the batch axis")
        if op == "Pad":
            pads = node.attributes.get_ints("pads", None)
            if pads is None and len(node.inputs) > 1:
                arr = const_array(node.inputs[1])
                pads = None if arr is None else arr.tolist()
            if pads is None or len(node.inputs) > 3 and node.inputs[3] is not None:
                raise _fail(node, "pads must be constant over all axes")
            r = len(pads) // 2
            if pads[1] or pads[r + 1] or pads[0] or pads[r]:
                raise _fail(node, "pads the channel or batch axis")
        if op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1].uses():
            raise _fail(node, "pooling indices are used")
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class Dense(Rule):
    """Conv (groups=1), Gemm and MatMul with constant weights.

    They cut the channel path: input channels are read through weights (a consumer), output
    channels are new units. Pruning slices output rows (and bias) and input columns; when
    input channels were removed, ``ctx.refit`` re-solves the kept columns.
    """

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        op, x = node.op_type, node.inputs[0]
        if const_array(node.inputs[1]) is None:
            raise _fail(node, "weights are computed, not constant")
        if op == "Gemm" and node.attributes.get_int("transA", 0):
            raise _fail(node, "transA=1 is not supported")
        if op == "MatMul" and (x.shape is None or len(x.shape) != 2):
            raise _fail(node, "MatMul over a rank other than 2 has no rule yet")
        if not cg.has(x):
            raise _fail(node, "input channel count unknown")
        kind = "conv" if op == "Conv" else "gemm"
        if kind == "gemm":
            k = cg.size[x.name] * cg.mult[x.name]
            if self.weight(node).shape[1] != k:
                raise _fail(node, "weight and input feature counts differ")
        cg.consumers.append(Consumer(node, x, kind))

    @staticmethod
    def weight(node: ir.Node) -> np.ndarray:
        """Weights as [out, in, kernel...] whatever the op's own layout."""
        w = const_array(node.inputs[1])
        op = node.op_type
        if op == "Gemm":  # Gemm computes alpha * A B + beta * C
            w = w * node.attributes.get_float("alpha", 1.0)
            return w if node.attributes.get_int("transB", 0) else w.T
        if op == "MatMul":
            return w.T
        return w

    @staticmethod
    def bias(node: ir.Node, out: int) -> tuple[np.ndarray, int | None]:
        """(bias as [out], input index of the bias or None when the op has none)."""
        idx = 2 if node.op_type in ("Conv", "Gemm") else None
        if idx is not None and len(node.inputs) > idx and node.inputs[idx] is not None:
            b = const_array(node.inputs[idx])
            if b is None:
                raise _fail(node, "bias is computed, not constant")
            if node.op_type == "Gemm":
                b = np.broadcast_to(b.reshape(-1), (out,)) if b.size in (1, out) else None
                if b is None:
                    raise _fail(node, "Gemm bias is not a [M] or scalar constant")
                b = b * node.attributes.get_float("beta", 1.0)
            return b.astype(np.float64), idx
        return np.zeros(out), idx

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x, y = node.inputs[0], node.outputs[0]
        in_changed, out_changed = ctx.changed(x), ctx.changed(y)
        if not (in_changed or out_changed):
            return
        w = self.weight(node)
        out = w.shape[0]
        b, bidx = self.bias(node, out)
        span = int(np.prod(w.shape[2:])) if w.ndim > 2 else ctx.cg.mult[x.name]
        w2 = np.concatenate([w.reshape(out, -1).astype(np.float64), b[:, None]], axis=1)
        keep_in = ctx.kept(x)
        rows = (keep_in[:, None] * span + np.arange(span)).reshape(-1)
        rows = np.append(rows, w2.shape[1] - 1)
        keep_out = ctx.kept(y) if ctx.cg.has(y) else np.arange(out)
        w2 = w2[keep_out]
        w2 = ctx.refit(node, w2, rows) if in_changed else w2
        dtype = const_array(node.inputs[1]).dtype
        new_w = w2[:, :-1]
        if w.ndim > 2:
            new_w = new_w.reshape((len(keep_out), len(keep_in)) + w.shape[2:])
        ctx.replace(node, 1, self._to_layout(node, new_w).astype(dtype))
        if node.op_type == "Gemm":  # alpha and beta are folded into the new weights and bias
            node.attributes["alpha"] = ir.AttrFloat32("alpha", 1.0)
            node.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
        new_b = w2[:, -1].astype(dtype)
        if bidx is not None and len(node.inputs) > bidx and node.inputs[bidx] is not None:
            ctx.replace(node, bidx, new_b)
        elif np.any(new_b != 0):
            if node.op_type == "MatMul":
                raise _fail(node, "a refit bias needs Gemm; run the normalisation passes")
            node.resize_inputs(3)
            node.replace_input_with(2, new_initializer(ctx.graph, f"{node.name}_bias", new_b))

    @staticmethod
    def _to_layout(node: ir.Node, w: np.ndarray) -> np.ndarray:
        op = node.op_type
        if op == "Gemm":
            return w if node.attributes.get_int("transB", 0) else w.T
        if op == "MatMul":
            return w.T
        return w


class Depthwise(Rule):
    """Conv with group == C_in == C_out: y[c] = w[c] * x[c]; weights, bias and group sliced."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if const_array(node.inputs[1]) is None:
            raise _fail(node, "weights are computed, not constant")
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        if not ctx.changed(node.outputs[0]):
            return
        keep = ctx.kept(node.outputs[0])
        ctx.replace(node, 1, const_array(node.inputs[1])[keep])
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            ctx.replace(node, 2, const_array(node.inputs[2])[keep])
        node.attributes["group"] = ir.AttrInt64("group", len(keep))


class Pinning(Rule):
    """Ops that mix channels in ways no slice can follow (grouped conv, LRN, softmax over
    channels) or that have no refit yet (ConvTranspose): their input and output channels are
    pinned and never pruned."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        for v in list(node.inputs) + list(node.outputs):
            cg.pin(v)


class FlattenRule(Rule):
    """Flatten(axis=1) of [N, C, d...]: feature f belongs to channel f // s, s = prod(d)."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if node.attributes.get_int("axis", 1) != 1:
            raise _fail(node, "only axis=1 keeps the batch axis apart")
        if not cg.has(x) or x.shape is None:
            raise _fail(node, "input channel count unknown")
        spatial = 1
        for d in list(x.shape)[2:]:
            if not isinstance(d, int):
                raise _fail(node, "spatial size unknown")
            spatial *= d
        cg.add_space(y, cg.size[x.name], cg.mult[x.name] * spatial)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)


def _map_offsets(cg: ChannelGraph, whole: ir.Value, parts, node: ir.Node) -> None:
    """Channel c of the i-th part is channel off_i + c of ``whole`` (parts in order)."""
    off = 0
    for part in parts:
        if not cg.has(part):
            raise _fail(node, f"{part.name!r} has no static channel count")
        for c in range(cg.size[part.name]):
            cg.unify(part, c, whole, off + c)
        off += cg.size[part.name]


class ConcatRule(Rule):
    """Concat on axis 1: output channel off_i + c is input i's channel c. On another axis
    every input has the output's channels."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        y = node.outputs[0]
        axis = node.attributes.get_int("axis", 1) % len(y.shape)
        if axis != 1:
            for v in node.inputs:
                cg.unify_all(v, y, node)
            return
        _map_offsets(cg, y, node.inputs, node)


class SplitRule(Rule):
    """Split on axis 1: output j's channel c is input channel off_j + c; sizes patched."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        axis = node.attributes.get_int("axis", 0) % len(x.shape)
        if axis != 1:
            for out in node.outputs:
                cg.unify_all(x, out, node)
            return
        _map_offsets(cg, x, node.outputs, node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x = node.inputs[0]
        if node.attributes.get_int("axis", 0) % len(x.shape) != 1 or not ctx.changed(x):
            return
        sizes = np.array([len(ctx.kept(o)) for o in node.outputs], dtype=np.int64)
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            ctx.replace(node, 1, sizes)
        elif "split" in node.attributes:
            node.attributes["split"] = ir.AttrInt64s("split", sizes.tolist())
        elif len(set(sizes.tolist())) != 1:
            raise _fail(node, "equal split cannot express unequal kept counts")


class SliceRule(Rule):
    """Slice with constant starts/ends/steps: channel c of the output is channel start + c
    of the input when axis 1 is sliced with step 1; bounds patched to kept counts."""

    def _params(self, node: ir.Node) -> tuple[np.ndarray, ...]:
        arrays = [const_array(v) if v is not None else None for v in node.inputs[1:5]]
        if any(a is None for a in arrays[:2]):
            raise _fail(node, "starts/ends must be constants")
        rank = len(node.inputs[0].shape)
        starts, ends = arrays[0], arrays[1]
        axes = arrays[2] if len(arrays) > 2 and arrays[2] is not None else np.arange(len(starts))
        steps = arrays[3] if len(arrays) > 3 and arrays[3] is not None else np.ones_like(starts)
        return starts, ends, axes % rank, steps

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        starts, ends, axes, steps = self._params(node)
        if 0 in axes.tolist():
            raise _fail(node, "slices the batch axis")
        if 1 not in axes.tolist():
            cg.unify_all(x, y, node)
            return
        i = axes.tolist().index(1)
        if steps[i] != 1:
            raise _fail(node, "a strided slice of channels has no rule")
        start = int(np.clip(starts[i] if starts[i] >= 0 else starts[i] + cg.size[x.name], 0,
                            cg.size[x.name]))
        for c in range(cg.size[y.name]):
            cg.unify(x, start + c, y, c)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x = node.inputs[0]
        starts, ends, axes, _ = self._params(node)
        if 1 not in axes.tolist() or not ctx.changed(x):
            return
        i = axes.tolist().index(1)
        c = ctx.cg.size[x.name]
        start = int(np.clip(starts[i] if starts[i] >= 0 else starts[i] + c, 0, c))
        stop = int(np.clip(ends[i] if ends[i] >= 0 else ends[i] + c, 0, c))
        kept = ctx.kept(x)
        new_start = int(np.sum(kept < start))
        new_stop = new_start + int(np.sum((kept >= start) & (kept < stop)))
        starts, ends = starts.copy(), ends.copy()
        starts[i], ends[i] = new_start, new_stop
        ctx.replace(node, 1, starts)
        ctx.replace(node, 2, ends)


class AxesPreserving(Rule):
    """Squeeze/Unsqueeze/Transpose that leave axes 0 and 1 where they are."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        op = node.op_type
        if op == "Transpose":
            perm = node.attributes.get_ints("perm", None)
            if perm is None or list(perm[:2]) != [0, 1]:
                raise _fail(node, "moves the channel axis")
        else:
            axes = node.attributes.get_ints("axes", None)
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                arr = const_array(node.inputs[1])
                axes = None if arr is None else arr.tolist()
            rank = len(node.outputs[0].shape if op == "Unsqueeze" else node.inputs[0].shape)
            if axes is None or any(a % rank in (0, 1) for a in axes):
                raise _fail(node, "touches the batch or channel axis")
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class ShapeOnly(Rule):
    """Shape/Size read only the dimensions, which follow the pruned tensor by themselves."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        """Their outputs are integer vectors, not activations."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        """No coupling."""


_UNARY = (
    "Relu LeakyRelu Sigmoid Tanh Clip Elu Selu Celu HardSigmoid HardSwish Softplus Softsign "
    "Gelu Mish Abs Neg Exp Log Sqrt Reciprocal Erf Cast Identity Dropout Floor Ceil Round "
    "Sign Sin Cos ThresholdedRelu Swish"
).split()
_BINARY = "Add Sub Mul Div Max Min Pow Sum Mean PRelu Where".split()

_TABLE: dict[str, Rule] = {}
_TABLE.update(dict.fromkeys(_UNARY + _BINARY, Elementwise()))
_TABLE.update(dict.fromkeys(["BatchNormalization", "InstanceNormalization"], PerChannelParams()))
_TABLE.update(dict.fromkeys(
    "MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool Pad Resize "
    "Upsample ReduceMean ReduceMax ReduceMin ReduceSum ReduceL1 ReduceL2 ReduceLogSumExp "
    "ReduceProd ReduceSumSquare".split(), ChannelPreserving()))
_TABLE.update(dict.fromkeys(["Gemm", "MatMul"], Dense()))
_TABLE.update(dict.fromkeys(["LRN", "Softmax", "LogSoftmax", "Hardmax"], Pinning()))
_TABLE.update(dict.fromkeys(["Squeeze", "Unsqueeze", "Transpose"], AxesPreserving()))
_TABLE.update(dict.fromkeys(["Shape", "Size"], ShapeOnly()))
_TABLE["Flatten"] = FlattenRule()
_TABLE["Concat"] = ConcatRule()
_TABLE["Split"] = SplitRule()
_TABLE["Slice"] = SliceRule()

_DENSE, _DEPTHWISE, _PINNING = Dense(), Depthwise(), Pinning()


def rule_for(node: ir.Node) -> Rule:
    """The rule of ``node``; raises UnsupportedOpError when there is none."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        raise _fail(node, f"custom-domain op ({node.domain}) has no channel rule")
    if op == "ConvTranspose":
        # Its input patches are not the forward conv's windows, so the profiled Gram (and the
        # refit) would be wrong: keep its channels until it has a rule of its own.
        return _PINNING
    if op == "Conv":
        group = node.attributes.get_int("group", 1)
        if group == 1:
            return _DENSE
        w = const_array(node.inputs[1])
        cin = node.inputs[0].shape[1] if node.inputs[0].shape is not None else None
        if w is not None and group == cin == w.shape[0] and w.shape[1] == 1:
            return _DEPTHWISE
        return _PINNING
    if op in ("Softmax", "LogSoftmax", "Hardmax"):
        axis = node.attributes.get_int("axis", -1)
        rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else 0
        return _PINNING if rank and axis % rank == 1 else _TABLE["Relu"]
    rule = _TABLE.get(op)
    if rule is None:
        raise _fail(node, "no channel-coupling rule for this op; nothing was written")
    return rule
