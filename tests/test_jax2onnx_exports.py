"""Flax models as jax2onnx writes them (``tests/data/jax2onnx``, made by its ``export.py``):
channels-last maps with every conv between Transposes, a residual add and GELU on the
channels-last map before a flatten into dense layers (``FoldTransposeIntoDensePass`` puts a
Transpose back to channels-first in front of the flatten), a max pool and a mean over the
positions, an MLP with a LayerNorm, and recurrences written with ``jax.lax.scan`` (a Loop
that carries the sequence and the weights unchanged; a tanh RNN, a GRU with its gates
ordered r, z, n and two biases: ``RewriteLoopRecurrencePass`` finds the ONNX op for both;
an LSTM's two states it does not: that loop stays, pinned, its output's shape unknown to
the Gemm after it, whose weight gives the feature count).

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5, and the
module at keep 0.5 passes the full checker, runs and is smaller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ort_run
from test_tf2onnx_exports import _inputs, _logodds

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.stats import model_stats

FIXTURES = Path(__file__).parent / "data" / "jax2onnx"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))


def test_fixtures_present() -> None:
    assert len(NAMES) == 6, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_jax2onnx_export_decomposes(name: str) -> None:
    path = FIXTURES / f"{name}.onnx"
    x = _inputs(path, 120)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:50])[:, 0],
                               _logodds(ort_run(path, x[:50]))[:, 0], atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    if name == "scan_lstm":  # its loop stays (two states): pinned, and the head reads it
        assert not half.removed
        return
    assert half.removed
    assert ort_run(half.proto, x[:3]).shape == (3, 1)
    assert model_stats(half.proto).macs < dec.parent.macs


@pytest.mark.parametrize("name", ["scan_rnn", "scan_gru"])
def test_scan_recurrences_become_ops(name: str) -> None:
    import onnx_ir as ir

    from onnxdecomp.passes import normalize

    ops = [n.op_type for n in normalize(ir.load(FIXTURES / f"{name}.onnx")).graph]
    assert "Loop" not in ops
    assert ("GRU" if name == "scan_gru" else "RNN") in ops
