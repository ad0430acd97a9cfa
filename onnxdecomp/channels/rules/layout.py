"""Rules for ops that move channels without computing on them: Flatten into features,
Concat and Split into offset sub-spaces, Slice, Transpose, Squeeze and Unsqueeze (the
channel axes follow), and Shape; Reshape has its own module (``reshape``), Gather
``indexing``.

A value whose channels lie on two axes (a recurrent layer's directions and units, see
:mod:`onnxdecomp.channels.graph`) can be cut, concatenated or indexed along the first of
them, the direction axis, which pruning never changes: only the units are removed, the same
in every direction."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation, add_like
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import axes_operand, const_array, new_initializer


class FlattenRule(Rule):
    """Flatten(axis=1) of [N, C, d...]: feature f belongs to channel f // s, s = prod(d).
    Channels on the axes right after the batch ([N, D, H], a recurrent layer's final states
    with its directions moved behind the batch) flatten to one axis, unit d * H + h, as the
    Reshape rule merges them; axes of size 1 before the channels ([N, 1, K]: Keras'
    ``Reshape((1, K))``) change nothing. Flatten at the last axis, the channels', merges the
    rows before it and keeps the channels as they are."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if not cg.has(x) or x.shape is None:
            raise node_error(node, "input channel count unknown")
        axis = node.attributes.get_int("axis", 1) % max(len(x.shape), 1)
        if axis > 1 and cg.axes[x.name] == (axis,) and axis == len(x.shape) - 1:
            # [N, T, C] -> [N * T, C] (TorchScript's x[arange(N), idx], one step per
            # sample): the rows merge, the channels stay the last axis.
            cg.add_space(y, cg.size[x.name], cg.mult[x.name])
            return
        if axis != 1:
            raise node_error(node, "only axis=1 keeps the batch axis apart")
        axes = list(cg.axes[x.name])
        # Axes of size 1 between the batch and the channels order nothing ([N, 1, K]).
        lead = list(x.shape)[1:axes[0]] if axes else []
        if axes != list(range(len(lead) + 1, len(lead) + len(axes) + 1)) or \
                any(d != 1 for d in lead):
            raise node_error(node, "flattens a tensor whose channels are not on the axes "
                             f"after the batch (they lie on axes {axes})")
        spatial = 1
        for d in list(x.shape)[axes[-1] + 1:]:
            if not isinstance(d, int):
                raise node_error(node, "spatial size unknown")
            spatial *= d
        cg.add_space(y, cg.size[x.name], cg.mult[x.name] * spatial)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)


def _map_offsets(cg: ChannelGraph, whole: ir.Value, parts, node: ir.Node) -> None:
    """Channel c of the i-th part is channel off_i + c of ``whole`` (parts in order)."""
    off = 0
    for part in parts:
        if not cg.has(part):
            raise node_error(node, f"{part.name!r} has no static channel count")
        for c in range(cg.size[part.name]):
            cg.unify(part, c, whole, off + c)
        off += cg.size[part.name]


def _same_channels(cg: ChannelGraph, values, y: ir.Value, node: ir.Node) -> None:
    """Every value has ``y``'s channels (a concat or split along another axis)."""
    for v in values:
        if not cg.has(v):
            raise node_error(node, f"{v.name!r} has no channels to match {y.name!r}'s")
        cg.unify_all(v, y, node)


def on_channels(cg: ChannelGraph, value: ir.Value, axis: int, node: ir.Node) -> bool:
    """Whether ``axis`` is a channel axis of ``value``: the one channel axis, or the first
    (direction) axis of two; an error for a later one of two (``_cuts_inside`` first)."""
    axes = cg.axes[value.name]
    if axis not in axes:
        return False
    if axes.index(axis) != 0:
        raise node_error(node, f"cuts the unit axis of {value.name!r}, whose channels lie on "
                         f"axes {list(axes)}")
    return True


def _cuts_inside(cg: ChannelGraph, value: ir.Value, axes: list[int], node: ir.Node,
                 others: list[ir.Value]) -> bool:
    """A cut (or join) along a later channel axis of ``value``: EfficientViT's q, k and v
    sliced out of each head's [heads, 3 * d] features, a tensor whose units no slice can
    follow. Every channel of ``value`` and ``others`` is pinned (what reads them sees the
    parent's values) and True is returned."""
    ch = cg.axes.get(value.name, ())
    if not any(a in ch and ch.index(a) > 0 for a in axes):
        return False
    for v in (value, *others):
        cg.pin(v, node)
    return True


def _first_channel_input(node: ir.Node, cg: ChannelGraph) -> ir.Value:
    src = next((v for v in node.inputs if cg.has(v)), None)
    if src is None:
        raise node_error(node, "no input with a static channel count")
    return src


