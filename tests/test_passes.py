"""Unit tests for each normalisation pass on tiny graphs, and for ``normalize()`` on every
conftest model (outputs kept, up to a stripped softmax)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import F32, build_sklearn_like, calib, make_model, ort_run, softmax
from onnx import helper, numpy_helper
from onnx_ir.passes import common

from onnxdecomp.decompose.head import AppendLogOddsPass, logodds_from_logits
from onnxdecomp.irutil import to_proto
from onnxdecomp.passes import (
    CanonicalizeFlattenPass,
    DequantizeScoresOutputPass,
    FoldBatchNormIntoConvPass,
    FoldConstantsPass,
    FoldMeasuredReshapeTargetsPass,
    FoldReshapeTargetsPass,
    FoldStaticPadsPass,
    FoldStaticSliceBoundsPass,
    FoldTransposedGemmInputPass,
    FoldTransposeIntoDensePass,
    FuseMatMulAddIntoGemmPass,
    HoistDequantizeOverLayoutPass,
    RemoveDropoutPass,
    RewriteChannelShufflePass,
    RewriteExperimentalOpsPass,
    RewriteQOperatorPass,
    StripOutputSoftmaxPass,
    UnfuseRuntimeOpsPass,
    infer_shapes,
    normalize,
    select_scores_output,
)

RNG = np.random.default_rng(0)


def _w(name: str, *shape: int, scale: float = 0.5) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.normal(0, scale, shape).astype(np.float32), name)


def _const(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F32, shape)


def _ir(model: onnx.ModelProto, shapes: bool = False) -> ir.Model:
    m = ir.serde.deserialize_model(model)
    if shapes:
        infer_shapes(m)
    return m


def _ops(model: onnx.ModelProto | ir.Model) -> list[str]:
    if isinstance(model, ir.Model):
        return [n.op_type for n in model.graph]
    return [n.op_type for n in model.graph.node]


def _x(shape, n: int = 6) -> np.ndarray:
    return RNG.normal(0, 1, (n, *shape[1:])).astype(np.float32)


# ------------------------------------------------------------------------ FoldConstantsPass


def test_fold_constants_reshaped_weight() -> None:
    """CNTK stores MatMul weights flat and reshapes them in the graph: folded away."""
    nodes = [
        helper.make_node("Reshape", ["w_flat", "w_shape"], ["w"], name="wr"),
        helper.make_node("Transpose", ["w"], ["wt"], name="wt", perm=[1, 0]),
        helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm"),
    ]
    inits = [_const("w_flat", RNG.normal(0, 1, 12).astype(np.float32)),
             _const("w_shape", np.array([3, 4], np.int64))]
    model = make_model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 3])], inits)
    m = _ir(model)
    assert FoldConstantsPass()(m).modified
    common.RemoveUnusedNodesPass()(m)
    assert _ops(m) == ["MatMul"]
    assert m.graph.node(0).inputs[1].const_value is not None
    x = _x([None, 4])
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=1e-6)


def test_fold_constants_skips_graph_outputs_and_random_ops() -> None:
    nodes = [
        helper.make_node("Add", ["a", "b"], ["c"], name="const_out"),
        helper.make_node("RandomNormal", [], ["r"], name="rnd", shape=[2]),
        helper.make_node("Add", ["x", "r"], ["y"], name="add"),
    ]
    inits = [_const("a", np.ones(2, np.float32)), _const("b", np.ones(2, np.float32))]
    model = make_model(nodes, [_vi("x", ["N", 2])], [_vi("y", ["N", 2]), _vi("c", [2])], inits)
    m = _ir(model)
    assert not FoldConstantsPass()(m).modified
    assert _ops(m) == ["Add", "RandomNormal", "Add"]


def test_fold_constants_at_an_old_opset() -> None:
    """Opset-7 ops (Unsqueeze's axes an attribute) are folded by that opset's rules, and
    integer folding takes an index written as a double cast to int64 (TorchScript at
    opset 7-8): shapes behind them become static."""
    nodes = [
        helper.make_node("Unsqueeze", ["w2"], ["w"], name="unsq", axes=[0]),
        helper.make_node("Cast", ["one"], ["idx"], name="cast", to=onnx.TensorProto.INT64),
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "idx"], ["dim"], name="gather"),
        helper.make_node("Add", ["x", "w"], ["y"], name="add"),
    ]
    inits = [_w("w2", 1, 3), _const("one", np.array(1.0))]
    dim = helper.make_tensor_value_info("dim", onnx.TensorProto.INT64, [])
    model = make_model(nodes, [_vi("x", ["N", 1, 3])], [_vi("y", ["N", 1, 3]), dim], inits,
                       opset=7)
    m = _ir(model)
    assert FoldConstantsPass(integers_only=True)(m).modified
    assert _ops(m) == ["Unsqueeze", "Shape", "Gather", "Add"]  # the weight is left
    assert FoldConstantsPass()(m).modified
    assert _ops(m) == ["Shape", "Gather", "Add"]
    x = _x([None, 1, 3])
    np.testing.assert_array_equal(ort_run(to_proto(m), x), ort_run(model, x))


# ------------------------------------------------------------------------ Dropout / Identity


def test_remove_dropout_then_identity_elimination() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["d"], name="drop"),
        helper.make_node("Identity", ["d"], ["i"], name="ident"),
        helper.make_node("Gemm", ["i", "w", "b"], ["i2"], name="fc", transB=1),
        helper.make_node("Dropout", ["i2", "ratio"], ["y"], name="drop_out"),
    ]
    inits = [_w("w", 3, 4), _w("b", 3), _const("ratio", np.float32(0.3))]
    model = make_model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 3])], inits)
    m = _ir(model)
    assert RemoveDropoutPass()(m).modified
    assert "Dropout" not in _ops(m)
    common.IdentityEliminationPass()(m)
    common.RemoveUnusedNodesPass()(m)
    assert _ops(m) == ["Relu", "Gemm"]
    out = to_proto(m)
    assert [o.name for o in out.graph.output] == ["y"]
    x = _x([None, 4])
    np.testing.assert_allclose(ort_run(out, x), ort_run(model, x), atol=1e-6)


def test_gemm_transposing_back_a_transposed_input_reads_the_input() -> None:
    """Gemm(Transpose(x), W, transA=1) = Gemm(x, W): the Transpose goes, the outputs stay;
    then the dense layers decompose (transA=1 stopped the analysis before)."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["rt"], name="t", perm=[1, 0]),
        helper.make_node("Gemm", ["rt", "w2", "b2"], ["y"], name="fc2", transA=1, alpha=0.5),
    ]
    inits = [_w("w1", 6, 4), _w("b1", 6), _w("w2", 6, 3), _w("b2", 3)]
    model = make_model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 3])], inits)
    m = _ir(model)
    assert FoldTransposedGemmInputPass()(m).modified
    assert _ops(m) == ["Gemm", "Relu", "Gemm"]
    x = _x([None, 4])
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=1e-6)
    from onnxdecomp.decompose import Decomposer, Settings

    dec = Decomposer(model, _x([None, 4], 60), None, Settings(device="cpu", align=1))
    assert dec.build(0, 0.5, check=True).removed


