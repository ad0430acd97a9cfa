"""The candidate ops a recurrent loop's body may be (``loop_rnn``): ONNX RNN, GRU and LSTM
with every gate order, bias placement and activation worth trying, and one step of each in
numpy, to be held against the body itself.

ONNX's equations, weights W [G*H, F] and R [G*H, H] in the op's gate order, B = [W_b, R_b]:

- RNN:  h' = f(x W^T + h R^T + W_b + R_b)
- GRU (gates z, r, n):  z = s(.), r = s(.), n = tanh(x W_n^T + W_bn + r * (h R_n^T + R_bn))
  with ``linear_before_reset``, else tanh(x W_n^T + W_bn + (r * h) R_n^T + R_bn);
  h' = (1 - z) * n + z * h
- LSTM (gates i, o, f, c):  c' = f * c + i * tanh(.), h' = o * tanh(c'), i, o, f through
  the gate activation (sigmoid, or a hard sigmoid max(0, min(1, a x + b)): Keras 2's
  a = 0.2, Keras 3's a = 1/6, both b = 0.5)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = {"Tanh": np.tanh, "Relu": lambda z: np.maximum(z, 0.0),
               "Sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z))}
_HARD_SIGMOIDS = ((0.2, 0.5), (1 / 6, 0.5))


@dataclass
class Cell:
    """What a candidate op needs: its type, attributes and ONNX-ordered W, R, B."""

    op: str
    attributes: dict
    w: np.ndarray  # [G*H, F]
    r: np.ndarray  # [G*H, H]
    b: np.ndarray  # [2*G*H]
    gate: tuple[float, float] | None = field(default=None)  # a hard sigmoid's (a, b)


def biases(constants: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """[W_b, R_b] candidates ([2 * size]) from the body's constants: one of twice ``size``
    (either half first), one of ``size`` beside zeros, or two of ``size`` (either first)."""
    zero = np.zeros(size)
    halves: list[np.ndarray] = []
    out: list[np.ndarray] = [np.zeros(2 * size)]
    for a in constants:
        if a.dtype.kind != "f" or a.size not in (size, 2 * size):
            continue
        flat = a.astype(np.float64).reshape(-1)
        if a.size == 2 * size:
            out += [flat, np.concatenate([flat[size:], flat[:size]])]
        else:
            halves.append(flat)
    for a in halves:
        out += [np.concatenate([a, zero]), np.concatenate([zero, a])]
    out += [np.concatenate([a, b]) for a, b in itertools.permutations(halves, 2)]
    seen: list[np.ndarray] = []
    for b in out:
        if not any(np.array_equal(b, s) for s in seen):
            seen.append(b)
            yield b


def candidates(constants: list[np.ndarray], w: np.ndarray, r: np.ndarray,
               gates: int) -> Iterator[Cell]:
    """Every op for weights ``w`` [F, G*H] and ``r`` [H, G*H] in the body's column order."""
    hidden = r.shape[0]
    w, r = w.astype(np.float64), r.astype(np.float64)
    for bias in biases(constants, gates * hidden):
        if gates == 1:
            for act in ACTIVATIONS:
                yield Cell("RNN", {"activations": [act]}, w.T, r.T, bias)
            continue
        for order in itertools.permutations(range(gates)):
            cols = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in order])
            b = bias.reshape(2, -1)[:, cols].reshape(-1)
            wc, rc = w[:, cols].T, r[:, cols].T
            if gates == 3:
                for lbr in (0, 1):
                    yield Cell("GRU", {"linear_before_reset": lbr}, wc, rc, b)
                continue
            yield Cell("LSTM", {}, wc, rc, b)
            for a, beta in _HARD_SIGMOIDS:
                yield Cell("LSTM", {"activations": ["HardSigmoid", "Tanh", "Tanh"],
                                    "activation_alpha": [a], "activation_beta": [beta]},
                           wc, rc, b, (a, beta))


def run_cell(cell: Cell, x: np.ndarray, h: np.ndarray,
             c: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One step of the op in numpy: (h', c'), c' None but for an LSTM."""
    size = cell.w.shape[0]
    wb, rb = cell.b[:size], cell.b[size:]
    if cell.op == "RNN":
        act = ACTIVATIONS[cell.attributes["activations"][0]]
        return act(x @ cell.w.T + h @ cell.r.T + wb + rb), None
    sig = ACTIVATIONS["Sigmoid"]
    if cell.op == "LSTM":
        if cell.gate is not None:
            a, beta = cell.gate
            sig = lambda z: np.clip(a * z + beta, 0.0, 1.0)  # noqa: E731
        g = x @ cell.w.T + h @ cell.r.T + wb + rb
        i, o, f, u = np.split(g, 4, axis=1)
        c2 = sig(f) * c + sig(i) * np.tanh(u)
        return sig(o) * np.tanh(c2), c2
    hid = size // 3
    gx, gh = x @ cell.w.T + wb, h @ cell.r.T
    z = sig(gx[:, :hid] + gh[:, :hid] + rb[:hid])
    reset = sig(gx[:, hid:2 * hid] + gh[:, hid:2 * hid] + rb[hid:2 * hid])
    if cell.attributes["linear_before_reset"]:
        n = np.tanh(gx[:, 2 * hid:] + reset * (gh[:, 2 * hid:] + rb[2 * hid:]))
    else:
        n = np.tanh(gx[:, 2 * hid:] + (reset * h) @ cell.r[2 * hid:].T + rb[2 * hid:])
    return (1 - z) * n + z * h, None
