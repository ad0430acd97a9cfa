"""Rules for the ONNX recurrent ops RNN, LSTM and GRU (layout 0).

A hidden unit is one channel across every gate block: with G gates (LSTM 4: i, o, f, c;
GRU 3: z, r, h; RNN 1) and H units, unit h owns rows g * H + h of W [D, G*H, I], R [D, G*H, H]
and both halves of B [D, 2*G*H], column h of R, and for an LSTM rows g * H + h of the
peepholes P [D, 3*H]. Removing it slices all of them and sets ``hidden_size``.

The outputs put the units of the D directions side by side: Y [T, D, N, H] on axes (1, 3),
Y_h and Y_c [D, N, H] on axes (0, 2), channel d * H + h. One ``hidden_size`` serves every
direction, so unit h of one direction is tied to unit h of the others: they are kept or
removed together (the directions' own units are not otherwise related).

The op reads its input X [T, N, I] through W like a dense layer, so it is a consumer of
X's channels (kind ``rnn``): when X lost channels, ``refit`` re-solves W's kept columns and
the input bias Wb for the gate pre-activations W x + Wb, linear in x. Each direction's R
reads that direction's own state h_{t-1} the same way (kind ``rnn_state``, profiled from Y
one step back): when units go, R's kept columns and Rb are re-solved to reproduce the
parent's R h_{t-1} + Rb from the kept units of the parent's own states, the units that
stay absorbing what the removed ones fed back. A GRU with ``linear_before_reset=0``
multiplies h_{t-1} by the reset gate before R_h reads it, so its R_h is sliced, not refitted.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels.graph import ChannelGraph, Consumer
from onnxdecomp.channels.rules.base import PruneContext, Rule
from onnxdecomp.channels.weights import recurrent_bias
from onnxdecomp.errors import node_error
from onnxdecomp.irutil import RNN_GATES, const_array, input_at, new_initializer

X, W, R, B, SEQUENCE_LENS, INITIAL_H, INITIAL_C, P = range(8)


def directions(node: ir.Node) -> int:
    return 2 if node.attributes.get_string("direction", "forward") == "bidirectional" else 1


def hidden_size(node: ir.Node) -> int:
    return node.attributes.get_int("hidden_size", 0) or const_array(node.inputs[R]).shape[-1]


def unit_rows(node: ir.Node, units: np.ndarray, gates: int | None = None) -> np.ndarray:
    """Rows g * H + h of one direction's gate blocks for the units ``units``."""
    h, g = hidden_size(node), gates or RNN_GATES[node.op_type]
    return (np.arange(g)[:, None] * h + np.asarray(units)[None, :]).reshape(-1)


def state_outputs(node: ir.Node) -> list[ir.Value]:
    """Y, Y_h (and Y_c) as far as the node has them."""
    return [v for v in node.outputs if v is not None and v.name]