def test_dropout_with_used_mask_stays() -> None:
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop"),
        helper.make_node("Cast", ["mask"], ["mf"], name="cast", to=F32),
        helper.make_node("Add", ["d", "mf"], ["y"], name="add"),
    ]
    model = make_model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 4])], [])
    m = _ir(model)
    assert not RemoveDropoutPass()(m).modified
    assert "Dropout" in _ops(m)


# ------------------------------------------------------------------------ BatchNorm folding


def _conv_bn(bias: bool, extra_use: bool = False) -> onnx.ModelProto:
    conv_in = ["x", "w", "cb"] if bias else ["x", "w"]
    nodes = [
        helper.make_node("Conv", conv_in, ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["y"], name="relu"),
    ]
    outputs = [_vi("y", ["N", 4, 5, 5])]
    if extra_use:
        nodes.append(helper.make_node("Neg", ["c"], ["c_neg"], name="neg"))
        outputs.append(_vi("c_neg", ["N", 4, 5, 5]))
    inits = [_w("w", 4, 2, 3, 3), _w("cb", 4), _const("g", RNG.uniform(0.5, 2, 4).astype(
        np.float32)), _w("be", 4), _w("mu", 4), _const("var", RNG.uniform(0.5, 2, 4).astype(
            np.float32))]
    return make_model(nodes, [_vi("x", ["N", 2, 5, 5])], outputs, inits)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batchnorm_into_conv(bias: bool) -> None:
    model = _conv_bn(bias)
    m = _ir(model)
    assert FoldBatchNormIntoConvPass()(m).modified
    common.RemoveUnusedNodesPass()(m)
    assert _ops(m) == ["Conv", "Relu"]
    assert len(m.graph.node(0).inputs) == 3
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    x = _x([None, 2, 5, 5])
    np.testing.assert_allclose(ort_run(out, x), ort_run(model, x), atol=1e-5, rtol=1e-5)


def test_batchnorm_fold_computes_as_onnxruntime() -> None:
    """ONNX Runtime fuses a Conv's BatchNormalization itself, in float32; a fold in another
    precision gives other weights, and a deep net's log-odds drift past 1e-5 (TorchScript
    at opset 7-8 leaves every BatchNormalization unfolded). The fold is ORT's, bit for bit."""
    model = _conv_bn(True)
    for init in model.graph.initializer:  # statistics that make rounding matter
        if init.name in ("mu", "var"):
            arr = onnx.numpy_helper.to_array(init) * np.float32(37.3)
            init.CopyFrom(onnx.numpy_helper.from_array(np.abs(arr) + np.float32(1e-3),
                                                       init.name))
    m = _ir(model)
    FoldBatchNormIntoConvPass()(m)
    x = _x([None, 2, 5, 5], n=20)
    np.testing.assert_array_equal(ort_run(to_proto(m), x), ort_run(model, x))


def test_batchnorm_not_folded_when_conv_output_is_shared() -> None:
    m = _ir(_conv_bn(True, extra_use=True))
    assert not FoldBatchNormIntoConvPass()(m).modified
    assert "BatchNormalization" in _ops(m)


def test_batchnorm_after_add_stays(get_case) -> None:
    m = _ir(onnx.load(str(get_case("bn_add").path)))
    FoldBatchNormIntoConvPass()(m)
    assert _ops(m).count("BatchNormalization") == 1


def test_batchnorm_fold_keeps_graph_output_name() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["y"], name="bn"),
    ]
    inits = [_w("w", 3, 2, 1, 1), _const("g", np.ones(3, np.float32)), _w("be", 3),
             _w("mu", 3), _const("var", np.ones(3, np.float32))]
    model = make_model(nodes, [_vi("x", ["N", 2, 4, 4])], [_vi("y", ["N", 3, 4, 4])], inits)
    m = _ir(model)
    FoldBatchNormIntoConvPass()(m)
    out = to_proto(m)
    assert _ops(out) == ["Conv"] and out.graph.output[0].name == "y"
    x = _x([None, 2, 4, 4])
    np.testing.assert_allclose(ort_run(out, x), ort_run(model, x), atol=1e-5)


# ------------------------------------------------------------------------ MatMul + Add -> Gemm


@pytest.mark.parametrize("form", ["matmul_add", "add_bias_first", "bare_matmul",
                                  "bias_1xM"])
