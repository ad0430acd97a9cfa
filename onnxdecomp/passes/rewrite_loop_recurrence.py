"""RewriteLoopRecurrencePass: a recurrent layer run as an ONNX Loop becomes one RNN or GRU."""

from __future__ import annotations

import onnx_ir as ir

from onnxdecomp.loop_rnn import reroll_loops


class RewriteLoopRecurrencePass(ir.passes.InPlacePass):
    """Replace a Loop that steps a plain RNN or GRU cell through a sequence X [T, N, F] (one
    Gather of X per step by a counter from 0, a carried state from zero, constant weights,
    the new state scanned) by that op on X: what tf2onnx writes for Keras 3's GRU and
    SimpleRNN, which it does not fuse. The op's gate order, biases and
    ``linear_before_reset`` are the candidate that reproduces the loop's body on random
    inputs (``loop_rnn``); a loop none reproduces is left as it is (its channels pinned).
    The units then have the rules, profile and refit of every recurrent op.

    Requires: constants folded (the trip count a constant equal to T). Ensures: each such
    Loop is an RNN or GRU node whose Y (direction axis squeezed) replaces the scan output
    and whose Y_h (squeezed) the final state.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return ir.passes.PassResult(model, reroll_loops(model))
