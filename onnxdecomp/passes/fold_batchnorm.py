"""FoldBatchNormIntoConvPass: Conv followed by inference BatchNormalization becomes one Conv."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, new_initializer


class FoldBatchNormIntoConvPass(ir.passes.InPlacePass):
    """Fold ``BatchNormalization(Conv(x, W, b))`` into ``Conv(x, W', b')``.

    With s = gamma / sqrt(var + eps): W'[o] = W[o] * s[o], b' = (b - mean) * s + beta,
    computed in the weights' type in ONNX Runtime's order: the Conv it fuses itself when it
    runs the parent, bit for bit (a float64 fold differs by rounding, and a deep net's
    log-odds by more than 1e-5).

    Requires: BN parameters and Conv weights are initializers; the Conv output feeds only
    the BN; BN in inference mode (one output).
    Ensures: such pairs are fused; any other BatchNormalization stays, and the channel
    rules handle it as a per-channel affine op.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        modified = False
        for bn in list(graph):
            if bn.op_type != "BatchNormalization" or len(bn.outputs) != 1:
                continue
            conv = bn.inputs[0].producer() if bn.inputs[0] is not None else None
            if conv is None or conv.op_type not in ("Conv", "ConvTranspose"):
                continue
            if len(bn.inputs[0].uses()) != 1 or bn.inputs[0].is_graph_output():
                continue
            params = [const_array(v) for v in bn.inputs[1:5]]
            w = const_array(conv.inputs[1])
            if w is None or any(p is None for p in params):
                continue
            gamma, beta, mean, var = (p.astype(w.dtype) for p in params)
            eps = w.dtype.type(bn.attributes.get_float("epsilon", 1e-5))
            s = gamma / np.sqrt(var + eps)
            b = const_array(conv.inputs[2]) if len(conv.inputs) > 2 else None
            b = np.zeros_like(mean) if b is None else b.astype(w.dtype)
            if conv.op_type == "Conv":
                w_new = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
            else:  # ConvTranspose weights are [Cin, Cout/g, k...]; only g == 1 is folded
                if conv.attributes.get_int("group", 1) != 1:
                    continue
                w_new = w * s.reshape((1, -1) + (1,) * (w.ndim - 2))
            b_new = (b - mean) * s + beta
            dtype = w.dtype
            w_val = new_initializer(graph, f"{conv.inputs[1].name}_bnfold", w_new.astype(dtype))
            b_val = new_initializer(graph, f"{bn.name or 'bn'}_bias", b_new.astype(dtype))
            conv.replace_input_with(1, w_val)
            if len(conv.inputs) > 2:
                conv.replace_input_with(2, b_val)
            else:
                conv.resize_inputs(3)
                conv.replace_input_with(2, b_val)
            out = bn.outputs[0]
            ir.convenience.replace_all_uses_with(out, conv.outputs[0], replace_graph_outputs=True)
            graph.remove(bn, safe=True)
            if conv.outputs[0].is_graph_output():
                conv.outputs[0].name = out.name  # the graph output keeps its public name
            modified = True
        return ir.passes.PassResult(model, modified)
