"""Rules for ops that keep channels apart: elementwise ops, per-channel affine ops,
pooling and spatial reductions, and softmax (pinned over the channel axis)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph
from onnxdecomp.channels.rules.base import Pinning, PruneContext, Rule
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import const_array


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
            raise node_error(node, "operand shapes unknown; run shape inference")
        axis = 1 - (len(out.shape) - len(operand.shape))
        if axis < 0:
            return None, axis
        dim = operand.shape[axis]
        return (dim if isinstance(dim, int) else None), axis

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        out = node.outputs[0]
        if not cg.has(out):
            raise node_error(node, "output channel count unknown")
        c = cg.size[out.name]
        for v in node.inputs:
            if v is None:
                continue
            size, _ = self._aligned(node, v)
            if cg.has(v) and size == c:
                if len(v.shape) != len(out.shape):
                    raise node_error(node, "operand of another rank on the channel axis")
                cg.unify_all(v, out, node)
            elif cg.has(v) and size not in (None, 1):
                raise node_error(node, f"operand {v.name!r} broadcasts {size} channels onto {c}")
            elif not cg.has(v) and const_array(v) is None and size not in (None, 1):
                raise node_error(
                    node, f"operand {v.name!r} is computed, not constant, and per-channel")

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
                    raise node_error(node, "parameters must be constants")
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
                    raise node_error(node, "reduction axes are not constant")
                axes = arr.tolist()
            if not axes:
                raise node_error(node, "reduces over all axes, channels included")
            rank = len(node.inputs[0].shape)
            if any(a % rank in (0, 1) for a in axes):
                raise node_error(
                    node, f"reduces over the batch or channel axis (axes={list(axes)})")
            if not node.attributes.get_int("keepdims", 1) and 0 in [a % rank for a in axes]:
                raise node_error(node, "drops the batch axis")
        if op == "Pad":
            pads = node.attributes.get_ints("pads", None)
            if pads is None and len(node.inputs) > 1:
                arr = const_array(node.inputs[1])
                pads = None if arr is None else arr.tolist()
            if pads is None or len(node.inputs) > 3 and node.inputs[3] is not None:
                raise node_error(node, "pads must be constant over all axes")
            r = len(pads) // 2
            if pads[1] or pads[r + 1] or pads[0] or pads[r]:
                raise node_error(node, "pads the channel or batch axis")
        if op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1].uses():
            raise node_error(node, "pooling indices are used")
        cg.unify_all(node.inputs[0], node.outputs[0], node)


class SoftmaxRule(Rule):
    """Softmax/LogSoftmax/Hardmax: over the channel axis they mix channels (pinned);
    over another axis they are elementwise as far as channels go."""

    def resolve(self, node: ir.Node) -> Rule:
        axis = node.attributes.get_int("axis", -1)
        rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else 0
        return PINNING if rank and axis % rank == 1 else ELEMENTWISE


_UNARY = (
    "Relu LeakyRelu Sigmoid Tanh Clip Elu Selu Celu HardSigmoid HardSwish Softplus Softsign "
    "Gelu Mish Abs Neg Exp Log Sqrt Reciprocal Erf Cast Identity Dropout Floor Ceil Round "
    "Sign Sin Cos ThresholdedRelu Swish"
).split()
_BINARY = "Add Sub Mul Div Max Min Pow Sum Mean PRelu Where".split()
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
}
