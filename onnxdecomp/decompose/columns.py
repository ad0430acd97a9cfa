"""Least-squares columns of a consumer's input: im2col patches at sampled output positions
for a Conv (the same positions for every image of a batch, drawn from a seeded rng), the
features for a Gemm, the features at sampled time steps for a recurrent op's input
X [T, N, I], each row ending in the constant 1 of the bias."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels import Consumer


def conv_geometry(node: ir.Node, x_shape: tuple[int, ...]) -> tuple[list[int], ...]:
    """(kernel, strides, dilations, pads_begin, pads_end, out_size) of a Conv over x_shape."""
    w = node.inputs[1].const_value.numpy()
    kernel = list(w.shape[2:])
    nd = len(kernel)
    strides = list(node.attributes.get_ints("strides", [1] * nd))
    dil = list(node.attributes.get_ints("dilations", [1] * nd))
    pads = list(node.attributes.get_ints("pads", [0] * (2 * nd)))
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    size = list(x_shape[2:])
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            out = -(-size[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - size[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    begin, end = pads[:nd], pads[nd:]
    out = [
        (size[i] + begin[i] + end[i] - (kernel[i] - 1) * dil[i] - 1) // strides[i] + 1
        for i in range(nd)
    ]
    return kernel, strides, dil, begin, end, out


def sample_positions(out: list[int], positions: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted flat indices of ``positions`` random points of an output grid ``out``."""
    total = int(np.prod(out))
    return np.sort(rng.choice(total, size=min(positions, total), replace=False))


def output_rows(cons: Consumer, x_shape: tuple[int, ...], y: np.ndarray, positions: int,
                rng: np.random.Generator) -> np.ndarray:
    """Rows [B * P, O] of a consumer-shaped output tensor ``y`` at the positions that
    ``consumer_columns`` samples from an input of ``x_shape`` with an identically seeded rng
    (for a Conv or a Gemm: the consumers whose output can meet a residual shortcut)."""
    if cons.kind != "conv":
        return y.reshape(y.shape[0], -1)
    out = conv_geometry(cons.node, x_shape)[-1]
    pick = sample_positions(out, positions, rng)
    flat = y.reshape(y.shape[0], y.shape[1], -1)[:, :, pick]  # [B, O, P]
    return np.moveaxis(flat, 1, 2).reshape(-1, y.shape[1])


def im2col_sample(
    x: np.ndarray, node: ir.Node, positions: int, rng: np.random.Generator
) -> np.ndarray:
    """Patches [B * P, C * prod(kernel)] at P random output positions (the same for the batch).

    Columns are ordered (channel, kernel...) like the Conv weight's flattened rows. One
    gather at precomputed flat indices into the zero-padded input: the columns are large
    (700 samples x 64 positions x 577 columns for a 64-channel 3x3 conv), so every copy
    beyond that one counts.
    """
    kernel, strides, dil, begin, end, out = conv_geometry(node, x.shape)
    nd = len(kernel)
    b, c = x.shape[:2]
    padded = [s + lo + hi for s, lo, hi in zip(x.shape[2:], begin, end)]
    xp = x
    if any(begin) or any(end):
        xp = np.zeros((b, c, *padded), dtype=x.dtype)
        xp[(slice(None), slice(None)) + tuple(
            slice(lo, lo + s) for lo, s in zip(begin, x.shape[2:]))] = x
    pick = sample_positions(out, positions, rng)
    coords = np.unravel_index(pick, out)
    grid = np.meshgrid(*[np.arange(k) * d for k, d in zip(kernel, dil)], indexing="ij")
    offsets = np.stack(grid).reshape(nd, -1)  # [nd, K] kernel offsets, row-major
    corners = np.stack([coords[i] * strides[i] for i in range(nd)])  # [nd, P]
    flat = np.ravel_multi_index(tuple(corners[:, :, None] + offsets[:, None, :]), padded)
    patches = xp.reshape(b, c, -1)[:, :, flat]  # [B, C, P, K]
    return np.ascontiguousarray(patches.transpose(0, 2, 1, 3)).reshape(b * flat.shape[0], -1)


