"""Keras models converted to TFLite, then by tf2onnx's ``--tflite`` path
(``tests/data/tflite``, made by its ``export.py``): float (NHWC, a Transpose around each
convolution); quantised with float input and output (QuantizeLinear on the input, then int8
transposes and flattens between a QuantizeLinear and its DequantizeLinear:
``HoistDequantizeOverLayoutPass``); integer only (int8 input and logits:
``DequantizeScoresOutputPass``).

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5, and the
module at keep 0.5 passes the full checker, runs and is smaller. A quantised one is run
without ORT's graph optimisations: with them ORT fuses some of the parent's int8 kernels
otherwise than the module's, and they round otherwise. An integer-only one's logits are
dequantised by the parent's own scale and zero point; its flatten folded into the dense
layer sums in another order, which can round a logit to the next int8 code: 95% of the
samples agree to 1e-5, all to 0.1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_export_decomposes
from onnx import numpy_helper

FIXTURES = Path(__file__).parent / "data" / "tflite"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))


def test_fixtures_present() -> None:
    assert len(NAMES) == 9, NAMES


def _dequantise(path: Path):
    """The parent's int8 logits as the floats they stand for (its last QuantizeLinear's)."""
    model = onnx.load(path)
    quantize = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    assert quantize.op_type == "QuantizeLinear"
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zero = (inits[quantize.input[i]] for i in (1, 2))
    return lambda q: (q.astype(np.float32) - zero) * scale


@pytest.mark.parametrize("name", NAMES)
def test_tflite_export_decomposes(name: str) -> None:
    path = FIXTURES / f"{name}.onnx"
    integer = name.endswith("_i8")
    assert_export_decomposes(path, optimised=not name.endswith(("_q", "_i8")),
                             scores=_dequantise(path) if integer else None,
                             exact_share=0.95 if integer else 1.0)
