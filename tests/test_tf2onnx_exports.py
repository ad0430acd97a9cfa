"""Keras models as tf2onnx writes them (``tests/data/tf2onnx``, made by its ``export.py``):
NHWC convolutions (also ZeroPadding2D, AveragePooling2D, LeakyReLU, PReLU over channels,
UpSampling2D, Cropping2D, Conv2DTranspose, Concatenate), a residual net with a softmax head,
depthwise and separable convs with squeeze-excitation, Conv1D; LSTMs (fused into the ONNX
op; bidirectional: zero initial states concatenated), GRUs and SimpleRNNs (Keras 3: a Loop
over the steps, rewritten as the ONNX op by ``RewriteLoopRecurrencePass``; ``reset_after``
either way, stacked), a Dense over every step (tensordot), a bidirectional GRU's backward
half (ReverseSequence), a masked GRU (a loop no op reproduces: kept, its inputs pinned), an
MLP (Rescaling, BatchNorm, swish, softmax), RNNs unrolled into per-step ops
(``unroll=True``: the input [N, T, F] read as [T, N, F] has its channels on F), an LSTM's
returned states, an LSTM into a bidirectional GRU, and a transformer block
(MultiHeadAttention's einsums, LayerNormalization written as moments: a GlobalAveragePool
over the features).

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5 (every
step's for the two taggers), and the module at keep 0.5 passes the full checker, runs and is
smaller.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import assert_export_decomposes, export_inputs, logodds, ort_run
from onnx import helper, numpy_helper

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.passes import normalize
from onnxdecomp.stats import model_stats

FIXTURES = Path(__file__).parent / "data" / "tf2onnx"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
# Kept whole: the masked GRU's loop (no op reproduces it; everything it reads is pinned), and
# the GRU and LSTM unrolled into per-step ops (their gates are split apart: pinned).
WHOLE = ("masked", "gru_unrolled", "lstm_unrolled")
LOOPS = ("gru", "simplernn", "relu_rnn", "gru_v1", "bigru_seq", "stacked", "conv_gru",
         "hardsig_lstm")


def test_fixtures_present() -> None:
    assert len(NAMES) == 25, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_tf2onnx_export_decomposes(name: str) -> None:
    assert_export_decomposes(FIXTURES / f"{name}.onnx", shrinks=name not in WHOLE)


@pytest.mark.parametrize("name", LOOPS)
def test_keras_recurrent_loops_become_ops(name: str) -> None:
    model = normalize(ir.load(FIXTURES / f"{name}.onnx"))
    ops = [n.op_type for n in model.graph]
    assert "Loop" not in ops
    assert {"GRU", "RNN", "LSTM"} & set(ops)


def test_parent_macs_count_a_rewritten_loop() -> None:
    """The parent's MACs are counted on its normalised graph when the file has a Loop (whose
    body the count does not enter): the module's share stays below 1."""
    path = FIXTURES / "gru.onnx"
    dec = Decomposer(path, export_inputs(path, 60), None, Settings(device="cpu", seed=0, align=1))
    assert model_stats(path).macs < dec.parent.macs
    assert model_stats(dec.build(0, 1.0).proto).macs <= dec.parent.macs


def test_values_a_loop_body_reads_are_pinned(tmp_path: Path) -> None:
    """A conv's output read only inside a Loop's body (not an input of the Loop node):
    the body is shape-agnostic, so without pinning the conv would lose channels the head
    after the loop still expects."""
    rng = np.random.default_rng(0)
    body = helper.make_graph(
        [helper.make_node("Relu", ["r"], ["s"]), helper.make_node("Identity", ["c"], ["c_out"])],
        "body", [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                 helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c_out", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["y"], ["r"]),
         helper.make_node("Loop", ["m", "cond"], ["scanned"], body=body),
         helper.make_node("Squeeze", ["scanned", "zero"], ["sq"]),
         helper.make_node("GlobalAveragePool", ["sq"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "hw", "hb"], ["logits"], transB=1)],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(a, n) for n, a in [
            ("w", rng.normal(size=(8, 3, 3, 3)).astype(np.float32)),
            ("b", rng.normal(size=8).astype(np.float32)),
            ("m", np.array(1, np.int64)), ("cond", np.array(True)),
            ("zero", np.array([0], np.int64)),
            ("hw", rng.normal(size=(4, 8)).astype(np.float32)),
            ("hb", np.zeros(4, np.float32))]])
    path = tmp_path / "loop.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = rng.normal(size=(60, 3, 8, 8)).astype(np.float32)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.cg.units() == {}  # nothing the head reads can go
    half = dec.build(0, 0.5, check=True)
    np.testing.assert_allclose(ort_run(half.proto, x[:5])[:, 0],
                               logodds(ort_run(path, x[:5]))[:, 0], atol=1e-5)


def test_keras_zoo_model_one_channel_nhwc() -> None:
    """The zoo's Keras CNN (models/train_keras.py): tf2onnx writes its one-channel image's
    NHWC-to-NCHW transpose as a Reshape [N, 28, 28, 1] -> [N, 1, 28, 28] behind the
    Rescaling's Mul and Add: the input's channel is its last axis, landing on axis 1."""
    path = FIXTURES.parents[2] / "models" / "keras_fmnist.onnx"
    x = np.random.default_rng(0).uniform(0, 255, (120, 28, 28, 1)).astype(np.float32)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    assert dec.parent.cg.axes["input"] == (3,)
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:50])[:, 0],
                               logodds(ort_run(path, x[:50]))[:, 0], atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert model_stats(half.proto).macs < 0.5 * dec.parent.macs


def test_inspect_says_loop_bodies_are_not_counted() -> None:
    from click.testing import CliRunner

    from onnxdecomp.cli import main

    path = str(FIXTURES / "gru.onnx")
    res = CliRunner().invoke(main, ["inspect", path, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["uncounted_loops"] == 1
    res = CliRunner().invoke(main, ["inspect", path])
    assert "bodies of 1 Loop/Scan node(s)" in res.output
    res = CliRunner().invoke(main, ["inspect", str(FIXTURES / "lstm.onnx"), "--json"])
    assert json.loads(res.output)["uncounted_loops"] == 0