class ConcatRule(Rule):
    """Concat along the channel axis: output channel off_i + c is input i's channel c.
    Along another axis every input has the output's channels: a constant input is sliced
    with them; an input computed where no rule followed (a ViT's class token expanded to
    the batch) cannot be sliced, so the output's channels are pinned."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], _first_channel_input(node, cg))

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        y = node.outputs[0]
        if not cg.has(y):
            raise node_error(node, "output channel count unknown")
        axis = node.attributes.get_int("axis", 1) % len(y.shape)
        if _cuts_inside(cg, y, [axis], node, list(node.inputs)):
            return
        if not on_channels(cg, y, axis, node):
            followed = [v for v in node.inputs if cg.has(v)]
            _same_channels(cg, followed, y, node)
            if any(const_array(v) is None for v in node.inputs if not cg.has(v)):
                cg.pin(y, node)
            return
        _map_offsets(cg, y, node.inputs, node)
        _tie_blocks(cg, y)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        y = node.outputs[0]
        axis = node.attributes.get_int("axis", 1) % len(y.shape)
        axes = ctx.cg.axes[y.name]
        if len(axes) != 1 or axes == (axis,) or not ctx.changed(y):
            return
        (channel_axis,) = axes
        for i, v in enumerate(node.inputs):
            a = const_array(v)
            if a is not None and not ctx.cg.has(v):
                ctx.replace(node, i, np.take(a, ctx.kept(y), axis=channel_axis))


def _tie_blocks(cg: ChannelGraph, value: ir.Value) -> None:
    """Unit c of every direction (or layer) block of ``value`` is one unit: a tensor holds
    the same count of units in each, so they are kept or removed together."""
    if len(cg.axes[value.name]) > 1:
        block = unit_block(cg, value)
        for e in range(block, cg.size[value.name]):
            cg.unify(value, e, value, e % block)


class SplitRule(Rule):
    """Split along the channel axis: output j's channel c is input channel off_j + c;
    sizes patched (along a direction axis nothing changes size)."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        for out in node.outputs:
            add_like(cg, out, node.inputs[0])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        axis = node.attributes.get_int("axis", 0) % len(x.shape)
        if _cuts_inside(cg, x, [axis], node, list(node.outputs)):
            return
        if not on_channels(cg, x, axis, node):
            _same_channels(cg, node.outputs, x, node)
            return
        _map_offsets(cg, x, node.outputs, node)
        _tie_blocks(cg, x)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x = node.inputs[0]
        axis = node.attributes.get_int("axis", 0) % len(x.shape)
        if ctx.cg.axes[x.name] != (axis,) or not ctx.changed(x):
            return
        sizes = np.array([len(ctx.kept(o)) for o in node.outputs], dtype=np.int64)
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            ctx.replace(node, 1, sizes)
        elif "split" in node.attributes:
            node.attributes["split"] = ir.AttrInt64s("split", sizes.tolist())
        elif len(set(sizes.tolist())) != 1:  # an equal split (num_outputs) made explicit
            if ctx.graph.opset_imports.get("", 1) < 13:
                node.attributes["split"] = ir.AttrInt64s("split", sizes.tolist())
                return
            node.attributes.pop("num_outputs", None)
            node.resize_inputs(2)
            node.replace_input_with(1, new_initializer(ctx.graph, f"{node.name}_split", sizes))


def unit_block(cg: ChannelGraph, value: ir.Value) -> int:
    """Channels per step of ``value``'s first channel axis (the units of one direction)."""
    first = cg.axes[value.name][0]
    return cg.size[value.name] // value.shape[first]


def _whole(start: int, end: int, step: int, dim) -> bool:
    """Whether a slice takes the whole axis (of size ``dim``, an int when known)."""
    if step != 1 or not (start == 0 or isinstance(dim, int) and start <= -dim):
        return False
    return end >= 2 ** 31 - 1 or isinstance(dim, int) and end >= dim


