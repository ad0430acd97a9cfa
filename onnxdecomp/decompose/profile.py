"""One streaming pass over calibration data that records, for every class at once:

- for each consumer (Conv/Gemm reading channels), the second-moment matrix
  G_k = sum x~ x~^T of its input columns x~ = [im2col patch or features, 1] over samples the
  parent assigns to class k (a sample of positions per image for convs): the least-squares
  refit and the log-odds criterion are read off these;
- per channel of each consumer input, the class-wise active (> 0) fraction;
- the head: class-wise E|d s_k / d z_j|, the sensitivity of class k's log-odds to logit j.

A tagger (logits [N, T, K]) is profiled per step: each labelled step (label >= 0; every step
when no labels are given) belongs to the class the parent gives it, and the rows of every
consumer at step t (``columns.step_columns``: recurrent layers, sequence MatMuls, 1-D
convolutions with one output per step) count for that class. The samples of the counts are
then steps.

Only accumulators are kept, so memory does not grow with the data. It grows with the
classes: one matrix per class and consumer. ``track`` limits the per-class matrices to some
classes (the others are only counted), and ``totals`` supplies what every gram needs of all
of them, their sum (``tracked.py`` holds many classes' work to a memory budget with both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdecomp.channels import ChannelGraph, Consumer
from onnxdecomp.decompose.columns import (
    channels_second,
    consumer_columns,
    step_columns,
    step_view,
    with_ones,
)
from onnxdecomp.decompose.head import head_sensitivity
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import with_outputs
from onnxdecomp.runtime import Runner


@dataclass
class ConsumerStats:
    gram: np.ndarray  # [T, D+1, D+1] float64 of the T tracked classes; last column: the 1
    rows: np.ndarray  # [K] number of rows accumulated per class, tracked or not


@dataclass
class Profile:
    num_classes: int
    samples: np.ndarray  # [K] samples per parent-predicted class
    consumers: dict[str, ConsumerStats] = field(default_factory=dict)
    act_freq: dict[str, np.ndarray] = field(default_factory=dict)  # value -> [K, C]
    head_sens: np.ndarray | None = None  # [K, K]: row k = E|d s_k / d z_j| over all samples
    agreement: float = 0.0  # parent top-1 agreement with labels on the profiling data
    tracked: np.ndarray | None = None  # the classes with grams, in their order; None: all
    slot: np.ndarray | None = None  # [K] index of each class's gram, -1 untracked; None: all
    # sum over all K classes of the normalised grams, per consumer, when not all are tracked
    totals: dict[str, np.ndarray] | None = None

    _normalised: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def needs(self, weights: np.ndarray) -> set[int]:
        """The classes whose own grams ``gram(., weights)`` reads: those weighed unlike the
        most common weight that have samples (a class without any has a zero gram)."""
        mode = _mode(weights)
        return {int(j) for j in np.flatnonzero(weights != mode) if self.samples[j] > 0}

    def normalised(self, node: str) -> tuple[np.ndarray, np.ndarray]:
        """(the tracked classes' grams, each divided by its row count [T, D+1, D+1], their
        sum over all K classes: None for a profile of some classes without ``totals``)."""
        if node not in self._normalised:
            st = self.consumers[node]
            rows = st.rows if self.tracked is None else st.rows[self.tracked]
            # In place: the sums are not read again, and a copy would double the largest
            # thing decomposition holds (a 512-channel 3x3 conv's: K x 4609^2 floats).
            per_class = np.divide(st.gram, np.maximum(rows, 1)[:, None, None], out=st.gram)
            total = (per_class.sum(axis=0) if self.tracked is None
                     else None if self.totals is None else self.totals[node])
            self._normalised[node] = (per_class, total)
        return self._normalised[node]

    def gram(self, node: str, weights: np.ndarray) -> np.ndarray:
        """Second-moment matrix E[x~ x~^T] with class weights (summing to 1).

        sum_j w_j G_j = w_m S + sum_{j: w_j != w_m} (w_j - w_m) G_j, w_m the most common
        weight and S the sum of the per-class matrices (computed once): a concern weighs
        most classes alike, so a gram costs a few classes' matrices, not all K of them (with
        K modules, all K would make decomposition quadratic in the classes).
        """
        per_class, total = self.normalised(node)
        mode = _mode(weights)
        out = mode * total
        for j in np.flatnonzero(weights != mode):
            if self.slot is None:
                out = out + (weights[j] - mode) * per_class[j]
            elif self.slot[j] >= 0:
                out = out + (weights[j] - mode) * per_class[self.slot[j]]
            elif self.consumers[node].rows[j]:  # a class without rows has a zero gram
                raise LookupError(f"class {j} is not tracked by this profile")
        return out


def _mode(weights: np.ndarray) -> float:
    """The most common of the class weights (the smallest of equally common ones)."""
    values, counts = np.unique(weights, return_counts=True)
    return values[counts.argmax()]


def not_per_step(cons: Consumer) -> OnnxDecompError:
    """A per-step (tagging) model's classes are per step: every layer reading channels must
    read them per step, or no step would own its rows."""
    return OnnxDecompError(
        f"node {cons.node.name!r} ({cons.node.op_type}): a model with one output per step "
        "(tagging) is decomposed per step; this layer does not read its input step by step "
        "(recurrent layers, MatMuls over a sequence's last axis and 1-D convolutions with one "
        "output per step do)")


def profile(
    proto: onnx.ModelProto,
    cg: ChannelGraph,
    x: np.ndarray,
    y: np.ndarray | None = None,
    device: str = "auto",
    batch_size: int = 100,
    positions: int = 64,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    track: list[int] | None = None,
    totals: dict[str, np.ndarray] | None = None,
) -> Profile:
    """Stream ``x`` through the parent (normalised, as ``cg`` was built on) once and
    accumulate the statistics above: per-class grams for the classes ``track`` lists, in
    that order (all when None), the sums of all classes' grams given by ``totals`` then."""
    rng = np.random.default_rng(seed)
    logits_name = proto.graph.output[0].name
    wanted: dict[str, Consumer] = {c.key: c for c in cg.consumers}
    values = sorted({c.value.name for c in cg.consumers})
    reader = {c.source: c for c in cg.consumers}  # one consumer per set of input columns
    runner = Runner(with_outputs(proto, values), device=device, probe=True)
    names = [logits_name] + values
    k = None
    prof: Profile | None = None
    correct = 0
    axes = {c.value.name: c.batch_axis for c in cg.consumers}
    rows = 0  # samples, or labelled steps of a per-step (tagging) model
    for start, stop, outs in runner.iter_batches(x, batch_size, names, axes):
        z, acts = outs[0], dict(zip(values, outs[1:]))
        if prof is None:
            k = z.shape[-1]
            prof = Profile(num_classes=k, samples=np.zeros(k, dtype=np.int64),
                           totals=None if track is None else totals)
            if track is not None:
                prof.tracked = np.asarray(track, dtype=np.int64)
                prof.slot = np.full(k, -1, dtype=np.int64)
                prof.slot[prof.tracked] = np.arange(len(track))
            prof.head_sens = np.zeros((k, k))
        lab = None if y is None else y[start:stop]
        pred = z.argmax(axis=-1)  # [n], or [n, T] for a tagger: -1 on padding (label -1)
        if z.ndim == 3 and lab is not None:
            pred = np.where(lab >= 0, pred, -1)
        valid = pred >= 0
        rows += int(valid.sum())
        if lab is not None:
            correct += int(np.sum((pred == lab) & valid))
        prof.samples += np.bincount(pred[valid], minlength=k)
        prof.head_sens += head_sensitivity(z[valid])
        for name, cons in reader.items():
            act = acts[cons.value.name].astype(np.float32)
            if z.ndim == 3:  # per step: [n, T, C] rows go to their steps' classes
                view = step_view(cons, act, z.shape[1])
                if view is None:
                    raise not_per_step(cons)
                on = (view > 0)[valid]
                owner = pred[valid]
            else:
                a = channels_second(cons, act)
                on = (a.reshape(a.shape[0], a.shape[1], -1) > 0).mean(axis=2)
                owner = pred
            if name not in prof.act_freq:
                prof.act_freq[name] = np.zeros((k, on.shape[1]))
            np.add.at(prof.act_freq[name], owner, on)
        for node_name, cons in wanted.items():
            if z.ndim == 3:
                found = step_columns(cons, acts[cons.value.name], positions, rng, z.shape[1])
                if found is None:
                    raise not_per_step(cons)
                cols, row_class = with_ones(found[0]), pred[:, found[1]].reshape(-1)
            else:
                cols, reps = consumer_columns(cons, acts[cons.value.name], positions, rng)
                row_class = np.repeat(pred, reps)
            st = prof.consumers.get(node_name)
            if st is None:
                d = cols.shape[1]
                st = ConsumerStats(np.zeros((k if track is None else len(track), d, d)),
                                   np.zeros(k, np.int64))
                prof.consumers[node_name] = st
            for c in np.unique(row_class[row_class >= 0]):
                on = row_class == c
                st.rows[c] += int(on.sum())
                at = c if prof.slot is None else prof.slot[c]
                if at >= 0:
                    part = cols[on]
                    st.gram[at] += part.T @ part
        if progress:
            progress(stop - start)
    assert prof is not None
    denom = np.maximum(prof.samples, 1)[:, None]
    for name in prof.act_freq:
        prof.act_freq[name] /= denom
    prof.head_sens /= max(rows, 1)
    prof.agreement = correct / max(rows, 1) if y is not None else float("nan")
    return prof
