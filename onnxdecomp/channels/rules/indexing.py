"""Rules for ops that index: Gather (embedding lookups, picking one direction or layer of
a recurrent state, or channels by index), GatherElements (each sample's last step), GatherND,
and ReverseSequence."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, add_activation
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.channels.rules.layout import on_channels, unit_block
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array, fresh_name, new_initializer


class GatherRule(Rule):
    """Gather with a constant table and computed indices is an embedding lookup: the table's
    columns are new channels on the output's last axis, pruned by slicing columns. Gather
    on a value with channels: along another axis the channels pass through, whatever the
    indices (a scalar index drops the axis; computed ones pick rows, e.g. each sample's
    last token); with constant indices, a scalar index on a direction axis picks that
    direction's units (``h_n[-1]``); a vector of indices on the one channel axis picks or
    permutes channels (output channel c is input channel index[c]; a channel shuffle), the
    indices renumbered to the kept channels."""

    def origin(self, node: ir.Node) -> bool:
        return self._lookup(node)

    def _lookup(self, node: ir.Node) -> bool:
        table = const_array(node.inputs[0])
        return table is not None and const_array(node.inputs[1]) is None

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
        axis = node.attributes.get_int("axis", 0)
        if self._lookup(node):
            if const_array(data).ndim != 2 or axis != 0:
                raise node_error(node, "a lookup other than rows of a 2-D table has no rule")
            if y.shape is None:
                raise node_error(node, "output shape unknown")
            add_activation(cg, y, (len(y.shape) - 1,))
            cg.lookups.add(y.name)
            return
        index = const_array(idx)
        rank = index.ndim if index is not None else (
            len(idx.shape) if idx.shape is not None else None)
        if not cg.has(data) or rank is None or (
                index is None and axis % len(data.shape) in cg.axes[data.name]):
            raise node_error(node, "gathers channels at computed indices; no rule")
        axis %= len(data.shape)
        shift = rank - 1
        axes = cg.axes[data.name]
        if on_channels(cg, data, axis, node):
            if index.ndim == 1 and len(axes) == 1 and cg.mult[data.name] == 1:
                cg.add_space(y, len(index), 1, axes)  # channels picked (or permuted) by index
                return
            if index.ndim != 0 or len(axes) == 1:
                raise node_error(node, "gathers channels by index; no rule")
            axes = axes[1:]
        add_activation(cg, y, tuple(a + shift if a > axis else a for a in axes),
                       cg.mult[data.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if self._lookup(node):
            return  # new units: the table's columns
        data, y = node.inputs[0], node.outputs[0]
        axis = node.attributes.get_int("axis", 0) % len(data.shape)
        if axis not in cg.axes[data.name]:
            cg.unify_all(data, y, node)
            return
        n = data.shape[axis]
        index = const_array(node.inputs[1])
        if index.ndim == 1:  # output channel c is input channel index[c]
            for c, i in enumerate(index.tolist()):
                cg.unify(data, i % n, y, c)
            return
        start = (int(index) % n) * unit_block(cg, data)
        for c in range(cg.size[y.name]):
            cg.unify(data, start + c, y, c)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        data, y = node.inputs[0], node.outputs[0]
        if self._lookup(node):
            if ctx.changed(y):
                ctx.replace(node, 0, const_array(data)[:, ctx.kept(y)])
            return
        index = const_array(node.inputs[1])
        axis = node.attributes.get_int("axis", 0) % len(data.shape)
        if index is None or index.ndim != 1 or ctx.cg.axes.get(data.name) != (axis,) or not (
                ctx.changed(data) or ctx.changed(y)):
            return
        # A kept output channel's unit is its input channel's: that one is kept too.
        position = {int(ch): p for p, ch in enumerate(ctx.kept(data))}
        n = ctx.cg.size[data.name]
        ctx.replace(node, 1, np.array([position[int(index[c]) % n] for c in ctx.kept(y)],
                                      dtype=index.dtype))


class GatherElementsRule(Rule):
    """GatherElements along an axis the channels are not on, its indices spanning the one
    channel axis a (each sample's last step picked by its length: ``out.gather(1, (lengths -
    1).view(-1, 1, 1).expand(-1, 1, H))``): y[..., c, ...] = x[..., idx[..., c, ...], ...,
    c, ...], so channel c of y is channel c of x whatever the indices. Pruned, the indices
    keep the kept channels' entries along a: an Expand of a size-1 axis to a constant
    target is given the kept count there (its only reader being this node), other indices
    are gathered at the kept channels."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if not cg.has(data) or data.shape is None:
            raise node_error(node, "gathers by indices that carry channels; no rule")
        axis = node.attributes.get_int("axis", 0) % len(data.shape)
        axes = cg.axes[data.name]
        if axis in axes:
            raise node_error(node, "gathers channels at computed indices; no rule")
        if len(axes) != 1 or idx.shape is None or len(idx.shape) != len(data.shape) or \
                idx.shape[axes[0]] != data.shape[axes[0]]:
            raise node_error(node, "indices that do not span the channel axis; no rule")
        add_activation(cg, y, axes, cg.mult[data.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        cg.unify_all(node.inputs[0], node.outputs[0], node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        data, idx = node.inputs[0], node.inputs[1]
        if not ctx.changed(data):
            return
        (a,), kept = ctx.cg.axes[data.name], ctx.kept_features(data)
        expand = idx.producer()
        if expand is not None and expand.op_type == "Expand" and len(list(idx.uses())) == 1:
            target = const_array(expand.inputs[1])
            if _sets_axis(target, expand.inputs[0], a, len(data.shape)):
                target = target.copy()
                target[a - len(data.shape) + len(target)] = len(kept)
                ctx.replace(expand, 1, target)
                return
        pick = ir.node("Gather", [idx, new_initializer(ctx.graph, f"{node.name}_kept",
                                                       kept.astype(np.int64))],
                       attributes={"axis": a}, name=f"{node.name}_kept_indices")
        pick.outputs[0].name = fresh_name(ctx.graph, pick.name)
        ctx.graph.insert_before(node, pick)
        node.replace_input_with(1, pick.outputs[0])


def _sets_axis(target: np.ndarray | None, src: ir.Value, axis: int, rank: int) -> bool:
    """Whether Expand(src, target), of output rank ``rank``, takes its size on ``axis`` from
    a constant target alone (src has size 1 there, or no such axis)."""
    if target is None or target.ndim != 1 or src.shape is None:
        return False
    at, src_at = axis - rank + len(target), axis - rank + len(src.shape)
    return at >= 0 and (src_at < 0 or src.shape[src_at] == 1)


class GatherNDRule(Rule):
    """GatherND that indexes axes the channels are not on: output shape
    ``indices.shape[:-1] + data.shape[b + k:]`` (b = batch_dims, k = indices.shape[-1]), so
    a channel axis a >= b + k moves to a - b - k + rank(indices) - 1 and one among the
    first b stays where it is. The dynamo exporter writes an adaptive average pool whose
    output size is not a factor of its input's (torchvision's AlexNet below 224 pixels,
    a 1x1 map pooled to 6x6) as GatherND of positions on the spatial axes moved first."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if not cg.has(data):
            return
        b = node.attributes.get_int("batch_dims", 0)
        if idx.shape is None or not isinstance(idx.shape[-1], int):
            raise node_error(node, "indices' last dimension unknown")
        k, q = idx.shape[-1], len(idx.shape)
        axes = cg.axes[data.name]
        if any(b <= a < b + k for a in axes):
            raise node_error(node, "gathers channels by index; no rule")
        add_activation(cg, y, tuple(a if a < b else a - b - k + q - 1 for a in axes),
                       cg.mult[data.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        if cg.has(node.inputs[0]):
            cg.unify_all(node.inputs[0], node.outputs[0], node)


class ReverseSequenceRule(Rule):
    """ReverseSequence reverses each sample's first steps along the time axis (tf2onnx's
    backward half of a Keras Bidirectional layer run as a loop): channels on other axes
    pass through; along a channel axis (a sequence of raw features read as channels, the
    steps on axis 1) each sample's are reordered: they are pinned."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        if not cg.has(x):
            raise node_error(node, "input channel count unknown")
        add_activation(cg, node.outputs[0], cg.axes[x.name], cg.mult[x.name])

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        moved = {node.attributes.get_int("batch_axis", 1), node.attributes.get_int("time_axis", 0)}
        if moved & set(cg.axes[x.name]):  # positions reversed per sample: none can go
            for v in (x, node.outputs[0]):
                cg.pin(v, node)
            return
        cg.unify_all(x, node.outputs[0], node)


RULES: dict[str, Rule] = {"Gather": GatherRule(), "GatherElements": GatherElementsRule(),
                          "GatherND": GatherNDRule(),
                          "ReverseSequence": ReverseSequenceRule()}
