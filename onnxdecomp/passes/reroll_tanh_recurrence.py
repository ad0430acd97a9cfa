"""RerollTanhRecurrencePass: a vanilla RNN unrolled into per-step ops becomes one ONNX RNN."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.unrolled_rnn import reroll


class RerollTanhRecurrencePass(ir.passes.InPlacePass):
    """Replace h_t = tanh(h_{t-1} W_hh + b_hh + P[t]), t = 0 .. T-1, with h_{-1} = 0 and
    P = X W_ih + b_ih over the whole sequence X [T, N, I], by ``RNN(X)`` (hidden size H,
    W = W_ih^T, R = W_hh^T, B = [b_ih, b_hh]): what PyTorch's dynamo exporter writes for
    ``nn.RNN`` (it unrolls the recurrence into MatMul, Add and Tanh per step), while the
    TorchScript exporter writes the RNN op. The recurrent layer's units then have the rules,
    profile and refit every RNN/GRU/LSTM has.

    Steps taken from P's last row back to its first are a ``reverse`` RNN (the backward
    half of a bidirectional layer). The last step's value becomes the RNN's Y_h ([1, N, H],
    squeezed where the step was [N, H]); the steps concatenated in time order (the layer's
    output sequence) become Y with its direction axis squeezed; another step read elsewhere
    is Y's row t. Anything else (a non-zero initial state, steps out of order, another
    nonlinearity, weights that differ between steps) is left as it is.

    Requires: constants lifted to initializers. Ensures: each such chain is one RNN node
    (its old steps left for dead-node removal).
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return ir.passes.PassResult(model, reroll(model))
