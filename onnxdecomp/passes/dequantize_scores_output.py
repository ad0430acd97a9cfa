"""DequantizeScoresOutputPass: a classifier's int8 scores become the floats they stand for."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import copy_attributes, is_default_domain


class DequantizeScoresOutputPass(ir.passes.InPlacePass):
    """Append ``DequantizeLinear`` with the same scale and zero point to an output made by
    ``QuantizeLinear`` (a fully integer TFLite model through tf2onnx: int8 logits).

    y = (q - z) * s are the scores the int8 values stand for: log-odds need real numbers,
    and every module then gives the parent's dequantised scores exactly, not a rounding of
    them. The argmax is the int8 one's, ties aside (two classes rounded to one code).

    Requires: one graph output. Ensures: the output is float, under its old name, when it
    was a QuantizeLinear's; else nothing changes.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        if len(graph.outputs) != 1:
            return ir.passes.PassResult(model, False)
        out = graph.outputs[0]
        quantize = out.producer()
        if quantize is None or quantize.op_type != "QuantizeLinear" or \
                not is_default_domain(quantize.domain):
            return ir.passes.PassResult(model, False)
        name = out.name
        out.name = f"{name}_quantized"
        dq = ir.Node("", "DequantizeLinear", [out, *quantize.inputs[1:]],
                     attributes=copy_attributes(quantize, ("axis", "block_size")),
                     name=f"{quantize.name}_scores", num_outputs=1)
        scores = dq.outputs[0]
        scores.name, scores.shape = name, out.shape
        scores.dtype = (quantize.inputs[1].dtype if quantize.inputs[1].dtype is not None
                        else ir.DataType.FLOAT)
        graph.append(dq)
        graph.outputs[0] = scores
        return ir.passes.PassResult(model, True)
