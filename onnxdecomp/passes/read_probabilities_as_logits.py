"""ReadProbabilitiesAsLogitsPass: a classifier whose output is probabilities made otherwise
than by one trailing Softmax gets logits."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import new_initializer, softmax_axes


class ReadProbabilitiesAsLogitsPass(ir.passes.InPlacePass):
    """Give logits for an output that is probabilities not made by a trailing Softmax
    (``StripOutputSoftmaxPass`` strips that one).

    - Binary [1 - p, p] with p = Sigmoid(z) [N, 1] (skl2onnx's binary classifiers): the
      output becomes p, which ``ExpandBinaryLogitPass`` reads as logits [0, z] where z is a
      dense layer's; otherwise it becomes [0, z] here (or [z, 0] for [p, 1 - p]).
    - A positive mixture of softmaxes (skl2onnx's soft voting: Sum of Softmax outputs each
      multiplied by a positive constant; Add, Mean, Div by a positive constant alike): the
      output becomes log(max(p, tiny)). Log-odds need logits; log p is one, since p's own
      softmax is p again (a mixture whose weights do not sum to 1 shifts log p by a
      constant per sample, which the log-odds do not see).

    Without it the probabilities were read as logits: a binary module's score was 2p - 1,
    a voting classifier's every score below 0.

    Requires: one graph output, shapes inferred.
    Ensures: the graph output (same name) holds logits where it held such probabilities;
    anything else is left.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        if len(graph.outputs) != 1:
            return ir.passes.PassResult(model, False)
        out = graph.outputs[0]
        binary = _binary_probabilities(out)
        if binary is not None:
            _binary_as_logits(graph, out, *binary)
            return ir.passes.PassResult(model, True)
        if out.producer() is None or out.producer().op_type in ("Softmax", "LogSoftmax") \
                or not _is_mixture(out):
            return ir.passes.PassResult(model, False)
        dtype = out.dtype.numpy() if out.dtype is not None else np.dtype(np.float32)
        tiny = new_initializer(graph, "onnxdecomp_tiny", np.array(np.finfo(dtype).tiny, dtype))
        name = out.name
        out.name = f"{name}_probabilities"
        floor = ir.node("Max", [out, tiny], name="onnxdecomp_probability_floor")
        log = ir.node("Log", [floor.outputs[0]], name="onnxdecomp_log_probability")
        graph.extend([floor, log])
        logits = log.outputs[0]
        logits.name, logits.shape, logits.dtype = name, out.shape, out.dtype
        graph.outputs[0] = logits
        return ir.passes.PassResult(model, True)


def _const(v: ir.Value) -> np.ndarray | None:
    c = v.const_value
    return None if c is None else c.numpy()


def _is_sub_from_one(node: ir.Node | None, p: ir.Value) -> bool:
    if node is None or node.op_type != "Sub" or node.inputs[1] is not p:
        return False
    one = _const(node.inputs[0])
    return one is not None and one.size == 1 and float(one.reshape(-1)[0]) == 1.0


def _binary_probabilities(out: ir.Value) -> tuple[ir.Node, ir.Node, ir.Value, int] | None:
    """(the Concat, the Sub, p's Sigmoid's input z, p's position) of [1 - p, p] or
    [p, 1 - p] with p = Sigmoid(z) of shape [N, 1]; None otherwise."""
    concat = out.producer()
    if concat is None or concat.op_type != "Concat" or len(concat.inputs) != 2 \
            or out.shape is None or len(out.shape) != 2:
        return None
    if concat.attributes.get_int("axis", 0) % 2 != 1:
        return None
    for pos in (1, 0):
        p, q = concat.inputs[pos], concat.inputs[1 - pos]
        sig = p.producer()
        if sig is not None and sig.op_type == "Sigmoid" and p.shape is not None \
                and len(p.shape) == 2 and p.shape[1] == 1 and _is_sub_from_one(q.producer(), p):
            return concat, q.producer(), sig.inputs[0], pos
    return None


def _binary_as_logits(graph: ir.Graph, out: ir.Value, concat: ir.Node, sub: ir.Node,
                      z: ir.Value, pos: int) -> None:
    name = out.name
    p = concat.inputs[pos]
    readers = {use.node for use in p.uses()} - {concat, sub}
    dense = z.producer() is not None and z.producer().op_type == "Gemm"
    if pos == 1 and dense and not readers and len(sub.outputs[0].uses()) == 1:
        # [1 - p, p]: p alone is the one-logit classifier ExpandBinaryLogitPass expands
        graph.outputs[0] = p
        graph.remove([concat, sub], safe=True)
        p.name = name
        return
    zero = ir.node("Sub", [z, z], name="onnxdecomp_zero_logit")
    pair = [zero.outputs[0], z] if pos == 1 else [z, zero.outputs[0]]
    logits = ir.node("Concat", pair, attributes={"axis": 1}, name="onnxdecomp_binary_logits")
    graph.extend([zero, logits])
    out.name = f"{name}_probabilities"
    y = logits.outputs[0]
    y.name, y.shape, y.dtype = name, out.shape, out.dtype
    graph.outputs[0] = y


def _is_mixture(v: ir.Value, depth: int = 0) -> bool:
    """Whether ``v`` is a positive combination of softmaxes over its last axis."""
    node = v.producer()
    if node is None or depth > 16:
        return False
    op = node.op_type
    if op == "Softmax":
        x = node.inputs[0]
        return x.shape is not None and list(softmax_axes(node, len(x.shape))) == [
            len(x.shape) - 1]
    if op in ("Sum", "Add", "Mean"):
        return all(_is_mixture(i, depth + 1) for i in node.inputs)
    if op in ("Mul", "Div"):
        a, b = node.inputs[0], node.inputs[1]
        c = _const(b) if op == "Div" else (_const(b) if _const(b) is not None else _const(a))
        other = a if op == "Div" or _const(b) is not None else b
        return c is not None and c.size == 1 and float(c.reshape(-1)[0]) > 0 \
            and _is_mixture(other, depth + 1)
    return False
