"""UnfuseTransformerOpsPass: each op of ONNX Runtime's transformer optimiser, hand-built in
its forms (masks as row lengths or 0/1 per key, biases, the extra outputs, opsets 11 to 17),
computes with standard ops what ONNX Runtime computes with the fused one; the forms it does
not rewrite stay as they are."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdecomp.irutil import to_proto
from onnxdecomp.passes import UnfuseTransformerOpsPass

RNG = np.random.default_rng(0)
N, S, C, H = 3, 5, 8, 2
MS = "com.microsoft"


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.normal(0, 0.5, shape).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)])


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _unfused(model: onnx.ModelProto) -> onnx.ModelProto:
    m = ir.serde.deserialize_model(model)
    assert UnfuseTransformerOpsPass()(m).modified
    out = to_proto(m)
    assert not any(n.domain for n in out.graph.node), [n.op_type for n in out.graph.node]
    onnx.checker.check_model(out, full_check=True)
    return out


def _same(model: onnx.ModelProto, feeds: dict) -> None:
    for got, want in zip(_run(_unfused(model), feeds), _run(model, feeds), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def _x() -> np.ndarray:
    return RNG.normal(size=(N, S, C)).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 14, 17])
@pytest.mark.parametrize("mask", ["lengths", "raw", None])
def test_attention(opset: int, mask: str | None) -> None:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S", C])]
    feeds = {"x": _x()}
    names = ["x", "w", "b"]
    if mask == "lengths":
        inputs.append(helper.make_tensor_value_info("m", TensorProto.INT32, ["N"]))
        feeds["m"] = np.array([5, 3, 1], np.int32)
        names.append("m")
    elif mask == "raw":
        inputs.append(helper.make_tensor_value_info("m", TensorProto.INT32, ["N", "S"]))
        feeds["m"] = (RNG.random((N, S)) > 0.3).astype(np.int32)
        feeds["m"][:, 0] = 1
        names.append("m")
    node = helper.make_node("Attention", names, ["y"], domain=MS, num_heads=H)
    model = _model([node], inputs, [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, ["N", "S", C])], [_w("w", C, 3 * C), _w("b", 3 * C)], opset)
    _same(model, feeds)


def test_attention_with_other_sizes_and_scale() -> None:
    """``qkv_hidden_sizes`` (values wider than queries and keys) and an explicit scale."""
    node = helper.make_node("Attention", ["x", "w"], ["y"], domain=MS, num_heads=H,
                            qkv_hidden_sizes=[4, 4, 6], scale=0.3)
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", S, C])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", S, 6])],
                   [_w("w", C, 14)], 17)
    _same(model, {"x": _x()})


@pytest.mark.parametrize("opset", [14, 17])
def test_skip_layer_normalization_with_its_sum(opset: int) -> None:
    node = helper.make_node("SkipLayerNormalization", ["x", "skip", "g", "b", "bias"],
                            ["y", "", "", "sum"], domain=MS, epsilon=1e-5)
    relu = helper.make_node("Relu", ["sum"], ["r"])
    f = TensorProto.FLOAT
    model = _model([node, relu], [helper.make_tensor_value_info(n, f, ["N", S, C])
                                  for n in ("x", "skip")],
                   [helper.make_tensor_value_info(n, f, ["N", S, C]) for n in ("y", "r")],
                   [_w("g", C), _w("b", C), _w("bias", C)], opset)
    _same(model, {"x": _x(), "skip": _x()})


@pytest.mark.parametrize("opset", [13, 17])
def test_embed_layer_normalization(opset: int) -> None:
    names = ["ids", "segments", "words", "positions", "segment_table", "g", "b", "mask"]
    node = helper.make_node("EmbedLayerNormalization", names, ["y", "mask_index"],
                            domain=MS, epsilon=1e-12)
    i32 = TensorProto.INT32
    model = _model([node], [helper.make_tensor_value_info(n, i32, ["N", "S"])
                            for n in ("ids", "segments", "mask")],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "S", C]),
                    helper.make_tensor_value_info("mask_index", i32, ["N"])],
                   [_w("words", 20, C), _w("positions", 16, C), _w("segment_table", 2, C),
                    _w("g", C), _w("b", C)], opset)
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.int32)
    _same(model, {"ids": RNG.integers(0, 20, (N, S)).astype(np.int32) * mask,
                  "segments": RNG.integers(0, 2, (N, S)).astype(np.int32), "mask": mask})


def test_fast_gelu_and_layer_normalization_before_opset_17() -> None:
    """FastGelu with its bias; ONNX Runtime's LayerNormalization in the default domain at
    opset 14 (the standard op only exists from 17)."""
    nodes = [helper.make_node("FastGelu", ["x", "bias"], ["g"], domain=MS),
             helper.make_node("LayerNormalization", ["g", "scale", "shift"], ["y"], axis=-1,
                              epsilon=1e-5)]
    f = TensorProto.FLOAT
    model = _model(nodes, [helper.make_tensor_value_info("x", f, ["N", S, C])],
                   [helper.make_tensor_value_info("y", f, ["N", S, C])],
                   [_w("bias", C), _w("scale", C), _w("shift", C)], 14)
    _same(model, {"x": _x()})


def test_forms_without_a_rewrite_stay() -> None:
    """A causal (unidirectional) attention is left for the channel analysis to name."""
    node = helper.make_node("Attention", ["x", "w"], ["y"], domain=MS, num_heads=H,
                            unidirectional=1)
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", S, C])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", S, C])],
                   [_w("w", C, 3 * C)], 17)
    m = ir.serde.deserialize_model(model)
    assert not UnfuseTransformerOpsPass()(m).modified
    assert [n.op_type for n in m.graph] == ["Attention"]
