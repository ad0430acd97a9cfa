"""Tests for onnxdecomp.decompose.calibrate: a module's score mapped back to its parent's."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from conftest import build_bn_conv, calib, ort_run

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.calibrate import CalibrateScorePass, calibrated, fit_score_map
from onnxdecomp.decompose.fidelity import logodds_fidelity
from onnxdecomp.decompose.head import SCORE, AppendLogOddsPass, logodds_from_logits
from onnxdecomp.passes import check_emitted


def test_fit_recovers_an_affine_drift_and_raises_the_fidelity() -> None:
    rng = np.random.default_rng(0)
    parent = rng.normal(0.0, 2.0, size=(400, 3))
    drifted = (parent[:, 1] - 0.4) / 1.1 + rng.normal(0.0, 0.05, 400)
    a, b = fit_score_map(drifted, parent, 1)
    assert abs(a - 1.1) < 0.02 and abs(b - 0.4) < 0.03
    assert logodds_fidelity(a * drifted + b, parent, 1) > logodds_fidelity(drifted, parent, 1)


def test_fit_leaves_what_it_cannot_improve() -> None:
    rng = np.random.default_rng(1)
    parent = rng.normal(0.0, 2.0, size=(200, 2))
    assert fit_score_map(parent[:, 0], parent, 0) == (1.0, 0.0)  # already exact
    assert fit_score_map(np.zeros(200), parent, 0) == (1.0, 0.0)  # constant score
    assert fit_score_map(-parent[:, 0], parent, 0) == (1.0, 0.0)  # inverted score
    saturated = np.full((200, 2), 9.0)  # every parent log-odds beyond the clip
    assert fit_score_map(parent[:, 0], saturated, 0) == (1.0, 0.0)


def test_pass_maps_the_score_output_and_passes_the_checker() -> None:
    model = build_bn_conv(k=4)
    ir_model = ir.serde.deserialize_model(model)
    AppendLogOddsPass(2, 4)(ir_model)
    proto = ir.serde.serialize_model(ir_model)
    x = calib((None, 3, 12, 12), 20)
    mapped = calibrated(proto, 1.25, -0.5)
    check_emitted(mapped)
    assert [o.name for o in mapped.graph.output] == [SCORE]
    np.testing.assert_allclose(ort_run(mapped, x), 1.25 * ort_run(proto, x) - 0.5, rtol=1e-5,
                               atol=1e-5)
    assert calibrated(proto, 1.0, 0.0) is proto  # the identity writes nothing
    assert not CalibrateScorePass(1.0, 0.0)(ir.serde.deserialize_model(proto)).modified


def test_decomposer_calibrates_pruned_modules_only() -> None:
    """A pruned module's held-out score is mapped (and its fidelity measured after the map);
    the module with nothing removed stays exact; ``calibrate_score=False`` maps nothing."""
    model = build_bn_conv(k=4)
    x = calib((None, 3, 12, 12), 200, seed=2)
    dec = Decomposer(model, x, None, Settings(device="cpu", align=1))
    full = dec.measure(dec.build(1, 1.0))
    assert full.score_map is None
    np.testing.assert_allclose(ort_run(full.proto, x[:30])[:, 0],
                               logodds_from_logits(ort_run(model, x[:30]))[:, 1], atol=1e-5)
    raw = Decomposer(model, x, None, Settings(device="cpu", align=1, calibrate_score=False))
    plain = raw.measure(raw.build(1, 0.3))
    mapped = dec.measure(dec.build(1, 0.3))
    assert plain.score_map is None and mapped.score_map is not None
    assert mapped.fidelity >= plain.fidelity
    a, b = mapped.score_map
    np.testing.assert_allclose(dec.hold_score(mapped.proto), a * raw.hold_score(plain.proto) + b,
                               rtol=1e-4, atol=1e-4)
    check_emitted(mapped.proto)
    assert isinstance(mapped.proto, onnx.ModelProto)
