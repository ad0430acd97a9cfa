"""RelaxExpandTargetsPass: Expand targets say 1 where the input already has the size."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, fresh_name, new_initializer


class RelaxExpandTargetsPass(ir.passes.InPlacePass):
    """Write 1 into an Expand's target shape on every axis where the input already has that
    size (> 1): Expand broadcasts, so the output is the same, and a channel count no longer
    stands in the target (``x * gate.expand_as(x)``: the target is ``Shape(x)``; dynamo
    concatenates the batch with the constant sizes). Pruning then changes nothing there.

    A constant target is rewritten; a computed one of static length becomes
    ``target * keep + relax`` (int64 constants, relax = 1 - keep on those axes).
    Requires: shapes inferred. Ensures: no Expand target names a size its input has.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph, modified = model.graph, False
        for node in list(graph):
            if node.op_type != "Expand" or len(node.inputs) < 2:
                continue
            x, target, y = node.inputs[0], node.inputs[1], node.outputs[0]
            if x.shape is None or y.shape is None:
                continue
            shift = len(y.shape) - len(x.shape)
            relax = np.zeros(len(y.shape), np.int64)
            for a, d in enumerate(x.shape):
                if isinstance(d, int) and d > 1 and y.shape[a + shift] == d:
                    relax[a + shift] = 1
            if not relax.any():
                continue
            const = const_array(target)
            if const is not None:
                if const.shape != relax.shape or not np.any(const[relax == 1] != 1):
                    continue
                node.replace_input_with(1, new_initializer(
                    graph, f"{node.name}_target", np.where(relax == 1, 1, const)))
            elif target.shape is not None and list(target.shape) == [len(relax)]:
                keep = new_initializer(graph, f"{node.name}_keep", 1 - relax)
                ones = new_initializer(graph, f"{node.name}_relax", relax)
                mul = ir.node("Mul", [target, keep], name=f"{node.name}_target_keep")
                mul.outputs[0].name = fresh_name(graph, mul.name)
                graph.insert_before(node, mul)
                add = ir.node("Add", [mul.outputs[0], ones], name=f"{node.name}_target")
                add.outputs[0].name = fresh_name(graph, add.name)
                graph.insert_before(node, add)
                node.replace_input_with(1, add.outputs[0])
            else:
                continue
            modified = True
        return ir.passes.PassResult(model, modified)
