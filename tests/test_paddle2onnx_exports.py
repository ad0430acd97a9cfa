"""PaddlePaddle models as paddle2onnx writes them (``tests/data/paddle2onnx``, made by its
``export.py``): a CNN (BatchNorm, a strided conv, a residual add, Hardswish, flatten, dense
layers), LSTM and GRU over batch-first sequences (the last step, or every step for a tagger),
a bidirectional LSTM, token ids through an embedding into a GRU's final state.

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

FIXTURES = Path(__file__).parent / "data" / "paddle2onnx"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))


def test_fixtures_present() -> None:
    assert len(NAMES) == 6, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_paddle2onnx_export_decomposes(name: str) -> None:
    path = FIXTURES / f"{name}.onnx"
    x = _inputs(path, 120)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    want = _logodds(ort_run(path, x[:50]))[..., 0]
    np.testing.assert_allclose(ort_run(full, x[:50]).reshape(want.shape), want,
                               atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert half.removed
    assert ort_run(half.proto, x[:3]).shape[0] == 3
    assert model_stats(half.proto).macs < dec.parent.macs