def test_fuse_matmul_add_into_gemm(form: str) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w"], ["mm" if form != "bare_matmul" else "y"],
                              name="dense")]
    if form == "matmul_add":
        nodes.append(helper.make_node("Add", ["mm", "b"], ["y"], name="bias"))
    elif form == "add_bias_first":
        nodes.append(helper.make_node("Add", ["b", "mm"], ["y"], name="bias"))
    elif form == "bias_1xM":
        nodes.append(helper.make_node("Add", ["mm", "b2"], ["y"], name="bias"))
    inits = [_w("w", 6, 3), _w("b", 3), _const("b2", RNG.normal(0, 1, (1, 3)).astype(
        np.float32))]
    inits = [t for t in inits if any(t.name in n.input for n in nodes)]
    model = make_model(nodes, [_vi("x", ["N", 6])], [_vi("y", ["N", 3])], inits)
    m = _ir(model, shapes=True)
    assert FuseMatMulAddIntoGemmPass()(m).modified
    common.RemoveUnusedNodesPass()(m)
    assert _ops(m) == ["Relu", "Gemm"]
    out = to_proto(m)
    assert out.graph.output[0].name == "y"
    onnx.checker.check_model(out, full_check=True)
    x = _x([None, 6])
    np.testing.assert_allclose(ort_run(out, x), ort_run(model, x), atol=1e-5)


def test_matmul_over_rank_3_is_left_alone() -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")]
    model = make_model(nodes, [_vi("x", ["N", 2, 6])], [_vi("y", ["N", 2, 3])], [_w("w", 6, 3)])
    m = _ir(model, shapes=True)
    assert not FuseMatMulAddIntoGemmPass()(m).modified


# ------------------------------------------------------------------------ Reshape -> Flatten


def _reshape_model(target, batch="N") -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["y"], name="reshape")]
    out = [None] * len(target)
    return make_model(nodes, [_vi("x", [batch, 4, 3, 3])], [_vi("y", out)],
                      [_const("shape", np.array(target, np.int64))])


@pytest.mark.parametrize("target,batch", [([-1, 36], "N"), ([0, 36], "N"), ([0, -1], "N"),
                                          ([1, 36], 1), ([1, -1], 1)])
def test_flattening_reshape_becomes_flatten(target, batch) -> None:
    model = _reshape_model(target, batch)
    m = _ir(model, shapes=True)
    assert CanonicalizeFlattenPass()(m).modified
    out = to_proto(m)
    assert _ops(out) == ["Relu", "Flatten"]
    assert out.graph.output[0].name == "y"
    x = _x([1 if batch == 1 else None, 4, 3, 3], n=1 if batch == 1 else 5)
    np.testing.assert_array_equal(ort_run(out, x), ort_run(model, x))


@pytest.mark.parametrize("target,batch", [([-1, 9], "N"), ([-1, 4, 9], "N"), ([1, 36], "N"),
                                          ([2, 18], 1)])
def test_other_reshapes_stay(target, batch) -> None:
    m = _ir(_reshape_model(target, batch), shapes=True)
    assert not CanonicalizeFlattenPass()(m).modified
    assert _ops(m) == ["Relu", "Reshape"]


def test_computed_reshape_target_folds_then_flattens() -> None:
    """TorchScript's ``x.view(x.size(0), -1)``: Reshape to Concat(Shape(x)[0], [-1]) gets the
    constant target [0, -1], which is a Flatten."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
             helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
             helper.make_node("Reshape", ["r", "target"], ["y"], name="view")]
    model = make_model(nodes, [_vi("x", ["N", 4, 3, 3])], [_vi("y", ["N", "F"])],
                       [_const("zero", np.array(0, np.int64)),
                        _const("zero1", np.array([0], np.int64)),
                        _const("minus1", np.array([-1], np.int64))])
    m = _ir(model, shapes=True)
    assert FoldReshapeTargetsPass()(m).modified
    reshape = next(n for n in m.graph if n.op_type == "Reshape")
    assert reshape.inputs[1].const_value.numpy().tolist() == [0, -1]
    common.RemoveUnusedNodesPass()(m)
    infer_shapes(m)
    assert CanonicalizeFlattenPass()(m).modified
    assert _ops(m) == ["Relu", "Flatten"]
    x = _x([None, 4, 3, 3])
    np.testing.assert_array_equal(ort_run(to_proto(m), x), ort_run(model, x))


def test_fold_static_slice_bounds() -> None:
    """``torch.chunk(r, 2, dim=1)`` as TorchScript writes it: bounds from Shape(r)[1]."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "one"], ["c"], name="channels", axis=0),
             helper.make_node("Add", ["c", "one"], ["c1"], name="add"),
             helper.make_node("Div", ["c1", "two"], ["half"], name="div"),
             helper.make_node("Mul", ["half", "two"], ["end"], name="mul"),
             helper.make_node("Slice", ["r", "zero", "half", "one"], ["a"], name="first"),
             helper.make_node("Slice", ["r", "half", "end", "one"], ["b"], name="second"),
             helper.make_node("Sub", ["a", "b"], ["y"], name="sub")]
    model = make_model(nodes, [_vi("x", ["N", 6, 3, 3])], [_vi("y", ["N", "C", 3, 3])],
                       [_const("zero", np.array([0], np.int64)),
                        _const("one", np.array([1], np.int64)),
                        _const("two", np.array([2], np.int64))])
    m = _ir(model, shapes=True)
    assert FoldStaticSliceBoundsPass()(m).modified
    slices = [n for n in m.graph if n.op_type == "Slice"]
    assert all(v.const_value is not None for n in slices for v in n.inputs[1:])
    assert [n.inputs[2].const_value.numpy().tolist() for n in slices] == [[3], [6]]
    common.RemoveUnusedNodesPass()(m)
    infer_shapes(m)
    assert list(next(n for n in m.graph if n.op_type == "Sub").inputs[0].shape)[1:] == [3, 3, 3]
    assert "Shape" not in _ops(m)
    x = _x([None, 6, 3, 3])
    np.testing.assert_array_equal(ort_run(to_proto(m), x), ort_run(model, x))


