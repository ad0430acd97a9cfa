"""RewriteEinsumAsMatMulPass: an Einsum that is a dense layer becomes MatMul."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer, replace_node


def matmul_form(equation: str) -> bool | None:
    """For ``x, W`` subscripts ``"<a>k,<W>-><a>o"`` (``<a>`` any letters or ``...``, W two
    letters: ``ko`` or ``ok``): whether W is read transposed (``ok``); None for any other
    equation."""
    eq = equation.replace(" ", "")
    if eq.count("->") != 1 or eq.count(",") != 1:
        return None
    lhs, out = eq.split("->")
    a, w = lhs.split(",")
    if len(a) < 2 or len(w) != 2 or "." in w or w[0] == w[1]:
        return None
    k = a[-1]
    if k not in w or k in out or k in a[:-1]:
        return None
    o = w[1] if w[0] == k else w[0]
    if o in a or out != a[:-1] + o:
        return None
    return w[0] == o


class RewriteEinsumAsMatMulPass(ir.passes.InPlacePass):
    """``Einsum("nk,ko->no", x, W)`` (also ``"...k,ok->...o"``, ``"btk,ko->bto"``: Keras'
    EinsumDense and ``torch.einsum`` dense layers) is ``MatMul(x, W)`` with W constant,
    transposed where its subscripts put the output axis first; the dense rules then apply.
    Requires: constants lifted to initializers. Ensures: such Einsums are MatMul; others
    are left for the channel rules to name.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph, modified = model.graph, False
        for node in list(graph):
            if node.op_type != "Einsum" or not is_default_domain(node.domain) \
                    or len(node.inputs) != 2:
                continue
            transposed = matmul_form(node.attributes.get_string("equation", ""))
            w = const_array(node.inputs[1])
            if transposed is None or w is None or w.ndim != 2:
                continue
            if transposed:
                weight = new_initializer(graph, f"{node.inputs[1].name}_transposed",
                                         np.ascontiguousarray(w.T))
            else:
                weight = node.inputs[1]
            replace_node(graph, node, [ir.node("MatMul", [node.inputs[0], weight],
                                               name=node.name)])
            modified = True
        return ir.passes.PassResult(model, modified)
