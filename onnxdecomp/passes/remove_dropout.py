"""RemoveDropoutPass: inference-time Dropout is the identity."""

from __future__ import annotations

import onnx_ir as ir


class RemoveDropoutPass(ir.passes.InPlacePass):
    """Rewrite inference Dropout nodes as Identity, for IdentityEliminationPass to remove.

    Requires: the model is used for inference (training_mode absent or constant false).
    Ensures: no Dropout node whose mask output is unused remains.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Dropout" or node.domain not in ("", "ai.onnx"):
                continue
            if len(node.outputs) > 1 and node.outputs[1].uses():
                continue  # the mask is consumed: not ours to drop
            identity = ir.node("Identity", inputs=[node.inputs[0]], name=node.name)
            ir.convenience.replace_all_uses_with(
                node.outputs[0], identity.outputs[0], replace_graph_outputs=True
            )
            old = node.outputs[0]
            identity.outputs[0].shape, identity.outputs[0].type = old.shape, old.type
            graph.insert_after(node, identity)
            graph.remove(node, safe=True)
            identity.outputs[0].name = old.name  # keep the public name once the old one is gone
            modified = True
        return ir.passes.PassResult(model, modified)
