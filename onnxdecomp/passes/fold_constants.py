"""FoldConstantsPass: evaluate nodes whose inputs are all constants."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import const_array, new_initializer, run_node
from onnxdecomp.modelio import SMALL_TENSOR_ELEMENTS

# Ops we never fold: randomness, and ops whose output size could explode.
_SKIP = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}


class FoldConstantsPass(ir.passes.InPlacePass):
    """Replace every node whose inputs are all initializers by initializers of its outputs.

    Requires: Constant nodes already lifted to initializers (LiftConstantsToInitializersPass).
    Ensures: no node in the main graph has only constant inputs, except graph outputs and
    nodes with subgraphs; weight reshapes (e.g. CNTK's Reshape of a MatMul weight) become
    plain initializers that later passes can slice.
    """

    def __init__(self, integers_only: bool = False) -> None:
        """``integers_only``: fold only nodes whose inputs are small constants and whose
        outputs are all integers (shape arithmetic: pads and targets computed from
        constants, and old exporters' index constants written as a double cast to int64),
        never a weight."""
        super().__init__()
        self.integers_only = integers_only

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        opsets = dict(model.opset_imports)
        modified = False
        for node in list(graph):
            if node.op_type in _SKIP or node.domain not in ("", "ai.onnx"):
                continue
            if any(a.type == ir.AttributeType.GRAPH for a in node.attributes.values()):
                continue
            inputs = [v for v in node.inputs if v is not None]
            if self.integers_only and not all(_small(v) for v in inputs):
                continue  # (decided before reading: weights may be external, unread)
            arrays = [const_array(v) for v in inputs]
            if any(a is None for a in arrays) or not node.outputs:
                continue
            if any(out.is_graph_output() for out in node.outputs):
                continue
            results = run_node(node, arrays, opsets.get("", 17))
            if results is None:  # an op the reference cannot run stays as it is
                continue
            if self.integers_only and not all(r.dtype.kind in "iu" for r in results):
                continue
            for out, res in zip(node.outputs, results):
                init = new_initializer(graph, f"{out.name}_folded", res)
                ir.convenience.replace_all_uses_with(out, init)
            graph.remove(node, safe=True)
            modified = True
        return ir.passes.PassResult(model, modified)


def _small(value: ir.Value) -> bool:
    """A constant held in memory (not external data) of at most a few elements."""
    tensor = value.const_value
    return tensor is not None and not isinstance(tensor, ir.ExternalTensor) and \
        tensor.size <= SMALL_TENSOR_ELEMENTS