def _shuffle_model(first: list[int], perm: list[int]) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "split"], ["s"], name="split"),
             helper.make_node("Transpose", ["s"], ["t"], name="swap", perm=perm),
             helper.make_node("Reshape", ["t", "merge"], ["y"], name="merge")]
    return make_model(nodes, [_vi("x", ["N", 6, 2, 2])], [_vi("y", ["N", 6, 2, 2])],
                      [_const("split", np.array(first, np.int64)),
                       _const("merge", np.array([-1, 6, 2, 2], np.int64))])


def test_channel_shuffle_becomes_gather() -> None:
    model = _shuffle_model([-1, 2, 3, 2, 2], [0, 2, 1, 3, 4])
    m = _ir(model, shapes=True)
    assert RewriteChannelShufflePass()(m).modified
    assert _ops(m) == ["Relu", "Gather"]
    gather = next(n for n in m.graph if n.op_type == "Gather")
    assert gather.inputs[1].const_value.numpy().tolist() == [0, 3, 1, 4, 2, 5]
    x = _x([None, 6, 2, 2])
    np.testing.assert_array_equal(ort_run(to_proto(m), x), ort_run(model, x))


def test_transpose_of_positions_is_no_shuffle() -> None:
    """Swapping rows and columns moves values between positions, not channels: left."""
    model = _shuffle_model([-1, 6, 2, 2], [0, 1, 3, 2])
    m = _ir(model, shapes=True)
    assert not RewriteChannelShufflePass()(m).modified
    assert _ops(m) == ["Relu", "Reshape", "Transpose", "Reshape"]


def test_qoperator_ops_become_qdq() -> None:
    """QLinearConv (per-channel int8 weight, int32 bias) and QLinearMatMul as DequantizeLinear,
    the float op, QuantizeLinear: the same outputs (ONNX Runtime's reference kernels)."""
    q = lambda name, a, t=np.int8: _const(name, np.asarray(a, t))  # noqa: E731
    f = lambda name, a: _const(name, np.asarray(a, np.float32))  # noqa: E731
    inits = [f("xs", 0.05), q("xz", 128, np.uint8), q("w", RNG.integers(-90, 90, (4, 2, 3, 3))),
             f("ws", [0.02, 0.03, 0.01, 0.04]), q("wz", [0, 0, 0, 0]), f("ys", 0.1),
             q("yz", 120, np.uint8), q("b", RNG.integers(-500, 500, 4), np.int32),
             q("m", RNG.integers(-90, 90, (64, 3))), f("ms", 0.02), q("mz", 0),
             f("zs", 0.2), q("zz", 128, np.uint8), _const("shape", np.array([-1, 64]))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz",
                                              "b"], ["yq"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["yq", "shape"], ["fq"]),
             helper.make_node("QLinearMatMul", ["fq", "ys", "yz", "m", "ms", "mz", "zs",
                                                "zz"], ["zq"]),
             helper.make_node("DequantizeLinear", ["zq", "zs", "zz"], ["z"])]
    model = make_model(nodes, [_vi("x", ["N", 2, 4, 4])], [_vi("z", ["N", 3])], inits)
    m = _ir(model)
    assert RewriteQOperatorPass()(m).modified
    assert "QLinearConv" not in _ops(m) and "QLinearMatMul" not in _ops(m)
    assert _ops(m).count("Conv") == 1 and _ops(m).count("MatMul") == 1
    x = RNG.uniform(-3, 3, (16, 2, 4, 4)).astype(np.float32)
    got, want = ort_run(to_proto(m), x), ort_run(model, x)
    assert np.mean(np.isclose(got, want, atol=1e-5)) > 0.95  # one rounding step at most
    np.testing.assert_allclose(got, want, atol=0.2 + 1e-5)


