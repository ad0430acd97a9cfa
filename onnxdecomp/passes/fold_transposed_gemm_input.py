"""FoldTransposedGemmInputPass: a Gemm that transposes back a transposed input reads the
input itself."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import is_default_domain


class FoldTransposedGemmInputPass(ir.passes.InPlacePass):
    """Rewrite ``Gemm(Transpose(x, [1, 0]), W, transA=1)`` as ``Gemm(x, W)``.

    transA = 1 multiplies A^T: A = x^T makes it x, the samples on the first axis again, the
    form the channel rules read (a dense layer ported from column-major code, written
    ``(W @ x.T).T``-style by hand). The Transpose goes where nothing else reads it.

    Requires: nothing. Ensures: no Gemm with transA = 1 reads a 2-D Transpose; other
    transA = 1 Gemms are left (the analysis names them).
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.op_type != "Gemm" or not is_default_domain(node.domain) or \
                    not node.attributes.get_int("transA", 0):
                continue
            transpose = node.inputs[0].producer()
            if transpose is None or transpose.op_type != "Transpose" or \
                    list(transpose.attributes.get_ints("perm", [1, 0])) != [1, 0]:
                continue
            a = node.inputs[0]
            node.replace_input_with(0, transpose.inputs[0])
            node.attributes["transA"] = ir.AttrInt64("transA", 0)
            if not a.uses() and not a.is_graph_output():
                graph.remove(transpose, safe=True)
            modified = True
        return ir.passes.PassResult(model, modified)
