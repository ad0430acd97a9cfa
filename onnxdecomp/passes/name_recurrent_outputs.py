"""NameRecurrentOutputsPass: a recurrent op's hidden states Y get a name to be read by."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.irutil import RNN_GATES, fresh_name, is_default_domain


class NameRecurrentOutputsPass(ir.passes.InPlacePass):
    """Name the unnamed Y output (every step's hidden state) of RNN, GRU and LSTM nodes.

    Exporters leave Y unnamed when only the final state is used; the profiler reads Y to
    fit the recurrent weights R from the states they see, and an unnamed output cannot be
    asked for. Naming it changes no computation.

    Requires: nothing. Ensures: every recurrent node's first output has a unique name.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in model.graph:
            if node.op_type not in RNN_GATES or not is_default_domain(node.domain):
                continue
            y = node.outputs[0]
            if not y.name:
                y.name = fresh_name(model.graph, f"{node.name or node.op_type}_Y")
                modified = True
        return ir.passes.PassResult(model, modified)
