"""FoldGatherOfConcatPass: picking one slice of a concatenation is picking it from its part."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer


class FoldGatherOfConcatPass(ir.passes.InPlacePass):
    """Rewrite Gather(Concat(p_1, ..., p_n, axis=a), i, axis=a), i a constant scalar, as
    Gather(p_j, i - o_j, axis=a), p_j the part that holds index i and o_j its offset.

    Exporters build a stacked recurrent layer's ``h_n`` as the Concat of every layer's
    final state and read the last layer's from it (``h_n[-1]``): without the Concat, the
    layers' units are not forced to one count each.

    Requires: shapes inferred (the parts' sizes on axis a static).
    Ensures: no such Gather reads a Concat; the Concat is left for RemoveUnusedNodesPass.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Gather" or not is_default_domain(node.domain):
                continue
            concat = node.inputs[0].producer()
            index = const_array(node.inputs[1])
            if concat is None or concat.op_type != "Concat" or index is None or index.ndim:
                continue
            rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else 0
            axis = node.attributes.get_int("axis", 0) % max(rank, 1)
            if not rank or concat.attributes.get_int("axis", 0) % rank != axis:
                continue
            sizes = [p.shape[axis] if p.shape is not None else None for p in concat.inputs]
            if not all(isinstance(n, int) for n in sizes):
                continue
            i = int(index) % sum(sizes)
            ends = np.cumsum(sizes)
            j = int(np.searchsorted(ends, i, side="right"))
            local = new_initializer(graph, f"{node.name}_index",
                                    np.array(i - (ends[j] - sizes[j]), dtype=index.dtype))
            node.replace_input_with(0, concat.inputs[j])
            node.replace_input_with(1, local)
            modified = True
        return ir.passes.PassResult(model, modified)
