"""One streaming pass over calibration data that records, for every class at once:

- for each consumer (Conv/Gemm reading channels), the second-moment matrix
  G_k = sum x~ x~^T of its input columns x~ = [im2col patch or features, 1] over samples the
  parent assigns to class k (a sample of positions per image for convs): the least-squares
  refit and the log-odds criterion are read off these;
- per channel of each consumer input, the class-wise active (> 0) fraction;
- the head: class-wise E|d s_k / d z_j|, the sensitivity of class k's log-odds to logit j.

Only accumulators are kept, so memory does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels import ChannelGraph, Consumer
from onnxdecomp.irutil import to_proto, with_outputs
from onnxdecomp.runtime import Runner


@dataclass
class ConsumerStats:
    gram: np.ndarray  # [K, D+1, D+1] float64, the last column is the constant 1
    rows: np.ndarray  # [K] number of rows accumulated per class


@dataclass
class Profile:
    num_classes: int
    samples: np.ndarray  # [K] samples per parent-predicted class
    consumers: dict[str, ConsumerStats] = field(default_factory=dict)
    act_freq: dict[str, np.ndarray] = field(default_factory=dict)  # value -> [K, C]
    head_sens: np.ndarray | None = None  # [K, K]: row k = E|d s_k / d z_j| over all samples
    agreement: float = 0.0  # parent top-1 agreement with labels on the profiling data

    def gram(self, node: str, weights: np.ndarray) -> np.ndarray:
        """Second-moment matrix E[x~ x~^T] with class weights (summing to 1)."""
        st = self.consumers[node]
        per_class = st.gram / np.maximum(st.rows, 1)[:, None, None]
        return np.tensordot(weights, per_class, axes=1)


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
    ``consumer_columns`` samples from an input of ``x_shape`` with an identically seeded rng."""
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

    Columns are ordered (channel, kernel...) like the Conv weight's flattened rows.
    """
    kernel, strides, dil, begin, end, out = conv_geometry(node, x.shape)
    nd = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(b, e) for b, e in zip(begin, end)])
    pick = sample_positions(out, positions, rng)
    coords = np.unravel_index(pick, out)
    window = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    view = np.lib.stride_tricks.sliding_window_view(xp, window, axis=tuple(range(2, 2 + nd)))
    at = tuple(coords[i] * strides[i] for i in range(nd))
    patches = view[(slice(None), slice(None)) + at]  # [B, C, P, window...]
    patches = patches[(Ellipsis,) + tuple(slice(None, None, d) for d in dil)]
    patches = np.moveaxis(patches, 2, 1)  # [B, P, C, kernel...]
    return patches.reshape(patches.shape[0] * patches.shape[1], -1)


def consumer_columns(cons: Consumer, act: np.ndarray, positions: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(rows x~ = [columns, 1] float32, rows per sample) of a consumer's input batch:
    im2col patches at sampled positions for a Conv, the features for a Gemm."""
    a = act.astype(np.float32)
    if cons.kind == "conv":
        cols = im2col_sample(a, cons.node, positions, rng)
        reps = cols.shape[0] // a.shape[0]
    else:
        cols, reps = a.reshape(a.shape[0], -1), 1
    cols = np.concatenate([cols, np.ones((cols.shape[0], 1), np.float32)], axis=1)
    return cols, reps


def logodds_from_logits(z: np.ndarray) -> np.ndarray:
    """s_k = z_k - log sum_{j != k} exp z_j for every class k (stable)."""
    z = z.astype(np.float64)
    k = z.shape[1]
    s = np.empty_like(z)
    for c in range(k):
        rest = np.delete(z, c, axis=1)
        m = rest.max(axis=1, keepdims=True)
        s[:, c] = z[:, c] - (m[:, 0] + np.log(np.exp(rest - m).sum(axis=1)))
    return s


def head_sensitivity(z: np.ndarray) -> np.ndarray:
    """[K, K] sum over samples of |d s_k / d z_j|: 1 for j = k, -softmax_{-k}(z)_j otherwise."""
    z = z.astype(np.float64)
    k = z.shape[1]
    out = np.zeros((k, k))
    for c in range(k):
        rest = z.copy()
        rest[:, c] = -np.inf
        q = np.exp(rest - rest.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        out[c] = q.sum(axis=0)
        out[c, c] = len(z)
    return out


def profile(
    model: ir.Model,
    cg: ChannelGraph,
    x: np.ndarray,
    y: np.ndarray | None = None,
    device: str = "auto",
    batch_size: int = 100,
    positions: int = 64,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Profile:
    """Stream ``x`` through the parent once and accumulate the statistics above."""
    rng = np.random.default_rng(seed)
    proto = to_proto(model)
    logits_name = model.graph.outputs[0].name
    wanted: dict[str, Consumer] = {c.node.name: c for c in cg.consumers}
    values = sorted({c.value.name for c in cg.consumers})
    runner = Runner(with_outputs(proto, values), device=device, probe=True)
    names = [logits_name] + values
    k = None
    prof: Profile | None = None
    correct = 0
    for start, stop, outs in runner.iter_batches(x, batch_size, names):
        z, acts = outs[0], dict(zip(values, outs[1:]))
        if prof is None:
            k = z.shape[1]
            prof = Profile(num_classes=k, samples=np.zeros(k, dtype=np.int64))
            prof.head_sens = np.zeros((k, k))
        pred = z.argmax(axis=1)
        if y is not None:
            lab = y[start:stop]
            correct += int(np.sum(pred == lab))
        prof.samples += np.bincount(pred, minlength=k)
        prof.head_sens += head_sensitivity(z)
        for name, a in acts.items():
            a = a.astype(np.float32)
            freq = (a.reshape(a.shape[0], a.shape[1], -1) > 0).mean(axis=2)
            if name not in prof.act_freq:
                prof.act_freq[name] = np.zeros((k, a.shape[1]))
            np.add.at(prof.act_freq[name], pred, freq)
        for node_name, cons in wanted.items():
            cols, reps = consumer_columns(cons, acts[cons.value.name], positions, rng)
            row_class = np.repeat(pred, reps)
            st = prof.consumers.get(node_name)
            if st is None:
                d = cols.shape[1]
                st = ConsumerStats(np.zeros((k, d, d)), np.zeros(k, np.int64))
                prof.consumers[node_name] = st
            for c in np.unique(row_class):
                part = cols[row_class == c]
                st.gram[c] += part.T @ part
                st.rows[c] += part.shape[0]
        if progress:
            progress(stop - start)
    assert prof is not None
    denom = np.maximum(prof.samples, 1)[:, None]
    for name in prof.act_freq:
        prof.act_freq[name] /= denom
    prof.head_sens /= len(x)
    prof.agreement = correct / len(x) if y is not None else float("nan")
    return prof
