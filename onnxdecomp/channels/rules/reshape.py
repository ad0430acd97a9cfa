"""The Reshape rule: which reshapes keep every channel apart from the other axes, and where
the channel axes land in the result.

A reshape of a row-major tensor keeps channel c whole when the axes before the channels,
the channel axes and the axes after them stay three separate products: the axes up to the
channels unchanged ([N, C, H, W] -> [N, C, H * W]), unit axes added ([N, C] ->
[N, C, 1, 1]), the axes after the channels merged or split among themselves, or the axes
before them merged ([N, T, H] -> [N * T, H]). Anything that would spread one channel over
several positions of a channel axis has no rule, except blocks of consecutive channels
folded into one channel of a coarser axis, or unfolded from one (group normalisation,
``channels.rules.groups``). One channel lands on the output's one axis of size 1 (tf2onnx
writes a one-channel image's NHWC-to-NCHW transpose as [N, H, W, 1] -> [N, 1, H, W])."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.channels.rules.groups import block_fold, couple_block_fold
from onnxdecomp.errors import UnsupportedOpError, node_error
from onnxdecomp.irutil import const_array


class ReshapeRule(Rule):
    """Reshape that keeps the channel axes, and what follows them, apart from the rest:
    [T, N, D, H] -> [T, N, D * H] merges a recurrent layer's directions and units into one
    axis (channel d * H + h either way), [N, T, H] -> [N * T, H] merges other axes. A
    constant target shape is patched to the kept count; a computed one must follow the
    tensor's own shape (every emitted module is run before it is written). A reshape that
    spreads channels over other axes (attention's [T, N, D] -> [T, N * H, D / H], channels
    mixed with rows) pins its input and makes no channel space: what follows it sees the
    parent's values whatever a module removes elsewhere."""

    def _map(self, node: ir.Node, cg: ChannelGraph) -> tuple[int, ...]:
        x, y = node.inputs[0], node.outputs[0]
        if x.shape is None or y.shape is None:
            raise node_error(node, "shapes unknown; a reshape of channels needs them")
        axes = cg.axes[x.name]
        if list(axes) != list(range(axes[0], axes[-1] + 1)):
            raise node_error(node, "reshapes channels that lie on axes apart")
        xin, yout = list(x.shape), list(y.shape)
        if cg.size[x.name] == 1 and len(axes) == 1 and yout.count(1) == 1:
            return (yout.index(1),)  # one channel: on the one axis of size 1
        tail = xin[axes[-1] + 1:]
        lead = xin[:axes[0]]
        if len(yout) > axes[-1] and [str(d) for d in yout[:axes[-1] + 1]] == [
                str(d) for d in xin[:axes[-1] + 1]]:
            return tuple(axes)  # the axes up to the channels kept as they are, the rest merged
        if not tail and len(yout) == len(lead) + 1 and all(
                str(a) == str(b) for a, b in zip(lead, yout)):
            return (len(lead),)  # [T, N, D, H] -> [T, N, D * H] (or to a computed last axis)
        body = xin[axes[0]:axes[-1] + 1]
        end = _tail_start(tail, yout)
        if end is None or any(not isinstance(d, int) for d in body):
            raise node_error(node, "reshape mixes the channel axes with other axes")
        want = int(np.prod(body))
        while end > 0 and yout[end - 1] == 1 and want > 1:
            end -= 1  # [N, C] -> [N, C, 1, 1]: the added unit axes are not channel axes
        got, b = 1, end
        while got < want and b > 0:
            b -= 1
            if not isinstance(yout[b], int):
                break
            got *= yout[b]
        if got != want or b == end:  # (one channel [N, 1, R] found no axis to land on)
            raise node_error(node, "reshape mixes the channel axes with other axes")
        return tuple(range(b, end))

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        x = node.inputs[0]
        if not cg.has(x):
            raise node_error(node, "input channel count unknown")
        try:
            axes = self._map(node, cg)
        except UnsupportedOpError:
            fold = block_fold(node, cg)
            if fold is not None:  # blocks of channels folded into one (group norm) or back
                y = node.outputs[0]
                cg.add_space(y, y.shape[fold[1]], 1, (fold[1],))
            return  # else channels spread over other axes (attention heads with the batch)
        # The channels are x's, whatever shape inference could say of the target axis.
        cg.add_space(node.outputs[0], cg.size[x.name], cg.mult[x.name], axes)

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if not cg.has(y):
            cg.pin(x, node)  # what it makes is no channel space: x keeps every channel
            return
        if cg.size[x.name] != cg.size[y.name] and (fold := block_fold(node, cg)) is not None:
            couple_block_fold(node, cg, fold[0], fold[2])
            return
        cg.unify_all(x, y, node)

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        """A constant target says the kept size on each channel axis that lost some: the
        heads of [N, T, H, d] (or of [N, T, 3, H, d], q, k and v at once), a recurrent
        layer's units of [T, N, D, H]; -1 and 0 are left to the runtime."""
        x, y = node.inputs[0], node.outputs[0]
        shape = const_array(node.inputs[1])
        if not ctx.changed(x) or shape is None:
            return
        axes, mult = ctx.cg.axes[y.name], ctx.cg.mult[y.name]
        dims = _parent_dims(y, axes, shape, ctx.cg.size[y.name] * mult)
        kept = ctx.kept_features(y)
        sizes = None if dims is None else kept_sizes(kept, dims)
        if sizes is None:
            raise node_error(node, "the kept channels are not whole slices of the reshaped "
                             "axes")
        patched = shape.copy()
        for a, d, s in zip(axes, dims, sizes):
            if s != d and patched[a] not in (-1, 0):  # -1 takes the kept size by itself
                patched[a] = s
        if not np.array_equal(patched, shape):
            ctx.replace(node, 1, patched)


def _parent_dims(y: ir.Value, axes: tuple[int, ...], target: np.ndarray,
                 size: int) -> list[int] | None:
    """The parent's sizes of ``y``'s channel axes: its inferred shape (not redone while
    pruning), else the target's, one -1 among them taking what the channels leave."""
    dims = [y.shape[a] if y.shape is not None and isinstance(y.shape[a], int) else
            int(target[a]) if target[a] > 0 else None for a in axes]
    unknown = [i for i, d in enumerate(dims) if d is None]
    if len(unknown) > 1:
        return None
    if unknown:
        dims[unknown[0]] = size // int(np.prod([d for d in dims if d is not None]))
    return dims


def kept_sizes(kept: np.ndarray, dims: list[int]) -> list[int] | None:
    """How many indices of each of the axes ``dims`` the ``kept`` channels (row-major over
    them) hold, when they are every combination of those indices; None when not."""
    index = np.unravel_index(kept, dims)
    sizes = [len(np.unique(i)) for i in index]
    return sizes if int(np.prod(sizes)) == len(kept) else None


def _tail_start(tail: list, yout: list) -> int | None:
    """Where the axes after the channels begin in the reshaped shape ``yout``: the same axes
    ([N, C, H, W] -> [N, C, 1, H, W]), or known axes of the same size merged or split
    ([N, C, H, W] -> [N, C, H * W]); None when the channels would take a share of them."""
    if [str(d) for d in yout[len(yout) - len(tail):]] == [str(d) for d in tail]:
        return len(yout) - len(tail)
    if any(not isinstance(d, int) for d in tail):
        return None
    want, got, end = int(np.prod(tail)), 1, len(yout)
    while got < want and end > 0 and isinstance(yout[end - 1], int):
        end -= 1
        got *= yout[end]
    return end if got == want else None


RULES: dict[str, Rule] = {"Reshape": ReshapeRule()}