def previous_states(cons: Consumer, y: np.ndarray) -> np.ndarray:
    """h_{t-1} [T, N, H] of a state reader's direction from Y [T, D, N, H]: the state each
    step starts from (zeros before the first step; a reverse direction steps backwards)."""
    seq = y[:, cons.direction]
    zero = np.zeros_like(seq[:1])
    forward = cons.direction == 0 and cons.node.attributes.get_string(
        "direction", "forward") != "reverse"
    return np.concatenate([zero, seq[:-1]]) if forward else np.concatenate([seq[1:], zero])


SEQUENCE_KINDS = ("rnn", "rnn_state", "seq")


def sequence_view(cons: Consumer, act: np.ndarray) -> np.ndarray:
    """A sequence consumer's input batch as [N, T, C], step t at index t: a recurrent op's
    X [T, N, I], a state reader's h_{t-1} from Y, a sequence MatMul's [N, T, F] or
    [T, N, F], or a MatMul's channels-last map [N, H, W, F] as [N, H * W, F]."""
    if cons.kind == "rnn_state":
        act = previous_states(cons, act)
    if cons.kind in ("rnn", "rnn_state"):
        return act.transpose(1, 0, 2)
    if act.ndim > 3:  # a channels-last map [N, H, W, F]: its positions are the steps
        return act.reshape(act.shape[0], -1, act.shape[-1])
    return act if cons.batch == 0 else act.transpose(1, 0, 2)


def channels_second(cons: Consumer, act: np.ndarray) -> np.ndarray:
    """A consumer's input batch as [N, C, ...]: a sequence's as [N, C, T]."""
    if cons.kind in SEQUENCE_KINDS:
        return sequence_view(cons, act).transpose(0, 2, 1)
    return act


def sequence_columns(cons: Consumer, act: np.ndarray, positions: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows [N * P, C] float32, sample-major, the P sampled steps, the same for the batch)
    of a sequence consumer's input."""
    view = sequence_view(cons, act.astype(np.float32, copy=False))
    steps = sample_positions([view.shape[1]], positions, rng)
    return view[:, steps].reshape(-1, view.shape[2]), steps


def consumer_columns(cons: Consumer, act: np.ndarray, positions: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(rows x~ = [columns, 1] float32, rows per sample) of a consumer's input batch:
    im2col patches at sampled positions for a Conv, the features for a Gemm, the features
    at sampled time steps (the same for the batch) for a sequence consumer."""
    a = act.astype(np.float32)
    if cons.kind == "conv":
        cols = im2col_sample(a, cons.node, positions, rng)
        reps = cols.shape[0] // a.shape[0]
    elif cons.kind in SEQUENCE_KINDS:
        cols, steps = sequence_columns(cons, a, positions, rng)
        reps = len(steps)
    else:
        cols, reps = a.reshape(a.shape[0], -1), 1
    return with_ones(cols), reps


def with_ones(cols: np.ndarray) -> np.ndarray:
    """The columns and the constant 1 of the bias."""
    return np.concatenate([cols, np.ones((cols.shape[0], 1), np.float32)], axis=1)


def step_view(cons: Consumer, act: np.ndarray, steps: int) -> np.ndarray | None:
    """A consumer's input as [N, T, C] with step t at index t, for per-step (tagging)
    profiling: a sequence consumer's, or a 1-D Conv's [N, C, T] over the ``steps`` tokens;
    None for a layer whose input is not laid out by step."""
    if cons.kind in SEQUENCE_KINDS:
        return sequence_view(cons, act)
    if cons.kind == "conv" and act.ndim == 3 and act.shape[2] == steps:
        return act.transpose(0, 2, 1)
    return None


def step_columns(cons: Consumer, act: np.ndarray, positions: int, rng: np.random.Generator,
                 steps: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows [N * P, columns] float32, sample-major, the step of each of the P positions)
    for per-step profiling: a sequence consumer's sampled steps; every output position of a
    1-D Conv whose output has one position per step (stride 1, "same" padding: position t
    reads the window around token t). None when the layer has no rows per step."""
    if cons.kind in SEQUENCE_KINDS:
        return sequence_columns(cons, act, positions, rng)
    if cons.kind == "conv" and act.ndim == 3 and act.shape[2] == steps and \
            conv_geometry(cons.node, act.shape)[-1] == [steps]:
        return im2col_sample(act.astype(np.float32), cons.node, steps, rng), np.arange(steps)
    return None
