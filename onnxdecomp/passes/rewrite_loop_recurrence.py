"""RewriteLoopRecurrencePass: a recurrent layer run as an ONNX Loop becomes one RNN, GRU or
LSTM op."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.loop_rnn import reroll_loops


class RewriteLoopRecurrencePass(ir.passes.InPlacePass):
    """Replace a Loop that steps a plain RNN, GRU or LSTM cell through a sequence X [T, N, F]
    (one Gather of X per step by a counter from 0, carried states from zero, constant
    weights, the new state scanned) by that op on X: what tf2onnx writes for Keras 3's GRU,
    SimpleRNN and hard-sigmoid LSTM, which it does not fuse, and jax2onnx for
    ``jax.lax.scan``. The op's gate order, biases, activations and ``linear_before_reset``
    are the candidate that reproduces the loop's body on random inputs (``loop_rnn``); a
    loop none reproduces is left as it is (its channels pinned). The units then have the
    rules, profile and refit of every recurrent op.

    Requires: constants folded (the trip count a constant equal to T), shapes inferred (T
    read off X's shape). Ensures: each such Loop is an RNN, GRU or LSTM node whose Y
    (direction axis squeezed) replaces the scan output, and whose Y_h (and Y_c) squeezed
    the final states.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return ir.passes.PassResult(model, reroll_loops(model))
