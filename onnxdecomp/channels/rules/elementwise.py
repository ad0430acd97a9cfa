"""Rules for ops that keep channels apart: elementwise ops, per-channel affine ops,
pooling and spatial reductions, and softmax (pinned over the channel axis)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation, add_like
from onnxdecomp.channels.rules.base import Pinning, PruneContext, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import axes_operand, const_array, softmax_axes


def _like_input(node: ir.Node, cg: ChannelGraph) -> None:
    """Outputs take the channel axes of the first input of their rank that has channels
    (axis 1 when none has: the base rule)."""
    out = node.outputs[0]
    src = next((v for v in node.inputs if cg.has(v) and v.shape is not None
                and out.shape is not None and len(v.shape) == len(out.shape)), None)
    if src is None:
        Rule.declare(Rule(), node, cg)
    else:
        add_like(cg, out, src)


class Elementwise(Rule):
    """Unary or n-ary elementwise ops: y[c] = f(x1[c], x2[c], ...).

    An operand whose aligned channel axis has the full size C is the same unit as the output
    (a residual Add ties both branches; one of lower rank aligns from the right, as
    broadcasting does: positions [T, C] added to tokens [N, T, C]); a constant of size C
    there is a per-channel parameter and is sliced; an operand of size 1 there (or
    expanded from size 1: its Expand then says 1 there) is a broadcast and couples nothing
    (Torch-Pruning #510). The channel axis is the output's (axis 1, or the last axis of a
    recurrent layer's units); an output with channels on two axes takes operands of its
    own shape and constants that broadcast over both. An operand whose channels lie on
    those axes and more (a selective kernel's attention [N, P, C, 1, 1] on its stacked paths
    [N, P, C, H, W], channels C) ties each of its channels to the one it meets.
    """

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        _like_input(node, cg)

    def _aligned(self, node: ir.Node, operand: ir.Value, axis: int) -> tuple[int | None, int]:
        """(size of the operand on the output's channel ``axis``, that axis in the
        operand)."""
        out = node.outputs[0]
        if out.shape is None or operand.shape is None:
            raise node_error(node, "operand shapes unknown; run shape inference")
        axis = axis - (len(out.shape) - len(operand.shape))
        if axis < 0:
            return None, axis
        dim = operand.shape[axis]
        return (dim if isinstance(dim, int) else None), axis

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        out = node.outputs[0]
        if not cg.has(out):
            raise node_error(node, "output channel count unknown")
        if len(cg.axes[out.name]) > 1:
            self._couple_multi_axis(node, cg)
            return
        # A map flattened into features: channel c owns ``mult`` of the axis' c * mult.
        mult = cg.mult[out.name]
        c, axis = cg.size[out.name] * mult, cg.axis(out, node)
        for v in node.inputs:
            if v is None:
                continue
            size, in_axis = self._aligned(node, v, axis)
            if cg.has(v) and size == c and cg.mult[v.name] != mult:
                raise node_error(node, f"operand {v.name!r} groups its {c} features into "
                                 "channels otherwise than the output")
            if cg.has(v) and size == c and len(cg.axes[v.name]) > 1:
                cg.unify_projected(v, out, len(v.shape) - len(out.shape), node)
            elif cg.has(v) and size == c:
                # A lower rank broadcasts from the right ([T, C] positions onto [N, T, C]).
                if len(v.shape) != len(out.shape) and cg.axes[v.name] != (in_axis,):
                    raise node_error(node, "operand of another rank on the channel axis")
                cg.unify_all(v, out, node)
            elif cg.has(v) and size not in (None, 1):
                raise node_error(node, f"operand {v.name!r} broadcasts {size} channels onto {c}")
            elif not cg.has(v) and const_array(v) is None and size not in (None, 1) and \
                    not _expanded_from_one(v, in_axis):
                # Computed per channel where no rule followed (attention's output): its
                # channels cannot be sliced, so neither can the others'.
                PINNING.couple(node, cg)
                return

    def _couple_multi_axis(self, node: ir.Node, cg: ChannelGraph) -> None:
        out = node.outputs[0]
        for v in node.inputs:
            if v is None:
                continue
            sizes = [self._aligned(node, v, a)[0] for a in cg.axes[out.name]]
            shift = len(out.shape) - len(v.shape)
            if cg.has(v) and cg.axes[v.name] == cg.axes[out.name]:
                cg.unify_all(v, out, node)
            elif cg.has(v) and {a + shift for a in cg.axes[v.name]} < set(cg.axes[out.name]):
                cg.unify_projected(out, v, shift, node)
            elif any(d not in (None, 1) for d in sizes):
                raise node_error(node, f"operand {v.name!r} is per-channel over the "
                                 "directions and units of a recurrent output; no rule")

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        out = node.outputs[0]
        if not ctx.changed(out):
            return
        if len(ctx.cg.axes[out.name]) > 1:
            return  # its constants broadcast over the channel axes (``couple`` checked)
        keep = ctx.kept_features(out)  # a per-feature constant of a flattened map: its own
        axis, full = ctx.cg.axes[out.name][0], ctx.cg.size[out.name] * ctx.cg.mult[out.name]
        for i, v in enumerate(node.inputs):
            a = const_array(v)
            if a is None and v is not None and not ctx.cg.has(v):
                _unexpand(v, self._aligned(node, v, axis)[1], ctx)
            if a is None or a.ndim == 0:
                continue
            size, in_axis = self._aligned(node, v, axis)
            if size == full and size > 1:
                ctx.replace(node, i, np.take(a, keep, axis=in_axis))


def _expand_behind(value: ir.Value) -> ir.Node | None:
    """The Expand that makes ``value``, through the Casts, Nots and Identities after it (the
    mask cast to bool or float), or None."""
    node = value.producer()
    while node is not None and node.op_type in ("Cast", "Not", "Identity"):
        node = node.inputs[0].producer()
    return node if node is not None and node.op_type == "Expand" else None


def _expanded_from_one(value: ir.Value, axis: int) -> bool:
    """Whether ``value`` is an Expand of a tensor of size 1 on ``axis`` (DistilBERT's
    ``mask.expand_as(scores)``): the same along that axis, a broadcast that couples no
    channel."""
    node = _expand_behind(value)
    if node is None or node.inputs[0].shape is None or value.shape is None:
        return False
    src = axis - (len(value.shape) - len(node.inputs[0].shape))
    return src < 0 or node.inputs[0].shape[src] == 1


def _unexpand(value: ir.Value, axis: int, ctx: PruneContext) -> None:
    """An operand expanded from size 1 over the channel ``axis`` (``_expanded_from_one``)
    is left at 1 there, its Expand target patched: it broadcasts onto the kept channels."""
    if not _expanded_from_one(value, axis):
        return
    node = _expand_behind(value)
    target = const_array(node.inputs[1])
    src = axis - (len(value.shape) - len(target)) if target is not None else -1
    if src >= 0 and target[src] != 1:
        target = target.copy()
        target[src] = 1
        ctx.replace(node, 1, target)


class PerChannelParams(Rule):
    """BatchNormalization / InstanceNormalization: y[c] = a[c] * x[c] + b[c]; params sliced.
    Over a map flattened into features (Keras' Flatten then BatchNormalization, torch's
    BatchNorm1d after nn.Flatten) the params are per feature: a channel's go with it."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        _like_input(node, cg)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if cg.has(node.inputs[0]) and cg.axis(node.inputs[0], node) != 1:
            raise node_error(node, "normalises a tensor whose channels are not on axis 1")
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        if ctx.changed(node.outputs[0]):
            keep = ctx.kept_features(node.outputs[0])
            for i in range(1, len(node.inputs)):
                a = const_array(node.inputs[i])
                if a is None:
                    raise node_error(node, "parameters must be constants")
                ctx.replace(node, i, a[keep])


class QuantizeRule(Rule):
    """QuantizeLinear / DequantizeLinear of an activation (a QDQ model's; its weights' are
    constants, folded): y[c] = f(x[c]) with one scale and zero point for the tensor, or one
    per channel along ``axis`` (sliced with the channels); per-axis along another axis has
    no rule."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], node.inputs[0])

    def _per_channel(self, node: ir.Node, cg: ChannelGraph) -> bool:
        scale = const_array(node.inputs[1])
        if scale is None and _scalar(node.inputs[1]):
            return False  # computed for the whole tensor (DynamicQuantizeLinear's)
        if scale is None:
            raise node_error(node, "scale must be a constant")
        if scale.size == 1:
            return False
        x = node.inputs[0]
        axis = node.attributes.get_int("axis", 1) % len(x.shape)
        if cg.axes[x.name] != (axis,) or scale.ndim != 1:
            raise node_error(node, "quantises per axis along an axis that is not the channels'")
        return True

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        self._per_channel(node, cg)
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        if ctx.changed(node.outputs[0]) and self._per_channel(node, ctx.cg):
            keep = ctx.kept(node.outputs[0])
            for i in range(1, len(node.inputs)):
                a = const_array(node.inputs[i])
                if a is not None and a.size > 1:
                    ctx.replace(node, i, a[keep])


def _scalar(value: ir.Value) -> bool:
    shape = value.shape
    return shape is not None and all(d == 1 for d in shape)


class DynamicQuantizeRule(Rule):
    """DynamicQuantizeLinear (``quantize_dynamic``'s activations): y[c] = q(x[c]) at one
    scale and zero point computed from the whole tensor (outputs 2 and 3, no channels).
    Removing channels can only narrow that range: the kept channels are quantised at the
    same or a finer step, a rounding change the fidelity measurement sees."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], node.inputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)


def _reduced_axes(node: ir.Node) -> list[int] | None:
    axes = axes_operand(node)
    return None if axes is None else [a % len(node.inputs[0].shape) for a in axes]


class ChannelPreserving(Rule):
    """Pooling, reductions over other axes, pads and resizes: y[c] depends on x[c] only.

    Reductions and pads are checked not to touch axis 0 of an [N, C, ...] tensor (its
    batch); a reduction over the channels (a LayerNorm written out as ReduceMean, Sub,
    Pow, ...) makes a statistic of all of them: they are pinned. So does a pad of the
    channel axis (PyTorch writes ``nn.LocalResponseNorm`` as a pad of the channels and an
    average pool across them): its input is pinned and its output has no channels. A global
    pool of a sequence [N, T, C] reduces its channels (tf2onnx's layer norm): pinned too.
    A reduction over the time axis of a recurrent layer's output (mean pooling over a
    sequence) is one of these; without ``keepdims`` the channel axes move down past the
    reduced ones.
    """

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if not cg.has(x):
            raise node_error(node, "input channel count unknown")
        axes = cg.axes[x.name]
        if node.op_type == "Pad" and _pads_channels(node, cg):
            return  # a window across the channels follows: none of its own
        if node.op_type.startswith("Reduce") and not node.attributes.get_int("keepdims", 1):
            gone = _reduced_axes(node) or []
            if any(a in gone for a in axes):
                return  # a statistic over the channels has none left
            axes = tuple(a - sum(g < a for g in gone) for a in axes)
        add_activation(cg, y, axes, cg.mult[x.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        op, x = node.op_type, node.inputs[0]
        channel_axes = cg.axes[x.name]
        image = channel_axes == (1,)  # [N, C, ...]: axis 0 is the batch
        if op.startswith("Reduce"):
            axes = _reduced_axes(node)
            if not axes:
                raise node_error(node, "reduces over all axes, the batch's included (one "
                                 "statistic of every sample together)")
            if image and 0 in axes:
                raise node_error(node, f"reduces over the batch axis (axes={list(axes)})")
            if any(a in channel_axes for a in axes):
                PINNING.couple(node, cg)  # every channel feeds the statistic: none can go
                return
        elif op == "Pad":
            if _pads_channels(node, cg):
                cg.pin(x, node)
                return
            pads = _pads(node)
            if image and (pads[0] or pads[len(pads) // 2]):
                raise node_error(node, "pads the batch axis")
        elif op.startswith("Global") and any(a >= 2 for a in channel_axes):
            # over every axis from 2 on: a sequence's channels [N, T, C] (tf2onnx writes a
            # layer norm's mean over the last axis so); their statistic pins them
            PINNING.couple(node, cg)
            return
        elif not image:
            raise node_error(node, f"{op} of a tensor whose channels are not on axis 1")
        if op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1].uses():
            raise node_error(node, "pooling indices are used")
        cg.unify_all(x, node.outputs[0], node)


def _pads(node: ir.Node) -> list[int]:
    """A Pad's pads (attribute or constant input), checked constant over all axes."""
    pads = node.attributes.get_ints("pads", None)
    if pads is None and len(node.inputs) > 1:
        arr = const_array(node.inputs[1])
        pads = None if arr is None else arr.tolist()
    if pads is None or len(node.inputs) > 3 and node.inputs[3] is not None:
        raise node_error(node, "pads must be constant over all axes")
    return list(pads)


def _pads_channels(node: ir.Node, cg: ChannelGraph) -> bool:
    pads = _pads(node)
    r = len(pads) // 2
    return any(pads[a] or pads[r + a] for a in cg.axes[node.inputs[0].name])


class SoftmaxRule(Elementwise):
    """Softmax/LogSoftmax/Hardmax: over a channel axis they mix channels (pinned), over one
    of several channel axes they mix only the channels along it (one unit: a selective
    kernel's paths); over other axes they are elementwise as far as channels go. Before
    opset 13 they normalise over every axis from ``axis`` on (``irutil.softmax_axes``)."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        axes = softmax_axes(node, len(x.shape))
        if not cg.has(x) or not any(a in axes for a in cg.axes[x.name]):
            super().couple(node, cg)
        elif len(cg.axes[x.name]) > 1 and len(axes) == 1:  # one of several channel axes (a
            super().couple(node, cg)  # selective kernel's paths): whole rows along it go
            cg.unify_along(x, axes[0])
        else:
            PINNING.couple(node, cg)


class LayerNormRule(Rule):
    """LayerNormalization (and RMSNormalization) over axes axis..rank-1: where a channel
    axis is among them, the statistics are taken over the channels, so removing one would
    change every other's value: pinned. Over other axes only (a sequence's steps), the
    channels pass through; the scale and bias then have the normalised axes' shape, not
    the channels'. (GroupNormalization, whose groups can go whole: ``groups``.)"""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], node.inputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        rank = len(x.shape)
        first = node.attributes.get_int("axis", -1) % rank
        normalised = range(first, rank)
        if any(a in normalised for a in cg.axes[x.name]):
            PINNING.couple(node, cg)
            y = node.outputs[0]
            scale = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
            if cg.has(y) and cg.size[x.name] == cg.size[y.name] and scale is not None and \
                    scale.size == cg.size[x.name]:
                cg.normalised.append((x.name, y.name, np.abs(scale.reshape(-1))))
        else:
            cg.unify_all(x, node.outputs[0], node)


_UNARY = (
    "Relu LeakyRelu Sigmoid Tanh Clip Elu Selu Celu HardSigmoid HardSwish Softplus Softsign "
    "Gelu Mish Abs Neg Exp Log Sqrt Reciprocal Erf Cast Identity Dropout Floor Ceil Round "
    "Sign Sin Cos ThresholdedRelu Swish Not IsNaN IsInf"
).split()
_BINARY = ("Add Sub Mul Div Max Min Pow Sum Mean PRelu Where Greater Less Equal "
           "GreaterOrEqual LessOrEqual And Or Xor").split()
_POOLING = (
    "MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool Pad Resize "
    "Upsample ReduceMean ReduceMax ReduceMin ReduceSum ReduceL1 ReduceL2 ReduceLogSumExp "
    "ReduceProd ReduceSumSquare"
).split()

ELEMENTWISE, PINNING = Elementwise(), Pinning()
RULES: dict[str, Rule] = {
    **dict.fromkeys(_UNARY + _BINARY, ELEMENTWISE),
    **dict.fromkeys(["BatchNormalization", "InstanceNormalization"], PerChannelParams()),
    **dict.fromkeys(_POOLING, ChannelPreserving()),
    **dict.fromkeys(["Softmax", "LogSoftmax", "Hardmax"], SoftmaxRule()),
    "LRN": PINNING,
    **dict.fromkeys(["LayerNormalization", "RMSNormalization"], LayerNormRule()),
    **dict.fromkeys(["QuantizeLinear", "DequantizeLinear"], QuantizeRule()),
    "DynamicQuantizeLinear": DynamicQuantizeRule(),
}
