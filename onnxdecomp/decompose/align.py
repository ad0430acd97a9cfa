"""Kept channel counts the runtime's kernels like: multiples of the vector width.

ONNX Runtime's CPU convolutions run on NCHWc blocks of 8 channels with AVX2 and 16 with
AVX-512; a kept count off the block runs the slow path (measured: widths [21,41,41,41,32,23,
55] at 73% of the MACs ran 1.46x slower than the full [24,48,...,64]; [16,40,...,56] at 68%
ran 0.86x). CUDA's tensor cores want multiples of 8 as well. ``auto`` reads the vector width
of the machine doing the decomposition (numpy's CPU feature table), or 8 for CUDA.
"""

from __future__ import annotations

import math

VECTOR_FLOATS = (("AVX512F", 16), ("AVX2", 8), ("ASIMD", 4), ("NEON", 4))


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


def kept_count(n: int, keep: float, align: int = 1) -> int:
    """Units kept of a group of ``n``: ceil(keep * n), at least one, rounded up to a multiple
    of ``align`` (at most n). A group of fewer than two vectors is left unaligned: aligned,
    it could keep only one vector or all of itself."""
    k = max(1, math.ceil(keep * n - 1e-9))
    if align > 1 and n >= 2 * align:
        k = min(n, -(-k // align) * align)
    return k
