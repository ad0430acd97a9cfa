"""PaddlePaddle models as paddle2onnx writes them (``tests/data/paddle2onnx``, made by its
``export.py``): a CNN (BatchNorm, a strided conv, a residual add, Hardswish, flatten, dense
layers), LSTM and GRU over batch-first sequences (the last step, or every step for a tagger),
a bidirectional LSTM, token ids through an embedding into a GRU's final state.

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5, and the
module at keep 0.5 passes the full checker, runs and is smaller.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_export_decomposes

FIXTURES = Path(__file__).parent / "data" / "paddle2onnx"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
WHOLE = ()


def test_fixtures_present() -> None:
    assert len(NAMES) == 6, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_paddle2onnx_export_decomposes(name: str) -> None:
    assert_export_decomposes(FIXTURES / f"{name}.onnx", shrinks=name not in WHOLE)
