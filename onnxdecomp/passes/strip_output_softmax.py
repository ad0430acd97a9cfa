"""StripOutputSoftmaxPass: a classifier's output becomes its logits."""

from __future__ import annotations

import onnx_ir as ir


class StripOutputSoftmaxPass(ir.passes.InPlacePass):
    """Drop a Softmax or LogSoftmax that produces the graph output, over the class axis (the
    last: [N, K], or a tagger's [N, T, K]).

    Log-odds need logits; softmax and log-softmax keep the argmax and shift logits by a
    per-sample constant only, so class log-odds computed from the stripped output equal
    those of the original probabilities.

    Requires: one graph output.
    Ensures: the graph output is the input of the removed op (renamed to the output's name);
    ``self.stripped`` says which op was removed, if any.
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
        if node is None or node.op_type not in ("Softmax", "LogSoftmax"):
            return ir.passes.PassResult(model, False)
        axis = node.attributes.get_int("axis", -1)
        rank = len(out.shape) if out.shape is not None else None
        # The class axis is the last (a tagger's [N, T, K] too); over another axis the op is
        # no per-sample shift of the logits and stays.
        last = axis == -1 or (rank is not None and axis % rank == rank - 1)
        if not last or node.inputs[0].is_graph_input():
            return ir.passes.PassResult(model, False)
        logits = node.inputs[0]
        name = out.name
        graph.outputs[0] = logits
        graph.remove(node, safe=True)
        logits.name = name
        self.stripped = node.op_type
        return ir.passes.PassResult(model, True)
