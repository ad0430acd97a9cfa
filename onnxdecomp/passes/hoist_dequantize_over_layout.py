"""HoistDequantizeOverLayoutPass: layout ops act on dequantised values, not on int8 ones."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import const_array, copy_attributes, is_default_domain, replace_node

# Ops that only move or regroup a tensor's elements, whatever their type.
_LAYOUT = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


class HoistDequantizeOverLayoutPass(ir.passes.InPlacePass):
    """Rewrite ``DequantizeLinear(L(q))`` as ``L(DequantizeLinear(q))`` for a layout op L
    (Transpose, Reshape, Flatten, Squeeze, Unsqueeze) and a per-tensor scale and zero point.

    Dequantisation is elementwise, y = (q - z) * s, with one s and z for the whole tensor, so
    it commutes with any op that only moves elements: the two forms are equal bit for bit.
    tf2onnx writes a quantised TFLite model's NHWC transposes and flattens between a
    QuantizeLinear and its DequantizeLinear, on int8; hoisted, they are the float layout ops
    the other passes read (``FoldTransposeIntoDensePass``), the Q/DQ pair becomes adjacent.

    Requires: constants lifted to initializers. Ensures: no per-tensor DequantizeLinear reads
    a layout op whose input is computed (a constant one is left to folding: a weight's); a
    layout op hoisted over was removed when nothing else read it.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            while _hoistable(node):
                layout = node.inputs[0].producer()
                dq = ir.Node("", "DequantizeLinear", [layout.inputs[0], *node.inputs[1:]],
                             attributes=copy_attributes(node),
                             name=f"{node.name}_hoisted", num_outputs=1)
                dq.outputs[0].name = f"{layout.inputs[0].name}_dequantized"
                moved = ir.Node("", layout.op_type, [dq.outputs[0], *layout.inputs[1:]],
                                attributes=copy_attributes(layout),
                                name=f"{layout.name}_float", num_outputs=1)
                replace_node(graph, node, [dq, moved])
                if not layout.outputs[0].uses() and not layout.outputs[0].is_graph_output():
                    graph.remove(layout, safe=True)
                node, modified = dq, True
        return ir.passes.PassResult(model, modified)


def _hoistable(node: ir.Node) -> bool:
    if node.op_type != "DequantizeLinear" or not is_default_domain(node.domain):
        return False
    layout = node.inputs[0].producer()
    if layout is None or layout.op_type not in _LAYOUT or not is_default_domain(layout.domain):
        return False
    if const_array(layout.inputs[0]) is not None:
        return False  # a constant weight's: folded whole
    params = [const_array(v) for v in node.inputs[1:] if v is not None]
    return all(p is not None and p.size == 1 for p in params)