@pytest.mark.parametrize("quantized_out", [False, True])
def test_qgemm_becomes_qdq(quantized_out: bool) -> None:
    """ONNX Runtime's QGemm (com.microsoft), its output quantised or float (no y_scale)."""
    q = lambda name, a, t=np.int8: _const(name, np.asarray(a, t))  # noqa: E731
    f = lambda name, a: _const(name, np.asarray(a, np.float32))  # noqa: E731
    inits = [f("xs", 0.05), q("xz", 128, np.uint8), q("w", RNG.integers(-90, 90, (3, 8))),
             f("ws", [0.02, 0.03, 0.01]), q("wz", [0, 0, 0]),
             q("b", RNG.integers(-500, 500, 3), np.int32), f("ys", 0.1), q("yz", 120, np.uint8)]
    out = ["ys", "yz"] if quantized_out else []
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QGemm", ["xq", "xs", "xz", "w", "ws", "wz", "b", *out], ["y"],
                              domain="com.microsoft", transB=1)]
    if quantized_out:
        nodes.append(helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["z"]))
    graph = helper.make_graph(nodes, "g", [_vi("x", ["N", 8])],
                              [_vi("z" if quantized_out else "y", ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8)
    m = _ir(model)
    assert RewriteQOperatorPass()(m).modified
    assert "Gemm" in _ops(m) and "QGemm" not in _ops(m)
    assert _ops(m).count("QuantizeLinear") == 1 + quantized_out
    x = RNG.uniform(-3, 3, (32, 8)).astype(np.float32)
    got, want = ort_run(to_proto(m), x), ort_run(model, x)
    assert np.mean(np.isclose(got, want, atol=1e-4)) > 0.95
    np.testing.assert_allclose(got, want, atol=0.2)


@pytest.mark.parametrize("activation,params", [("Relu", []), ("Clip", [0.0, 6.0]),
                                               ("LeakyRelu", [0.1])])
def test_fused_conv_with_summand_unfuses(activation: str, params: list) -> None:
    """ONNX Runtime's FusedConv(X, W, B, Z): activation(conv + Z), as Conv, Add, activation."""
    attrs = {"activation": activation, "pads": [1, 1, 1, 1]}
    if params:
        attrs["activation_params"] = params
    nodes = [helper.make_node("Relu", ["x"], ["z"]),
             helper.make_node("FusedConv", ["x", "w", "b", "z"], ["y"], domain="com.microsoft",
                              **attrs)]
    graph = helper.make_graph(nodes, "g", [_vi("x", ["N", 3, 5, 5])], [_vi("y", ["N", 3, 5, 5])],
                              [_w("w", 3, 3, 3, 3), _w("b", 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8)
    m = _ir(model)
    assert UnfuseRuntimeOpsPass()(m).modified
    assert _ops(m) == ["Relu", "Conv", "Add", activation]
    x = RNG.normal(0, 2, (4, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=1e-5)


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_channels_last_flatten_folds_into_dense(op: str) -> None:
    """Keras' Transpose(0, 2, 3, 1) -> Flatten -> dense: the weight rows permuted instead."""
    w = _w("w", 5, 36) if op == "Gemm" else _w("w", 36, 5)
    dense = (helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1) if op == "Gemm"
             else helper.make_node("MatMul", ["f", "w"], ["y"], name="fc"))
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Transpose", ["r"], ["t"], name="nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"], name="flat", axis=1), dense]
    model = make_model(nodes, [_vi("x", ["N", 4, 3, 3])], [_vi("y", ["N", 5])], [w])
    m = _ir(model, shapes=True)
    assert FoldTransposeIntoDensePass()(m).modified
    assert _ops(m) == ["Relu", "Flatten", op]
    x = _x([None, 4, 3, 3])
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=1e-5)


def test_pads_computed_from_a_static_shape_fold() -> None:
    """TorchScript's F.pad(x, (0, 0, 0, (5 - W % 5) % 5)) on [N, 4, 6, 3]: the amounts go
    through Shape, Mod, ConstantOfShape, a Reshape to [-1, 2], a reversing Slice and a
    Transpose before the Pad; as a constant they are [0, 0, 0, 0, 0, 0, 4, 0]."""
    ints = {name: numpy_helper.from_array(np.array(v, dtype=np.int64), name) for name, v in {
        "two": [2], "five": 5, "zeros3": [0, 0, 0], "eight": 8, "pairs": [-1, 2],
        "m1": [-1], "lowest": [np.iinfo(np.int64).min + 1], "zero": [0], "flat": [-1]}.items()}
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "two"], ["w"], name="w", axis=0),
             helper.make_node("Mod", ["w", "five"], ["wm"], name="wm"),
             helper.make_node("Sub", ["five", "wm"], ["d"], name="d"),
             helper.make_node("Mod", ["d", "five"], ["r"], name="r"),
             helper.make_node("Concat", ["zeros3", "r"], ["p"], name="p", axis=0),
             helper.make_node("Shape", ["p"], ["ps"], name="ps"),
             helper.make_node("Sub", ["eight", "ps"], ["rest"], name="rest"),
             helper.make_node("ConstantOfShape", ["rest"], ["z"], name="z",
                              value=numpy_helper.from_array(np.zeros(1, np.int64))),
             helper.make_node("Concat", ["p", "z"], ["all"], name="all", axis=0),
             helper.make_node("Reshape", ["all", "pairs"], ["pp"], name="pp"),
             helper.make_node("Slice", ["pp", "m1", "lowest", "zero", "m1"], ["rev"],
                              name="rev"),
             helper.make_node("Transpose", ["rev"], ["t"], name="t", perm=[1, 0]),
             helper.make_node("Reshape", ["t", "flat"], ["pads"], name="pads"),
             helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")]
    model = make_model(nodes, [_vi("x", ["N", 4, 6, 3])], [_vi("y", ["N", 4, 10, 3])],
                       list(ints.values()))
    m = _ir(model, shapes=True)
    assert FoldStaticPadsPass()(m).modified
    pad = next(n for n in m.graph if n.op_type == "Pad")
    np.testing.assert_array_equal(pad.inputs[1].const_value.numpy(), [0, 0, 0, 0, 0, 0, 4, 0])
    x = _x([None, 4, 6, 3])
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=0)


