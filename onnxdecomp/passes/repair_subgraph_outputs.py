"""RepairSubgraphOutputsPass: a branch returns a value of its own, not an outer one."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import fresh_name


class RepairSubgraphOutputsPass(ir.passes.InPlacePass):
    """Give every subgraph output that is an outer-scope value an Identity inside the
    subgraph. onnx-ir's Identity elimination (1.1) removes ``y = Identity(x)`` returned by
    an If branch even when x comes from the outer graph, and ONNX Runtime refuses such a
    model ("Subgraph output is an outer scope value being returned directly"). Requires:
    nothing. Ensures: each subgraph output is produced by a node of that subgraph or is
    one of its inputs.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            for attr in node.attributes.values():
                if attr.type != ir.AttributeType.GRAPH:
                    continue
                sub = attr.as_graph()
                for i, out in enumerate(list(sub.outputs)):
                    producer = out.producer()
                    if out in sub.inputs or (producer is not None and producer.graph is sub):
                        continue
                    ident = ir.node("Identity", [out], name=f"{node.name}_{attr.name}_{i}")
                    ident.outputs[0].name = fresh_name(model.graph, f"{out.name}_{attr.name}")
                    ident.outputs[0].shape, ident.outputs[0].type = out.shape, out.type
                    sub.append(ident)
                    sub.outputs[i] = ident.outputs[0]
                    modified = True
        return ir.passes.PassResult(model, modified)
