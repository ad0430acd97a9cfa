"""FuseMatMulAddIntoGemmPass: one canonical dense layer, Gemm."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, new_initializer, rank


class FuseMatMulAddIntoGemmPass(ir.passes.InPlacePass):
    """Rewrite ``Add(MatMul(x, W), b)`` (and a bare ``MatMul(x, W)``) as ``Gemm(x, W, b)``.

    Requires: x of rank 2, W a constant [K, M], b a constant broadcastable to [M].
    Ensures: every dense layer over rank-2 activations is a Gemm with transA=0, transB=0,
    so the channel rules and the pruner see one form (TorchScript emits Gemm, the dynamo
    exporter and CNTK emit MatMul + Add).
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for mm in list(graph):
            if mm.op_type != "MatMul" or mm.domain not in ("", "ai.onnx"):
                continue
            x, w_val = mm.inputs
            w = const_array(w_val)
            if w is None or w.ndim != 2 or rank(x) != 2 or const_array(x) is not None:
                continue
            out = mm.outputs[0]
            bias, tail = np.zeros(w.shape[1], dtype=w.dtype), out
            uses = list(out.uses())
            if len(uses) == 1 and not out.is_graph_output():
                add = uses[0].node
                other = add.inputs[1 - uses[0].idx] if add.op_type == "Add" else None
                b = const_array(other)
                if b is not None and b.size in (1, w.shape[1]) and b.ndim <= 2:
                    bias, tail = np.broadcast_to(b.reshape(-1), (w.shape[1],)).astype(w.dtype), (
                        add.outputs[0])
            gemm = ir.node(
                "Gemm",
                inputs=[x, w_val, new_initializer(graph, f"{mm.name or 'gemm'}_bias", bias)],
                name=mm.name,
            )
            gemm.outputs[0].shape, gemm.outputs[0].type = tail.shape, tail.type
            graph.insert_after(tail.producer(), gemm)
            ir.convenience.replace_all_uses_with(tail, gemm.outputs[0], replace_graph_outputs=True)
            name = tail.name
            if tail is not out:
                graph.remove(tail.producer(), safe=True)
            graph.remove(mm, safe=True)
            gemm.outputs[0].name = name
            modified = True
        return ir.passes.PassResult(model, modified)
