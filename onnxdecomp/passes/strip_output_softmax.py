"""StripOutputSoftmaxPass: a classifier's output becomes its logits."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import softmax_axes, softmax_axis

# Ops that only move a sample's values (a pooled map's scores flattened, transposed).
_LAYOUT = {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity"}


class StripOutputSoftmaxPass(ir.passes.InPlacePass):
    """Drop a Softmax or LogSoftmax that produces the graph output, over the class axis (the
    last: [N, K], or a tagger's [N, T, K]); or one behind ops that only move values
    (Flatten, Reshape, Transpose, ...) when every axis of its input but the batch and its own
    is 1 (a pooled convolutional head [N, K, 1, 1]; TorchScript at opset < 13 transposes
    around a softmax over axis 1): then it is over the classes whatever the opset's rule.
    Also one behind a Cast to another float type (a float16 model's output cast to float32
    by onnxconverter-common's ``keep_io_types``): the cast is kept, on the logits.

    Log-odds need logits; softmax and log-softmax keep the argmax and shift logits by a
    per-sample constant only, so class log-odds computed from the stripped output equal
    those of the original probabilities.

    Requires: one graph output.
    Ensures: the graph output is the input of the removed op (renamed to the output's name),
    or what the removed op fed reads its input; ``self.stripped`` says which op was removed,
    if any.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stripped: str | None = None

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        if len(graph.outputs) != 1:
            return ir.passes.PassResult(model, False)
        out = graph.outputs[0]
        node = out.producer()
        cast = None  # the last of the Casts to a float type the output is made by
        while node is not None and _float_cast(node) and len(node.inputs[0].uses()) == 1:
            cast, node = node, node.inputs[0].producer()
        if node is not None and node.op_type in _LAYOUT:
            return self._behind_layout(model, node)
        if node is None or node.op_type not in ("Softmax", "LogSoftmax"):
            return ir.passes.PassResult(model, False)
        probs = node.outputs[0]
        shape = probs.shape if probs.shape is not None else out.shape  # casts keep it
        rank = len(shape) if shape is not None else None
        # The class axis is the last (a tagger's [N, T, K] too); over another axis (or, before
        # opset 13, over several) the op is no per-sample shift of the logits and stays.
        if rank is None:
            last = softmax_axis(node) == -1
        else:
            last = softmax_axes(node, rank) == range(rank - 1, rank)
        if not last or node.inputs[0].is_graph_input():
            return ir.passes.PassResult(model, False)
        logits = node.inputs[0]
        if cast is not None:  # the casts stay, on the logits
            probs.replace_all_uses_with(logits)
            graph.remove(node, safe=True)
        else:
            name = out.name
            graph.outputs[0] = logits
            graph.remove(node, safe=True)
            logits.name = name
        self.stripped = node.op_type
        return ir.passes.PassResult(model, True)

    def _behind_layout(self, model: ir.Model, node: ir.Node) -> ir.passes.PassResult:
        while node is not None and (node.op_type in _LAYOUT or _float_cast(node)) and \
                len(node.inputs[0].uses()) == 1:
            node = node.inputs[0].producer()
        if node is None or node.op_type not in ("Softmax", "LogSoftmax"):
            return ir.passes.PassResult(model, False)
        x = node.inputs[0]
        if x.shape is None or len(x.shape) < 2 or x.is_graph_input():
            return ir.passes.PassResult(model, False)
        rank = len(x.shape)
        axis = softmax_axis(node) % rank
        if axis == 0 or any(d != 1 for a, d in enumerate(x.shape) if a not in (0, axis)):
            return ir.passes.PassResult(model, False)
        node.outputs[0].replace_all_uses_with(x)
        model.graph.remove(node, safe=True)
        self.stripped = node.op_type
        return ir.passes.PassResult(model, True)


def _float_cast(node: ir.Node) -> bool:
    """A Cast to a floating-point type (a float16 model's output cast to float32)."""
    return node.op_type == "Cast" and \
        ir.DataType(node.attributes.get_int("to", 0)).is_floating_point()