class SliceRule(Rule):
    """Slice with constant starts/ends/steps (inputs; attributes before opset 10). On the
    one channel axis with step 1: channel c of the output is channel start + c of the input,
    bounds patched to kept counts; on a direction axis, whole blocks of units; on other axes
    the channels pass through."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        add_like(cg, node.outputs[0], node.inputs[0])

    def _params(self, node: ir.Node) -> tuple[np.ndarray, ...]:
        if len(node.inputs) == 1:  # opset 1-9: starts, ends and axes are attributes
            arrays = [None if (a := node.attributes.get_ints(k, None)) is None else
                      np.array(a, dtype=np.int64) for k in ("starts", "ends", "axes")]
        else:
            arrays = [const_array(v) if v is not None else None for v in node.inputs[1:5]]
        if any(a is None for a in arrays[:2]):
            raise node_error(node, "starts/ends must be constants")
        rank = len(node.inputs[0].shape)
        starts, ends = arrays[0], arrays[1]
        axes = arrays[2] if len(arrays) > 2 and arrays[2] is not None else np.arange(len(starts))
        steps = arrays[3] if len(arrays) > 3 and arrays[3] is not None else np.ones_like(starts)
        return starts, ends, axes % rank, steps

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        starts, ends, axes, steps = self._params(node)
        cut = [i for i, a in enumerate(axes.tolist()) if not _whole(
            int(starts[i]), int(ends[i]), int(steps[i]), x.shape[a])]
        # tf2onnx's strided slices name every axis, most of them whole
        starts, ends, axes, steps = starts[cut], ends[cut], axes[cut], steps[cut]
        if cg.axes[x.name] == (1,) and 0 in axes.tolist():
            raise node_error(node, "slices the batch axis")
        if _cuts_inside(cg, x, axes.tolist(), node, [y]):
            return
        sliced = [a for a in axes.tolist() if on_channels(cg, x, a, node)]
        if not sliced:
            cg.unify_all(x, y, node)
            return
        i = axes.tolist().index(sliced[0])
        if steps[i] != 1:
            raise node_error(node, "a strided slice of channels has no rule")
        n = x.shape[sliced[0]]
        start = int(np.clip(starts[i] if starts[i] >= 0 else starts[i] + n, 0, n))
        block = unit_block(cg, x)
        for c in range(cg.size[y.name]):
            cg.unify(x, start * block + c, y, c)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x = node.inputs[0]
        starts, ends, axes, _ = self._params(node)
        axis = ctx.cg.axes[x.name]
        if len(axis) != 1 or axis[0] not in axes.tolist() or not ctx.changed(x):
            return
        i = axes.tolist().index(axis[0])
        c = ctx.cg.size[x.name]
        start = int(np.clip(starts[i] if starts[i] >= 0 else starts[i] + c, 0, c))
        stop = int(np.clip(ends[i] if ends[i] >= 0 else ends[i] + c, 0, c))
        kept = ctx.kept(x)
        new_start = int(np.sum(kept < start))
        new_stop = new_start + int(np.sum((kept >= start) & (kept < stop)))
        starts, ends = starts.copy(), ends.copy()
        starts[i], ends[i] = new_start, new_stop
        if len(node.inputs) == 1:
            node.attributes["starts"] = ir.AttrInt64s("starts", starts.tolist())
            node.attributes["ends"] = ir.AttrInt64s("ends", ends.tolist())
            return
        ctx.replace(node, 1, starts)
        ctx.replace(node, 2, ends)


class TransposeRule(Rule):
    """Transpose: the channel axes move with the permutation, channel order unchanged."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        perm = node.attributes.get_ints("perm", None)
        if perm is None:
            perm = list(range(len(x.shape)))[::-1]
        if cg.has(x):  # the input's count: shape inference may have lost a computed dim
            cg.add_space(node.outputs[0], cg.size[x.name], cg.mult[x.name],
                         tuple(list(perm).index(a) for a in cg.axes[x.name]))

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class SqueezeRule(Rule):
    """Squeeze/Unsqueeze: the channel axes shift past the removed or inserted axes; a
    channel axis of size 1 (the one direction of a unidirectional layer) may be squeezed."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        axes = axes_operand(node)
        channel = cg.axes[x.name]
        if node.op_type == "Unsqueeze":
            if axes is None:
                raise node_error(node, "axes unknown")
            added = sorted(a % len(y.shape) for a in axes)
            kept = [a for a in range(len(y.shape)) if a not in added]  # input axis i -> kept[i]
            new = tuple(kept[a] for a in channel)
        else:
            if axes is None:
                axes = [i for i, d in enumerate(x.shape) if d == 1]
            gone = [a % len(x.shape) for a in axes]
            if any(a in channel and x.shape[a] != 1 for a in gone):
                raise node_error(node, "squeezes a channel axis")
            new = tuple(a - sum(g < a for g in gone) for a in channel if a not in gone)
            if not new:
                raise node_error(node, "squeezes every channel axis")
        add_activation(cg, y, new, cg.mult[x.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class ShapeOnly(Rule):
    """Shape/Size read only the dimensions, which follow the pruned tensor by themselves."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        """Their outputs are integer vectors, not activations."""

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        """No coupling."""


RULES: dict[str, Rule] = {
    "Flatten": FlattenRule(),
    "Concat": ConcatRule(),
    "Split": SplitRule(),
    "Slice": SliceRule(),
    "Transpose": TransposeRule(),
    **dict.fromkeys(["Squeeze", "Unsqueeze"], SqueezeRule()),
    **dict.fromkeys(["Shape", "Size"], ShapeOnly()),
}
