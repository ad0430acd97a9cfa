"""Rules for ops that move channels without computing on them: Flatten into features,
Concat and Split into offset sub-spaces, Slice, axis-preserving reshapes, and Shape."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array


class FlattenRule(Rule):
    """Flatten(axis=1) of [N, C, d...]: feature f belongs to channel f // s, s = prod(d)."""

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if node.attributes.get_int("axis", 1) != 1:
            raise node_error(node, "only axis=1 keeps the batch axis apart")
        if not cg.has(x) or x.shape is None:
            raise node_error(node, "input channel count unknown")
        spatial = 1
        for d in list(x.shape)[2:]:
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
            raise node_error(node, "equal split cannot express unequal kept counts")


class SliceRule(Rule):
    """Slice with constant starts/ends/steps: channel c of the output is channel start + c
    of the input when axis 1 is sliced with step 1; bounds patched to kept counts."""

    def _params(self, node: ir.Node) -> tuple[np.ndarray, ...]:
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
        if 0 in axes.tolist():
            raise node_error(node, "slices the batch axis")
        if 1 not in axes.tolist():
            cg.unify_all(x, y, node)
            return
        i = axes.tolist().index(1)
        if steps[i] != 1:
            raise node_error(node, "a strided slice of channels has no rule")
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
                raise node_error(node, "moves the channel axis")
        else:
            axes = node.attributes.get_ints("axes", None)
            if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
                arr = const_array(node.inputs[1])
                axes = None if arr is None else arr.tolist()
            rank = len(node.outputs[0].shape if op == "Unsqueeze" else node.inputs[0].shape)
            if axes is None or any(a % rank in (0, 1) for a in axes):
                raise node_error(node, "touches the batch or channel axis")
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
    **dict.fromkeys(["Squeeze", "Unsqueeze", "Transpose"], AxesPreserving()),
    **dict.fromkeys(["Shape", "Size"], ShapeOnly()),
}