def test_reshape_target_with_the_batch_multiplied_beside_a_minus_one_is_measured() -> None:
    """``x.reshape(N * 4, -1)`` on [N, 4, 6]: no entry-wise fold names both entries; run at
    two batch sizes, the output is [8, 6] then [12, 6], so the target is [-1, 6]."""
    ints = {name: numpy_helper.from_array(np.array(v, dtype=np.int64), name) for name, v in {
        "zero": [0], "four": [4], "m1": [-1]}.items()}
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="n", axis=0),
             helper.make_node("Mul", ["n", "four"], ["n4"], name="n4"),
             helper.make_node("Concat", ["n4", "m1"], ["target"], name="target", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    model = make_model(nodes, [_vi("x", ["N", 4, 6])], [_vi("y", ["M", 6])],
                       list(ints.values()))
    m = _ir(model, shapes=True)
    assert FoldMeasuredReshapeTargetsPass()(m).modified
    reshape = next(n for n in m.graph if n.op_type == "Reshape")
    np.testing.assert_array_equal(reshape.inputs[1].const_value.numpy(), [-1, 6])
    x = _x([None, 4, 6])
    np.testing.assert_allclose(ort_run(to_proto(m), x), ort_run(model, x), atol=0)


def test_transpose_back_to_channels_first_is_not_folded() -> None:
    """torchvision's ConvNeXt head: a channels-last LayerNorm between Transposes, then
    Flatten: the last Transpose restores channels-first, so the Flatten keeps reading it."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["t"], ["r"], name="relu"),
             helper.make_node("Transpose", ["r"], ["c"], name="nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Flatten", ["c"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)]
    model = make_model(nodes, [_vi("x", ["N", 4, 1, 1])], [_vi("y", ["N", 5])],
                       [_w("w", 5, 4)])
    m = _ir(model, shapes=True)
    assert not FoldTransposeIntoDensePass()(m).modified
    assert _ops(m) == ["Transpose", "Relu", "Transpose", "Flatten", "Gemm"]


@pytest.mark.parametrize("zipmap", [True, False])
def test_select_scores_output_keeps_the_probabilities(zipmap: bool) -> None:
    model = build_sklearn_like(zipmap)
    onnx.checker.check_model(model, full_check=True)
    scores = select_scores_output(model)
    onnx.checker.check_model(scores, full_check=True)
    assert [o.name for o in scores.graph.output] == ["probabilities"]
    assert [n.op_type for n in scores.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    x = _x([None, 6])
    np.testing.assert_allclose(ort_run(scores, x), _probabilities(x), atol=1e-6)
    assert _ops(normalize(_ir(scores))) == ["Gemm", "Relu", "Gemm"]  # the logits
    assert select_scores_output(scores) is scores  # one output: as it is


@pytest.mark.parametrize("second", ["Softmax", "Relu"])
def test_select_scores_output_of_two_float_outputs(second: str) -> None:
    """Logits beside their softmax: the logits. Beside anything else (features): refused."""
    from onnxdecomp.errors import UnsupportedModelError

    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], transB=1),
             helper.make_node(second, ["logits"], ["other"])]
    graph = helper.make_graph(nodes, "g", [_vi("x", ["N", 4])],
                              [_vi("logits", ["N", 3]), _vi("other", ["N", 3])],
                              [_w("w", 3, 4), _w("b", 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if second == "Relu":
        with pytest.raises(UnsupportedModelError, match=r"logits \[N, 3\], other \[N, 3\]"):
            select_scores_output(model)
        return
    picked = select_scores_output(model)
    assert [o.name for o in picked.graph.output] == ["logits"] and _ops(picked) == ["Gemm"]


def test_select_scores_output_reads_through_a_lone_zipmap() -> None:
    model = build_sklearn_like(True)
    del model.graph.output[0]  # only the sequence of maps left: onnx-ir could not read it
    scores = select_scores_output(model)
    assert [o.name for o in scores.graph.output] == ["probabilities"]
    assert "ZipMap" not in _ops(scores)


def _probabilities(x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(build_sklearn_like(False).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {"x": x})[0]


# ------------------------------------------------------------------------ output softmax


def _head(op: str | None, axis: int = 1) -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["z" if op else "probs"], name="fc",
                              transB=1)]
    if op:
        nodes.append(helper.make_node(op, ["z"], ["probs"], name="sm", axis=axis))
    return make_model(nodes, [_vi("x", ["N", 5])], [_vi("probs", ["N", 4])],
                      [_w("w", 4, 5, scale=2.0), _w("b", 4)])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_strip_output_softmax(op: str) -> None:
    model = _head(op)
    m = _ir(model)
    p = StripOutputSoftmaxPass()
    assert p(m).modified and p.stripped == op
    out = to_proto(m)
    assert _ops(out) == ["Gemm"] and out.graph.output[0].name == "probs"
    x = _x([None, 5], n=30)
    before, after = ort_run(model, x), ort_run(out, x)
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))
    expect = np.log(before) if op == "Softmax" else before
    np.testing.assert_allclose(logodds_from_logits(after), logodds_from_logits(expect),
                               atol=1e-4)


def test_strip_output_softmax_behind_a_float_cast() -> None:
    """A float16 model with float32 outputs (onnxconverter-common's ``keep_io_types``): the
    softmax goes, the Cast stays, on the logits."""
    f16 = onnx.TensorProto.FLOAT16
    nodes = [helper.make_node("Cast", ["x"], ["x16"], name="in", to=f16),
             helper.make_node("Gemm", ["x16", "w", "b"], ["z"], name="fc", transB=1),
             helper.make_node("Softmax", ["z"], ["p16"], name="sm", axis=1),
             helper.make_node("Cast", ["p16"], ["probs"], name="out", to=F32)]
    inits = [numpy_helper.from_array(RNG.normal(0, 2, shape).astype(np.float16), name)
             for name, shape in (("w", (4, 5)), ("b", (4,)))]
    model = make_model(nodes, [_vi("x", ["N", 5])], [_vi("probs", ["N", 4])], inits)
    m = _ir(model)
    p = StripOutputSoftmaxPass()
    assert p(m).modified and p.stripped == "Softmax"
    out = to_proto(m)
    assert _ops(out) == ["Cast", "Gemm", "Cast"] and out.graph.output[0].name == "probs"
    x = _x([None, 5], n=30)
    np.testing.assert_allclose(logodds_from_logits(ort_run(out, x)),
                               logodds_from_logits(np.log(ort_run(model, x))), atol=2e-2)


def test_softmax_over_batch_axis_is_kept() -> None:
    m = _ir(_head("Softmax", axis=0))
    p = StripOutputSoftmaxPass()
    assert not p(m).modified and p.stripped is None


@pytest.mark.parametrize("axis,stripped", [(None, False), (1, False), (2, True), (-1, True)])
def test_softmax_before_opset13_over_several_axes(axis: int | None, stripped: bool) -> None:
    """Before opset 13 a Softmax normalises over every axis from ``axis`` (default 1) on:
    over a tagger's [N, T, K] at axis 1 it mixes the steps, no per-step shift to strip."""
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("Add", ["x", "b"], ["z"], name="add"),
             helper.make_node("Softmax", ["z"], ["probs"], name="sm", **attrs)]
    model = make_model(nodes, [_vi("x", ["N", 3, 4])], [_vi("probs", ["N", 3, 4])],
                       [_w("b", 4)], opset=11)
    p = StripOutputSoftmaxPass()
    assert p(_ir(model, shapes=True)).modified is stripped


# ------------------------------------------------------------------------ experimental ops


def test_rewrite_experimental_ops() -> None:
    """Opset 1-9's ImageScaler, Affine, ScaledTanh and ParametricSoftplus (ONNX Runtime still
    runs them) as standard ops computing the same, and a module of such a model decomposes:
    the ImageScaler's per-channel bias on a conv's output is sliced with its channels."""
    nodes = [helper.make_node("ImageScaler", ["x"], ["s"], name="scaler", scale=0.5,
                              bias=[0.1, -0.2, 0.3]),
             helper.make_node("Conv", ["s", "w"], ["c"], name="conv"),
             helper.make_node("ImageScaler", ["c"], ["c2"], name="scaler2", scale=2.0,
                              bias=[0.5, -1.0, 0.2, 0.0]),
             helper.make_node("ScaledTanh", ["c2"], ["t"], name="tanh", alpha=1.5, beta=0.7),
             helper.make_node("ParametricSoftplus", ["t"], ["p"], name="softplus", alpha=0.8,
                              beta=1.3),
             helper.make_node("Affine", ["p"], ["a"], name="affine", alpha=2.0, beta=-1.0),
             helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "h", "hb"], ["y"], name="head", transB=1)]
    model = make_model(nodes, [_vi("x", ["N", 3, 5, 5])], [_vi("y", ["N", 3])],
                       [_w("w", 4, 3, 3, 3), _w("h", 3, 4, scale=2.0), _w("hb", 3)], opset=8)
    m = _ir(model)
    assert RewriteExperimentalOpsPass()(m).modified
    assert not {"ImageScaler", "Affine", "ScaledTanh", "ParametricSoftplus"} & set(_ops(m))
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    x = _x([None, 3, 5, 5], n=30)
    np.testing.assert_allclose(ort_run(out, x), ort_run(model, x), atol=1e-5, rtol=1e-5)
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.stats import model_stats

    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    half = dec.build(0, 0.5, check=True)
    assert half.removed and model_stats(half.proto).macs < dec.parent.macs
    assert ort_run(half.proto, x[:4]).shape == (4, 1)


