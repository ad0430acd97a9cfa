"""Flax models as jax2onnx writes them (``tests/data/jax2onnx``, made by its ``export.py``):
channels-last maps with every conv between Transposes, a residual add and GELU on the
channels-last map before a flatten into dense layers (``FoldTransposeIntoDensePass`` puts a
Transpose back to channels-first in front of the flatten), a max pool and a mean over the
positions, an MLP with a LayerNorm, and recurrences written with ``jax.lax.scan`` (a Loop
that carries the sequence and the weights unchanged; a tanh RNN, a GRU with its gates
ordered r, z, n and two biases, an LSTM with two carried states and its gates ordered i, f,
o, g: ``RewriteLoopRecurrencePass`` finds the ONNX op for each; a tanh RNN from a learned
initial state it does not: that loop stays, pinned, its output's shape unknown to the Gemm
after it, whose weight gives the feature count).

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5, and the
module at keep 0.5 passes the full checker, runs and is smaller.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_export_decomposes

FIXTURES = Path(__file__).parent / "data" / "jax2onnx"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
WHOLE = ("scan_rnn_h0",)  # its loop stays (a learned initial state): pinned


def test_fixtures_present() -> None:
    assert len(NAMES) == 7, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_jax2onnx_export_decomposes(name: str) -> None:
    assert_export_decomposes(FIXTURES / f"{name}.onnx", shrinks=name not in WHOLE)


@pytest.mark.parametrize("name", ["scan_rnn", "scan_gru", "scan_lstm"])
def test_scan_recurrences_become_ops(name: str) -> None:
    import onnx_ir as ir

    from onnxdecomp.passes import normalize

    ops = [n.op_type for n in normalize(ir.load(FIXTURES / f"{name}.onnx")).graph]
    assert "Loop" not in ops
    assert {"scan_rnn": "RNN", "scan_gru": "GRU", "scan_lstm": "LSTM"}[name] in ops
