"""RewriteEinsumAsMatMulPass: an Einsum that is a dense layer, or a batched product of two
tensors (attention's scores and context written with ``torch.einsum``), becomes MatMul."""

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


def batched_form(equation: str) -> tuple[bool, bool, bool] | None:
    """For ``"<B>ij,<B>jk-><B>ik"`` (the same batch letters ``<B>`` in order on all three, each
    operand's and the output's last two letters in either order, one letter contracted):
    whether the first operand, the second and the product are read transposed (last two
    axes swapped) against ``[B, i, j] @ [B, j, k] = [B, i, k]``; None for any other."""
    eq = equation.replace(" ", "")
    if eq.count("->") != 1 or eq.count(",") != 1 or "." in eq:
        return None
    lhs, out = eq.split("->")
    a, b = lhs.split(",")
    if not (len(a) == len(b) == len(out) >= 2) or len(set(a)) < len(a) or \
            len(set(b)) < len(b) or a[:-2] != b[:-2] or a[:-2] != out[:-2]:
        return None
    shared = set(a[-2:]) & set(b[-2:])
    if len(shared) != 1:
        return None
    (c,) = shared
    i, k = a[-2:].replace(c, ""), b[-2:].replace(c, "")
    if c in out or {i, k} != set(out[-2:]) or i == k:
        return None
    return a[-2] == c, b[-1] == c, out[-2] == k


class RewriteEinsumAsMatMulPass(ir.passes.InPlacePass):
    """``Einsum("nk,ko->no", x, W)`` (also ``"...k,ok->...o"``, ``"btk,ko->bto"``: Keras'
    EinsumDense and ``torch.einsum`` dense layers) is ``MatMul(x, W)`` with W constant,
    transposed where its subscripts put the output axis first; the dense rules then apply.
    ``Einsum("bhid,bhjd->bhij", q, k)`` and ``"bhij,bhjd->bhid"`` (attention's scores and
    context, any batched product of two tensors: ``batched_form``) are MatMul with the last
    two axes of an operand or of the product transposed where the subscripts say; the
    attention rules then apply.
    Requires: constants lifted to initializers. Ensures: such Einsums are MatMul; others
    are left for the channel rules to name.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph, modified = model.graph, False
        for node in list(graph):
            if node.op_type != "Einsum" or not is_default_domain(node.domain) \
                    or len(node.inputs) != 2:
                continue
            equation = node.attributes.get_string("equation", "")
            transposed = matmul_form(equation)
            w = const_array(node.inputs[1])
            if transposed is None or w is None or w.ndim != 2:
                batched = batched_form(equation)
                if batched is not None:
                    replace_node(graph, node, _batched(node, *batched))
                    modified = True
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


def _batched(node: ir.Node, ta: bool, tb: bool, tout: bool) -> list[ir.Node]:
    """MatMul of the operands (last two axes swapped where ``ta``, ``tb``), and of the
    product where ``tout``: the nodes, in order."""
    rank = len(node.attributes.get_string("equation", "").replace(" ", "").split(",")[0])
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    nodes, operands = [], []
    for value, swap, tag in ((node.inputs[0], ta, "a"), (node.inputs[1], tb, "b")):
        if swap:
            nodes.append(ir.node("Transpose", [value], attributes={"perm": perm},
                                 name=f"{node.name}_{tag}"))
            value = nodes[-1].outputs[0]
        operands.append(value)
    nodes.append(ir.node("MatMul", operands, name=node.name if not tout else
                         f"{node.name}_product"))
    if tout:
        nodes.append(ir.node("Transpose", [nodes[-1].outputs[0]], attributes={"perm": perm},
                             name=node.name))
    for n in nodes:
        n.outputs[0].name = n.name
    return nodes