# ------------------------------------------------------------------------ quantised layout


def _tflite_like(per_channel: bool = False) -> onnx.ModelProto:
    """tf2onnx's quantised TFLite head: int8 codes transposed to NHWC and flattened, then
    dequantised into a dense layer whose int8 logits are the output."""
    i8 = onnx.TensorProto.INT8
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant"),
        helper.make_node("Transpose", ["q"], ["t"], name="nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "flat"], ["f"], name="flatten"),
        helper.make_node("DequantizeLinear", ["f", "ds", "dz"], ["d"], name="dequant",
                         **({"axis": 1} if per_channel else {})),
        helper.make_node("MatMul", ["d", "w"], ["m"], name="dense"),
        helper.make_node("QuantizeLinear", ["m", "os", "oz"], ["y"], name="logits"),
    ]
    scale = RNG.uniform(0.01, 0.02, 12 if per_channel else ()).astype(np.float32)
    inits = [_const("s", np.float32(0.02)), _const("z", np.int8(3)), _const("ds", scale),
             _const("dz", np.full(scale.shape, 3, np.int8)),
             _const("flat", np.array([-1, 12], np.int64)), _w("w", 12, 4),
             _const("os", np.float32(0.05)), _const("oz", np.int8(-2))]
    return make_model(nodes, [_vi("x", ["N", 3, 2, 2])],
                      [helper.make_tensor_value_info("y", i8, ["N", 4])], inits)


def test_hoist_dequantize_over_layout() -> None:
    """A per-tensor dequantisation commutes with transposes and flattens, bit for bit."""
    model = _tflite_like()
    m = _ir(model)
    assert HoistDequantizeOverLayoutPass()(m).modified
    assert _ops(m) == ["QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape",
                       "MatMul", "QuantizeLinear"]
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    x = _x([None, 3, 2, 2], n=40)
    np.testing.assert_array_equal(ort_run(out, x), ort_run(model, x))


def test_per_channel_dequantize_stays_behind_layout() -> None:
    """One scale per channel along an axis the layout ops move: not hoisted."""
    m = _ir(_tflite_like(per_channel=True))
    assert not HoistDequantizeOverLayoutPass()(m).modified


def test_dequantize_scores_output() -> None:
    """int8 logits become the floats they stand for, under the output's name."""
    model = _tflite_like()
    m = _ir(model)
    assert DequantizeScoresOutputPass()(m).modified
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    assert out.graph.output[0].name == "y"
    assert out.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = _x([None, 3, 2, 2], n=40)
    np.testing.assert_array_equal(
        ort_run(out, x), (ort_run(model, x).astype(np.float32) + 2) * np.float32(0.05))


# ------------------------------------------------------------------------ log-odds head


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("k", [0, 3])
def test_append_logodds(opset: int, k: int) -> None:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="fc", transB=1)]
    model = make_model(nodes, [_vi("x", ["N", 5])], [_vi("logits", ["N", 4])],
                       [_w("w", 4, 5, scale=2.0), _w("b", 4)], opset=opset)
    m = _ir(model)
    AppendLogOddsPass(k, 4)(m)
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == ["score"]
    dims = out.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 1
    x = _x([None, 5], n=30)
    expected = logodds_from_logits(ort_run(model, x))[:, k]
    np.testing.assert_allclose(ort_run(out, x)[:, 0], expected, atol=1e-5)


def test_append_logodds_rejects_bad_class() -> None:
    with pytest.raises(ValueError):
        AppendLogOddsPass(4, 4)