class RecurrentRule(Rule):
    """RNN, LSTM and GRU with layout 0, any activations (pruning a hidden unit removes its
    rows of every gate and its columns of R whatever the gates compute; statistics and
    refits are measured, never simulated)."""

    def origin(self, node: ir.Node) -> bool:
        return True  # its units exist whatever its input is

    def _check(self, node: ir.Node) -> None:
        if node.attributes.get_int("layout", 0) != 0:
            raise node_error(node, "layout=1 (batch first) has no rule; export with layout 0")
        for i in (W, R):
            if const_array(node.inputs[i]) is None:
                raise node_error(node, "weights are computed, not constant")
        for i in (B, P):
            if len(node.inputs) > i and node.inputs[i] is not None and \
                    const_array(node.inputs[i]) is None:
                raise node_error(node, "bias or peepholes are computed, not constant")

    def declare(self, node: ir.Node, cg: ChannelGraph) -> None:
        self._check(node)
        units = directions(node) * hidden_size(node)
        for i, v in enumerate(node.outputs):
            if v is not None and v.name:
                cg.add_space(v, units, 1, (1, 3) if i == 0 else (0, 2))

    def couple(self, node: ir.Node, cg: ChannelGraph) -> None:
        x, outs = node.inputs[X], state_outputs(node)
        if cg.has(x) and not set(cg.roots(x).tolist()) <= cg.pinned_roots():
            if cg.axes[x.name] != (2,):
                raise node_error(node, f"input channels on axes {list(cg.axes[x.name])}, "
                                 "not on the feature axis 2 of [T, N, I]")
            cg.consumers.append(Consumer(node, x, "rnn"))
        h, d = hidden_size(node), directions(node)
        y = node.outputs[0]
        if not (y is not None and y.name):
            raise node_error(node, "output Y is unnamed; run NameRecurrentOutputsPass")
        for j in range(d):
            cg.consumers.append(Consumer(node, y, "rnn_state", j))
        for v in outs[1:]:
            cg.unify_all(outs[0], v, node)
        for j in range(1, d):  # one hidden_size: unit h of every direction together
            for c in range(h):
                cg.unify(outs[0], j * h + c, outs[0], c)
        for i in (INITIAL_H, INITIAL_C):
            v = input_at(node, i)
            if v is None or const_array(v) is not None or _expanded_constant(v) is not None:
                continue  # absent (zeros) or a constant, sliced by ``prune``
            # [dirs, N, H] with the units on axes 0 and 2, or, one direction, on axis 2 alone
            # (a dense layer's units unsqueezed: an RNN conditioned on an encoder)
            if cg.has(v) and (cg.axes[v.name] == (0, 2) or (
                    cg.axes[v.name] == (2,) and d == 1 and cg.size[v.name] == h)):
                cg.unify_all(v, outs[0], node)
                continue
            # A state that no pruned channel reaches (the caller's, or a slice of it per
            # layer): it holds every unit, so all of them stay.
            if not cg.has(v) or set(cg.roots(v).tolist()) <= cg.pinned_roots():
                # named by the state: the user gave it, the layer only reads it
                cg.pin(outs[0], f"the initial state {v.name!r} of {node.op_type} {node.name!r}")
                continue
            raise node_error(node, f"initial state {v.name!r} is computed from pruned "
                             "channels on other axes than [dirs, N, H]; no rule")

    def prune(self, node: ir.Node, ctx: PruneContext) -> None:
        x, outs = node.inputs[X], state_outputs(node)
        h, d, g = hidden_size(node), directions(node), RNN_GATES[node.op_type]
        kept = ctx.kept(outs[0])
        units = kept[kept < h]
        x_changed = ctx.cg.has(x) and ctx.changed(x)
        if len(units) == h and not x_changed:
            return
        rows = unit_rows(node, units)
        w = const_array(node.inputs[W])
        dtype = w.dtype
        bias = node.inputs[B] if len(node.inputs) > B else None
        b = recurrent_bias(node)
        w_in = np.concatenate([w[:, rows].astype(np.float64),
                               b[:, :g * h][:, rows, None].astype(np.float64)], axis=2)
        if x_changed:  # the gate pre-activations W x + Wb of every direction at once
            cols = np.append(ctx.kept(x), w.shape[2])
            flat = ctx.refit(node, w_in.reshape(d * len(rows), -1), cols)
            w_in = flat.reshape(d, len(rows), -1)
        ctx.replace(node, W, w_in[:, :, :-1].astype(dtype))
        r = const_array(node.inputs[R])
        w_state = np.concatenate([r[:, rows].astype(np.float64),
                                  b[:, g * h:][:, rows, None].astype(np.float64)], axis=2)
        w_state = np.stack([self._refit_state(node, ctx, w_state[j], units, j)
                            for j in range(d)])
        ctx.replace(node, R, w_state[:, :, :-1].astype(dtype))
        new_b = np.concatenate([w_in[:, :, -1], w_state[:, :, -1]], axis=1).astype(dtype)
        if bias is not None:
            ctx.replace(node, B, new_b)
        elif np.any(new_b):
            node.resize_inputs(max(len(node.inputs), B + 1))
            node.replace_input_with(B, new_initializer(ctx.graph, f"{node.name}_B", new_b))
        for i in (INITIAL_H, INITIAL_C):
            v = input_at(node, i)
            if v is not None and (state := const_array(v)) is not None:
                ctx.replace(node, i, state[:, :, units])
            elif v is not None and (expand := _expanded_constant(v)) is not None:
                ctx.replace(expand, 0, const_array(expand.inputs[0])[..., units])
        if len(node.inputs) > P and node.inputs[P] is not None:
            ctx.replace(node, P, const_array(node.inputs[P])[:, unit_rows(node, units, 3)])
        node.attributes["hidden_size"] = ir.AttrInt64("hidden_size", len(units))

    def _refit_state(self, node: ir.Node, ctx: PruneContext, w: np.ndarray,
                     units: np.ndarray, d: int) -> np.ndarray:
        """[R_d | Rb_d] of the kept rows, re-solved for the kept units (bias column last)."""
        h = hidden_size(node)
        cols = np.append(units, h)
        if len(units) == h:
            return w
        out = ctx.refit(node, w, cols, key=Consumer(node, node.outputs[0], "rnn_state", d).key)
        if node.op_type == "GRU" and not node.attributes.get_int("linear_before_reset", 0):
            n = len(units)
            out[2 * n:] = w[2 * n:][:, cols]  # R_h reads r * h_{t-1}: no refit from h_{t-1}
        return out


def _expanded_constant(state: ir.Value) -> ir.Node | None:
    """The Expand that broadcasts a constant [D or 1, 1, H] to a state [D, N, H] (a learned
    initial state: ``h0.expand(D, N, H)``; dynamo then slices one layer's states out of it
    along axis 0), whose target says 1 on the unit axis (``RelaxExpandTargetsPass``), or
    None."""
    node = state.producer()
    while node is not None and node.op_type == "Slice" and len(node.inputs) > 3 \
            and (axes := const_array(node.inputs[3])) is not None and list(axes) == [0]:
        node = node.inputs[0].producer()
    if node is None or node.op_type != "Expand":
        return None
    const, target = const_array(node.inputs[0]), const_array(node.inputs[1])
    if const is None or const.ndim != 3 or state.shape is None or len(state.shape) != 3 \
            or const.shape[2] != state.shape[2] or (target is not None and target[2] != 1):
        return None
    return node


RECURRENT = RecurrentRule()
RULES: dict[str, Rule] = dict.fromkeys(RNN_GATES, RECURRENT)
