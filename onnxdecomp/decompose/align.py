"""Kept channel counts the runtime's kernels like: multiples of the vector width.

ONNX Runtime's CPU convolutions run on NCHWc blocks of 8 channels with AVX2 and 16 with
AVX-512; a kept count off the block runs the slow path (measured: widths [21,41,41,41,32,23,
55] at 73% of the MACs ran 1.46x slower than the full [24,48,...,64]; [16,40,...,56] at 68%
ran 0.86x). CUDA's tensor cores want multiples of 8 as well. ``auto`` reads the vector width
of the machine doing the decomposition (numpy's CPU feature table), or 8 for CUDA.

Recurrent ops (RNN, LSTM, GRU) run through GEMMs, not the blocked convolutions, and have no
such cliff: ``auto`` keeps their hidden units in multiples of ``RECURRENT_ALIGN`` (at most
the vector width). Measured (``python -m benchmarks.recurrent_align``: one op, input 64,
20 steps, batch 64, ORT CPU, 1 thread, AVX-512), every multiple of 4 from 96 to 128 units
ran faster than the next multiple of 16 up (116 units: 0.92x the time of 128 for the RNN,
0.89x for the LSTM, 0.92x for the GRU; 100 units: 0.91x, 0.88x, 0.89x the time of 112),
while odd counts sometimes ran slower than the next multiple of 4 up (127 units: 1.005 to
1.04x of 128; the LSTM's 113: 1.02x of 116).
"""

from __future__ import annotations

import math

from onnxdecomp.channels import ChannelGraph

VECTOR_FLOATS = (("AVX512F", 16), ("AVX2", 8), ("ASIMD", 4), ("NEON", 4))
RECURRENT_ALIGN = 4


def cpu_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return dict(features)


def resolve_align(align: int | str, device: str = "cpu") -> int:
    """The channel multiple for ``align`` ("auto" or a positive integer) on ``device``."""
    if align != "auto":
        return int(align)
    if device == "cuda":
        return 8
    features = cpu_features()
    return next((n for flag, n in VECTOR_FLOATS if features.get(flag)), 1)


def recurrent_align(align: int | str, resolved: int) -> int:
    """The multiple for recurrent hidden units: ``RECURRENT_ALIGN`` (or the ``resolved``
    multiple, if smaller) under ``auto``; an explicit ``align`` holds for every group."""
    return min(resolved, RECURRENT_ALIGN) if align == "auto" else resolved


def cluster_aligns(cg: ChannelGraph, align: int, recurrent: int) -> dict[str, int]:
    """The multiple of each cluster that is not ``align``'s: ``recurrent`` for recurrent
    hidden units, ``grouped_align``'s for units of several channels."""
    return grouped_align(cg, align) | {cg.cluster(c.value.name): recurrent
                                       for c in cg.consumers if c.kind == "rnn_state"}


def grouped_align(cg: ChannelGraph, align: int) -> dict[str, int]:
    """Clusters whose units span k channels each (normalisation groups): units in multiples
    of ``align / gcd(align, k)``, so that the kept channels are multiples of ``align``."""
    width: dict[str, int] = {}
    for name, k in cg.unit_width.items():
        cl = cg.cluster(name)
        width[cl] = max(k, width.get(cl, 1))
    return {cl: align // math.gcd(align, k) for cl, k in width.items()}


def group_align(n: int, align: int) -> int:
    """The multiple a group of ``n`` units is kept in: ``align``; half of it for a group of
    fewer than two vectors that holds two halves; 1 (unaligned) for a smaller group.

    A group of one vector, such as ResNet-20's 16-channel first stage on AVX-512, falls off
    the blocked kernels at any count but its full width: a 3x3 conv chain on
    [64, c, 32, 32] (ORT CPU, AVX-512, 1 thread) ran 9.25 ms at c = 16, 10.37 ms at 15,
    9.33 ms at 13 and 8.35 ms at 12, hardly faster for the channels it lost, but 5.0 ms at 8.
    """
    if n >= 2 * align:
        return align
    half = align // 2
    return half if half > 1 and n >= 2 * half else 1


def kept_count(n: int, keep: float, align: int = 1) -> int:
    """Units kept of a group of ``n``: ceil(keep * n), at least one, rounded up to a multiple
    of ``group_align(n, align)`` (at most n)."""
    k = max(1, math.ceil(keep * n - 1e-9))
    a = group_align(n, align)
    if a > 1:
        k = min(n, -(-k // a) * a)
    return k