def test_append_logodds_when_logits_are_named_score() -> None:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["score"], name="fc", transB=1)]
    model = make_model(nodes, [_vi("x", ["N", 5])], [_vi("score", ["N", 4])],
                       [_w("w", 4, 5), _w("b", 4)])
    m = _ir(model)
    AppendLogOddsPass(1, 4)(m)
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    x = _x([None, 5])
    np.testing.assert_allclose(ort_run(out, x)[:, 0],
                               logodds_from_logits(ort_run(model, x))[:, 1], atol=1e-5)


# ------------------------------------------------------------------------ normalize()


def test_normalize_keeps_outputs(model_case) -> None:
    proto = onnx.load(str(model_case.path))
    m = normalize(ir.serde.deserialize_model(proto))
    out = to_proto(m)
    onnx.checker.check_model(out, full_check=True)
    ops = _ops(out)
    for gone in ("Dropout", "Identity", "Constant", "MatMul", "Softmax", "Reshape"):
        assert gone not in ops, gone
    # BN left only where no Conv feeds it directly
    producers = {o: n for n in out.graph.node for o in n.output}
    for n in out.graph.node:
        if n.op_type == "BatchNormalization":
            assert producers[n.input[0]].op_type != "Conv"
    assert ops.count("BatchNormalization") == (1 if model_case.name == "bn_add" else 0)
    assert [o.name for o in out.graph.output] == [o.name for o in proto.graph.output]
    assert [i.name for i in out.graph.input] == [i.name for i in proto.graph.input]
    x = calib(model_case.input_shape, 20, seed=11)
    before, after = ort_run(proto, x), ort_run(out, x)
    if model_case.probs:
        after = softmax(after.astype(np.float64))
    np.testing.assert_allclose(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("equation", "transposed"), [
    ("nk,ko->no", False), ("nk,ok->no", True), ("...k,ko->...o", False),
    ("btk,ok->bto", True), ("n k , k o -> n o", False),
    ("nk,ko->on", None), ("kn,ko->no", None), ("nk,kk->nk", None), ("nk,k->n", None),
    ("nk,ko,oj->nj", None), ("nko,ko->no", None)])
def test_einsum_matmul_form(equation: str, transposed: bool | None) -> None:
    from onnxdecomp.passes.rewrite_einsum_as_matmul import matmul_form

    assert matmul_form(equation) is transposed


@pytest.mark.parametrize(("equation", "form"), [
    ("bhid,bhjd->bhij", (False, True, False)), ("bhij,bhjd->bhid", (False, False, False)),
    ("bij,bjk->bki", (False, False, True)), ("bji,bjk->bik", (True, False, False)),
    ("ij,kj->ki", (False, True, True)), ("bhid,bhjd->bhdj", None), ("bhid,hbjd->bhij", None),
    ("...id,...jd->...ij", None), ("bij,bjk->bk", None), ("bii,bik->bik", None),
    ("bij,bij->bij", None)])
def test_einsum_batched_form(equation: str, form) -> None:
    from onnxdecomp.passes.rewrite_einsum_as_matmul import batched_form

    assert batched_form(equation) == form


@pytest.mark.parametrize("equation", ["bhid,bhjd->bhij", "bij,bjk->bki", "bji,bjk->bik",
                                      "ij,kj->ki", "b h i d, b h j d -> b h i j"])
def test_einsum_of_two_tensors_becomes_matmul(equation: str) -> None:
    """The rewritten product computes what the Einsum did (ONNX Runtime on both)."""
    import onnxruntime as ort

    from onnxdecomp.passes import RewriteEinsumAsMatMulPass

    def run(m: onnx.ModelProto) -> np.ndarray:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"a": xa, "b": xb})[0]

    rng = np.random.default_rng(0)
    sizes = dict(zip("bhijkd", (2, 3, 4, 5, 6, 7)))
    a, b = equation.replace(" ", "").split("->")[0].split(",")
    xa = rng.normal(size=[sizes[c] for c in a]).astype(np.float32)
    xb = rng.normal(size=[sizes[c] for c in b]).astype(np.float32)
    out = equation.replace(" ", "").split("->")[1]
    model = make_model(
        [helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)],
        [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, list(xa.shape)),
         helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, list(xb.shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [sizes[c] for c in out])],
        [],
        opset=17)
    ir_model = ir.serde.deserialize_model(model)
    assert RewriteEinsumAsMatMulPass()(ir_model).modified
    rewritten = ir.serde.serialize_model(ir_model)
    assert "Einsum" not in {n.op_type for n in rewritten.graph.node}
    np.testing.assert_allclose(run(rewritten), run(model), atol=1e-5)


def test_relax_expand_targets_writes_one_where_the_input_has_the_size() -> None:
    """Expand([N, 4, 1, 1] -> [N, 4, 3, 3]) by a constant and by a computed target: the
    channel entry becomes 1, the output is unchanged."""
    from onnxdecomp.passes import RelaxExpandTargetsPass, infer_shapes

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("ReduceMean", ["x"], ["g"], axes=[2, 3], keepdims=1),
             helper.make_node("Expand", ["g", "target"], ["e1"]),
             helper.make_node("Shape", ["x"], ["sx"]),
             helper.make_node("Expand", ["g", "sx"], ["e2"]),
             helper.make_node("Add", ["e1", "e2"], ["y"])]
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", F32, ["N", 4, 3, 3])],
        [helper.make_tensor_value_info("y", F32, ["N", 4, 3, 3])],
        [numpy_helper.from_array(np.array([1, 4, 3, 3], np.int64), "target")], opset=13)
    x = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    want = ort_run(model, x)
    m = ir.serde.deserialize_model(model)
    infer_shapes(m)
    assert RelaxExpandTargetsPass()(m).modified
    expands = [n for n in m.graph if n.op_type == "Expand"]
    assert expands[0].inputs[1].const_value.numpy().tolist() == [1, 1, 3, 3]
    assert expands[1].inputs[1].producer().op_type == "Add"  # target * keep + relax
    np.testing.assert_allclose(ort_run(to_proto(m), x), want)
