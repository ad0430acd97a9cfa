"""Tests for onnxdecomp.decompose: exact modules at keep=1, physically smaller pruned modules,
coupled channel groups (residual, concat, depthwise), unsupported ops, the manifest."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import F32, TORCH_NETS, build_unsupported, calib, make_model, ort_run
from onnx import helper, numpy_helper

from onnxdecomp.channels import analyse
from onnxdecomp.data import load_data
from onnxdecomp.decompose import Decomposer, Settings, decompose
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import OnnxDecompError, UnsupportedOpError
from onnxdecomp.irutil import cut_at
from onnxdecomp.link import link_parallel
from onnxdecomp.passes import normalize
from onnxdecomp.stats import model_stats

N_CALIB = 120  # the cntk case runs sample by sample (batch fixed at 1): keep it small


def _decomposer(case, keep: float = 0.5, compensation: str = "lstsq") -> Decomposer:
    return Decomposer(case.path, case.calib(N_CALIB, seed=0), None,
                      Settings(keep=keep, compensation=compensation, seed=0, device="cpu"))


def _normalised(path: Path) -> ir.Model:
    return normalize(ir.serde.deserialize_model(onnx.load(str(path))))


def _weights(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Node name -> shape of its weight (input 1) for every Conv(Transpose) / Gemm / MatMul."""
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    return {n.name: inits[n.input[1]] for n in proto.graph.node
            if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and n.input[1] in inits}


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


# ------------------------------------------------------------------------ exactness


def test_keep_one_modules_are_exact(model_case) -> None:
    """keep=1 and no compensation: every module's score is the parent's class log-odds."""
    dec = _decomposer(model_case, keep=1.0, compensation="none")
    x = model_case.calib(40, seed=99)  # fresh inputs, not the calibration data
    expected = logodds_from_logits(model_case.logits(x))
    protos = []
    for k in range(model_case.num_classes):
        module = dec.build(k, 1.0, check=True)
        proto = module.proto
        assert module.removed == set()
        score = ort_run(proto, x)
        assert score.shape == (len(x), 1)
        np.testing.assert_allclose(score[:, 0], expected[:, k], atol=1e-5, rtol=0,
                                   err_msg=f"class {k}")
        protos.append(proto)
    linked = link_parallel(protos)
    scores = ort_run(linked, x)
    assert scores.shape == (len(x), model_case.num_classes)
    np.testing.assert_array_equal(scores.argmax(axis=1), expected.argmax(axis=1))


# ------------------------------------------------------------------------ pruned modules


def test_pruned_modules_are_valid_and_smaller(model_case) -> None:
    dec = _decomposer(model_case, keep=0.5)
    parent_stats = model_stats(str(model_case.path))
    parent_w = _weights(dec.parent.proto)
    x = model_case.calib(20, seed=5)
    for k in range(model_case.num_classes):
        module = dec.build(k, 0.5, check=True)
        proto = module.proto
        assert module.removed, "keep=0.5 removed nothing"
        onnx.checker.check_model(proto, full_check=True)
        assert len(proto.graph.output) == 1
        out = proto.graph.output[0]
        assert out.name == "score"
        dims = out.type.tensor_type.shape.dim
        assert len(dims) == 2 and dims[1].dim_value == 1
        score = ort_run(proto, x)
        assert score.shape == (len(x), 1) and np.all(np.isfinite(score))
        stats = model_stats(proto)
        assert stats.params < parent_stats.params
        assert stats.macs < parent_stats.macs
        w = _weights(proto)
        assert w.keys() == parent_w.keys()
        shrank = [n for n in w if np.prod(w[n]) < np.prod(parent_w[n])]
        assert shrank, "no weight initializer got smaller"
        assert all(len(w[n]) == len(parent_w[n]) for n in w)
        assert all(a <= b for n in w for a, b in zip(w[n], parent_w[n]))


def test_pruned_conv_weights_shrink(get_case) -> None:
    """A torch CNN's Conv weights physically lose output and input channels."""
    case = get_case("plain-torchscript")
    dec = _decomposer(case, keep=0.5)
    proto = dec.build(0, 0.5).proto
    before, after = _weights(dec.parent.proto), _weights(proto)
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2
    first, second = (after[c] for c in convs)
    assert first[0] == 3 and before[convs[0]][0] == 6  # ceil(0.5 * 6) output channels
    assert second[:2] == (4, 3) and before[convs[1]][:2] == (8, 6)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_residual_group_is_coupled(get_case, exporter: str) -> None:
    """Both operands of each residual Add (identity and projection) are the same units."""
    model = _normalised(get_case(f"residual-{exporter}").path)
    cg = analyse(model)
    adds = [n for n in model.graph if n.op_type == "Add"
            and all(cg.has(v) for v in n.inputs)]
    assert len(adds) == 2
    for add in adds:
        a, b = (cg.roots(v) for v in add.inputs)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, cg.roots(add.outputs[0]))
        assert len(set(a.tolist())) == len(a)  # distinct channels stay distinct units
    sizes = sorted(len(cg.roots(add.outputs[0])) for add in adds)
    assert sizes == [6, 10]


@pytest.mark.parametrize("opset,last,axis,pinned", [
    (17, False, 2, False), (11, False, 2, False),  # over rows (and columns)
    (17, True, 2, False), (11, True, 2, True),  # over rows (and columns, channels)
    (11, False, None, True), (17, True, None, True)])
def test_softmax_mixes_the_channels_its_opset_normalises(opset: int, last: bool,
                                                        axis: int | None,
                                                        pinned: bool) -> None:
    """Before opset 13, Softmax normalises over every axis from ``axis`` (default 1) on.
    ``last``: the map is transposed to channels-last before it."""
    attrs = {} if axis is None else {"axis": axis}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Transpose", ["c"], ["t"], name="t",
                              perm=[0, 2, 3, 1] if last else [0, 1, 2, 3]),
             helper.make_node("Softmax", ["t"], ["s"], name="sm", **attrs),
             helper.make_node("ReduceMean", ["s"], ["m"], name="mean",
                              axes=[1, 2] if last else [2, 3], keepdims=0),
             helper.make_node("Gemm", ["m", "h"], ["y"], name="head", transB=1)]
    inits = [numpy_helper.from_array(np.ones((4, 2, 1, 1), np.float32), "w"),
             numpy_helper.from_array(np.ones((3, 4), np.float32), "h")]
    model = make_model(nodes, [helper.make_tensor_value_info("x", F32, ["N", 2, 3, 3])],
                       [helper.make_tensor_value_info("y", F32, ["N", 3])], inits,
                       opset=opset)
    m = normalize(ir.serde.deserialize_model(model))
    cg = analyse(m)
    conv = set(cg.roots(next(n for n in m.graph if n.op_type == "Conv").outputs[0]).tolist())
    assert conv <= cg.pinned_roots() if pinned else conv.isdisjoint(cg.pinned_roots())


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_residual_pruned_add_operands_agree(get_case, exporter: str) -> None:
    case = get_case(f"residual-{exporter}")
    dec = _decomposer(case, keep=0.5)
    proto = dec.build(2, 0.5, check=True).proto
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    adds = [n for n in inferred.graph.node if n.op_type == "Add"
            and all(i in shapes and len(shapes[i]) == 4 for i in n.input)]
    assert len(adds) == 2
    for add in adds:
        a, b = (shapes[i] for i in add.input)
        assert a[1:] == b[1:]
    assert sorted(shapes[add.input[0]][1] for add in adds) == [3, 5]
    assert ort_run(proto, case.calib(8)).shape == (8, 1)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_depthwise_group_follows_channels(get_case, exporter: str) -> None:
    case = get_case(f"depthwise-{exporter}")
    dec = _decomposer(case, keep=0.5)
    proto = dec.build(1, 0.5, check=True).proto
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    dw = [n for n in proto.graph.node if n.op_type == "Conv" and _group(n) > 1]
    assert len(dw) == 1
    group = _group(dw[0])
    w = inits[dw[0].input[1]]
    assert group == w[0] == 4 and w[1] == 1  # ceil(0.5 * 8) channels, one per group
    producers = {o: n for n in proto.graph.node for o in n.output}
    before = producers[dw[0].input[0]]
    while before.op_type != "Conv":  # back over the Relu
        before = producers[before.input[0]]
    assert inits[before.input[1]][0] == group  # the conv before it makes `group` channels
    assert ort_run(proto, case.calib(8)).shape == (8, 1)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_concat_maps_channels_to_branches(get_case, exporter: str) -> None:
    case = get_case(f"concat-{exporter}")
    model = _normalised(case.path)
    cg = analyse(model)
    cat = next(n for n in model.graph if n.op_type == "Concat")
    a, b = cat.inputs
    out = cg.roots(cat.outputs[0])
    assert (cg.size[a.name], cg.size[b.name], len(out)) == (4, 5, 9)
    np.testing.assert_array_equal(out[:4], cg.roots(a))
    np.testing.assert_array_equal(out[4:], cg.roots(b))
    assert set(cg.roots(a).tolist()).isdisjoint(cg.roots(b).tolist())

    dec = _decomposer(case, keep=0.5)
    proto = dec.build(0, 0.5, check=True).proto
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    cat_out = next(n for n in proto.graph.node if n.op_type == "Concat").output[0]
    mix = next(n for n in proto.graph.node if n.op_type == "Conv" and n.input[0] == cat_out)
    assert inits[mix.input[1]][1] == 5  # ceil(0.5 * 9): both branches are one group
    assert ort_run(proto, case.calib(8)).shape == (8, 1)


def test_batchnorm_after_add_is_sliced(get_case) -> None:
    """The un-foldable BatchNormalization keeps its node and loses channels."""
    case = get_case("bn_add")
    dec = _decomposer(case, keep=0.5)
    bn_parent = [n for n in dec.parent.proto.graph.node if n.op_type == "BatchNormalization"]
    assert len(bn_parent) == 1
    proto = dec.build(0, 0.5, check=True).proto
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    bn = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert len(bn) == 1
    assert all(inits[i] == (3,) for i in bn[0].input[1:])


def test_cntk_bias_and_fixed_batch(cntk_case) -> None:
    dec = _decomposer(cntk_case, keep=0.5)
    proto = dec.build(3, 0.5, check=True).proto
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    add = next(n for n in proto.graph.node if n.op_type == "Add"
               and any(inits.get(i) == (3, 1, 1) for i in n.input))
    assert add is not None
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    assert inits[gemm.input[1]][0] == 3 * 6 * 6  # [F, K] with F = kept channels * 36
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_value == 1


def test_labels_as_a_list(get_case, tmp_path: Path) -> None:
    """The Python API takes labels as any sequence (a list, as a user builds them), not
    only an array: the same modules."""
    case = get_case("plain-torchscript")
    x = case.calib(60, seed=3)
    y = case.logits(x).argmax(axis=1)
    settings = Settings(keep=0.5)
    listed = decompose(case.path, x, y.tolist(), tmp_path / "a", classes=[0, 1],
                       settings=settings)
    arrayed = decompose(case.path, x, y, tmp_path / "b", classes=[0, 1], settings=settings)
    assert [m.sha256 for m in listed.modules] == [m.sha256 for m in arrayed.modules]


def test_grouped_conv_keeps_its_groups() -> None:
    """A grouped (not depthwise) conv is pruned by the i-th channel of every group: both
    groups keep the same count, the conv stays a 2-group conv; with nothing pruned the
    module is the parent."""
    rng = np.random.default_rng(8)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Div", ["input", "c255"], ["xn"], name="scale"),
        helper.make_node("Conv", ["xn", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wg", "bg"], ["c2"], name="grouped", group=2),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc", transB=1),
    ]
    inits = [numpy_helper.from_array(np.float32(255), "c255"), w("w1", 4, 1, 3, 3),
             w("b1", 4), w("wg", 4, 2, 1, 1), w("bg", 4), w("w3", 6, 4, 1, 1), w("b3", 6),
             w("fw", 3, 6), w("fb", 3)]
    model = make_model(nodes, [helper.make_tensor_value_info("input", F32, ["N", 1, 12, 12])],
                       [helper.make_tensor_value_info("logits", F32, ["N", 3])], inits)
    x = calib([None, 1, 12, 12], 60)
    dec = Decomposer(model, x, None, Settings(keep=0.5, device="cpu", align=1))
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:20])[:, 0],
                               logodds_from_logits(ort_run(model, x[:20]))[:, 0], atol=1e-5)
    module = dec.build(0, 0.5, check=True)
    proto = module.proto
    assert module.removed
    shapes = _weights(proto)
    grouped = next(n for n in proto.graph.node if n.name == "grouped")
    assert _group(grouped) == 2 and shapes["grouped"] == (2, 1, 1, 1)  # one per group
    assert shapes["conv1"][0] == 2 and shapes["conv3"] == (3, 2, 1, 1)
    assert ort_run(proto, x[:4]).shape == (4, 1)


def test_conv_transpose_is_pinned() -> None:
    """ConvTranspose has no refit rule yet: its channels stay, the convs after it are cut."""
    rng = np.random.default_rng(10)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Div", ["input", "c255"], ["xn"], name="scale"),
        helper.make_node("ConvTranspose", ["xn", "wt", "bt"], ["t"], name="up", strides=[2, 2]),
        helper.make_node("Relu", ["t"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc", transB=1),
    ]
    inits = [numpy_helper.from_array(np.float32(255), "c255"), w("wt", 1, 4, 2, 2),
             w("bt", 4), w("w2", 6, 4, 3, 3), w("b2", 6), w("fw", 3, 6), w("fb", 3)]
    model = make_model(nodes, [helper.make_tensor_value_info("input", F32, ["N", 1, 6, 6])],
                       [helper.make_tensor_value_info("logits", F32, ["N", 3])], inits)
    x = calib([None, 1, 6, 6], 60)
    dec = Decomposer(model, x, None, Settings(keep=0.5, device="cpu"))
    proto = dec.build(0, 0.5, check=True).proto
    shapes = _weights(proto)
    assert shapes["up"] == (1, 4, 2, 2), "ConvTranspose channels must stay"
    assert shapes["conv2"] == (3, 4, 3, 3) and shapes["fc"] == (3, 3)
    assert ort_run(proto, x[:4]).shape == (4, 1)


def _mlp_gemm(alpha: float, beta: float) -> onnx.ModelProto:
    """One function, two encodings: alpha/beta folded into the stored weights or not."""
    rng = np.random.default_rng(9)
    w1, b1 = rng.normal(0, 0.2, (16, 144)), rng.normal(0, 1, 16)
    w2, b2 = rng.normal(0, 1, (4, 16)), rng.normal(0, 1, 4)
    nodes = [
        helper.make_node("Div", ["input", "c255"], ["xn"], name="scale"),
        helper.make_node("Gemm", ["xn", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], name="fc2", transB=1,
                         alpha=alpha, beta=beta),
    ]
    arrays = {"c255": np.float32(255), "w1": w1, "b1": b1, "w2": w2 / alpha, "b2": b2 / beta}
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in arrays.items()]
    return make_model(nodes, [helper.make_tensor_value_info("input", F32, ["N", 144])],
                      [helper.make_tensor_value_info("logits", F32, ["N", 4])], inits)


@pytest.mark.parametrize("compensation", ["none", "mean", "lstsq"])
def test_gemm_alpha_beta_are_respected(compensation: str) -> None:
    x, xt = calib([None, 144], 200), calib([None, 144], 40, seed=5)
    modules = []
    for alpha, beta in ((1.0, 1.0), (2.0, 0.5)):
        model = _mlp_gemm(alpha, beta)
        dec = Decomposer(model, x, None, Settings(keep=0.5, compensation=compensation,
                                                  device="cpu"))
        module = dec.build(0, 0.5)
        modules.append((ort_run(module.proto, xt)[:, 0], module.removed))
    (plain, removed_a), (scaled, removed_b) = modules
    assert removed_a == removed_b
    np.testing.assert_allclose(scaled, plain, atol=1e-4)


def test_link_modules_of_different_opsets(get_case) -> None:
    """Modules from the TorchScript (opset 17) and dynamo (opset 18) exports link into one."""
    a, b = get_case("plain-torchscript"), get_case("plain-dynamo")
    xt = a.calib(10, seed=4)
    pa = _decomposer(a).build(1, 0.5).proto
    pb = _decomposer(b).build(3, 0.5).proto
    assert {o.version for o in pa.opset_import} != {o.version for o in pb.opset_import}
    linked = link_parallel([pa, pb])
    scores = ort_run(linked, xt)
    np.testing.assert_allclose(scores[:, 0], ort_run(pa, xt)[:, 0], atol=1e-5)
    np.testing.assert_allclose(scores[:, 1], ort_run(pb, xt)[:, 0], atol=1e-5)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("kind,op", [("lpnorm", "LpNormalization"), ("cumsum", "CumSum")])
def test_unsupported_op_raises_and_writes_nothing(tmp_path: Path, kind: str, op: str) -> None:
    model = tmp_path / f"{kind}.onnx"
    onnx.save(build_unsupported(kind), str(model))
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError) as info:
        decompose(model, np.zeros((10, 1, 12, 12), np.float32), out_dir=out,
                  settings=Settings(keep=0.5, device="cpu"))
    msg = str(info.value)
    assert "odd_op" in msg and op in msg
    assert "\n" not in msg
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("kind", ["gather", "merge"])
def test_gathered_or_merged_channels_prune(kind: str) -> None:
    """A Gather of channels by constant index and a Reshape merging the positions behind the
    channels ([N, C, H, W] -> [N, C, H*W]) have rules: pruned, the index renumbered to the
    kept channels; with nothing pruned the module is its parent's log-odds."""
    model = build_unsupported(kind)
    x = calib((None, 1, 12, 12), 60, seed=3)
    dec = Decomposer(model, x, None, Settings(device="cpu", align=1))
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x)[:, 0], logodds_from_logits(
        ort_run(model, x))[:, 0], atol=1e-5)
    module = dec.build(0, 0.5, check=True)
    assert module.removed
    inits = {t.name: numpy_helper.to_array(t) for t in module.proto.graph.initializer}
    conv = next(n for n in module.proto.graph.node if n.op_type == "Conv")
    kept = inits[conv.input[1]].shape[0]
    assert kept < 4
    if kind == "gather":
        gather = next(n for n in module.proto.graph.node if n.op_type == "Gather"
                      and n.input[0] != "logits")
        index = inits[gather.input[1]]
        assert index.max() < kept and len(set(index.tolist())) == len(index)
    assert ort_run(module.proto, x).shape == (60, 1)


def test_reshape_of_channels_into_rows_keeps_blocks() -> None:
    """[N, C, H, W] -> [N, C*H, W] unfolds each channel into H channels of the result (its
    rows; ``channels.rules.groups``): a channel and its H rows are one unit, so the dense
    layer after it loses H columns per channel removed. Exact with nothing pruned; pruned,
    the reshaped tensor's kept channels are the parent's."""
    from onnxdecomp.channels import plain_slice
    from onnxdecomp.decompose.decomposer import build_module
    from onnxdecomp.irutil import with_outputs
    from onnxdecomp.runtime import Runner

    model = build_unsupported("reshape")
    x = calib((None, 1, 12, 12), 60, seed=3)
    dec = Decomposer(model, x, None, Settings(device="cpu", align=1))
    full = dec.build(0, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x)[:, 0], logodds_from_logits(
        ort_run(model, x))[:, 0], atol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert ort_run(half.proto, x).shape == (60, 1)
    odd = next(v for n in dec.parent.model.graph if n.name == "odd_op" for v in n.outputs)
    kept = dec.parent.cg.kept_channels(odd, half.removed)
    rows = odd.shape[1] // 4
    assert half.removed and len(kept) == 2 * rows
    assert np.all(kept.reshape(2, rows) - kept.reshape(2, rows)[:, :1] == np.arange(rows))
    sliced = build_module(dec.parent, half.removed, plain_slice, lambda m: None, check=True)
    want = Runner(with_outputs(dec.parent.proto, [odd.name]), device="cpu").run(x)[1]
    got = Runner(with_outputs(sliced, [odd.name]), device="cpu").run(x)[1]
    np.testing.assert_allclose(got, want[:, kept], atol=1e-6)


def test_out_of_range_class_raises(get_case, tmp_path: Path) -> None:
    case = get_case("mlp-torchscript")
    out = tmp_path / "out"
    with pytest.raises(OnnxDecompError, match="class 99"):
        decompose(case.path, case.calib(60), out_dir=out, classes=[0, 99],
                  settings=Settings(keep=0.5, device="cpu"))
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(OnnxDecompError):
        decompose(case.path, case.calib(60), classes=[-1],
                  settings=Settings(keep=0.5, device="cpu"))


@pytest.mark.parametrize("kwargs", [dict(keep=0.0), dict(keep=1.5), dict(compensation="x"),
                                    dict(criterion="x"), dict(fidelity=0.0),
                                    dict(holdout=1.0)])
def test_bad_settings_raise(get_case, kwargs: dict) -> None:
    case = get_case("bn_conv")
    with pytest.raises(OnnxDecompError):
        Decomposer(case.path, case.calib(20), None, Settings(device="cpu", **kwargs))


# ------------------------------------------------------------------------ manifest


def test_manifest_and_files(get_case, tmp_path: Path) -> None:
    case = get_case("plain-dynamo")
    before = case.path.read_bytes()
    out = tmp_path / "modules"
    y = np.arange(N_CALIB) % case.num_classes
    manifest = decompose(case.path, case.calib(N_CALIB), y, out, classes=[0, 2],
                         class_names=["a", "b", "c", "d", "e"],
                         settings=Settings(keep=0.5, device="cpu")).to_json()
    assert case.path.read_bytes() == before  # the parent is never touched
    parent = manifest["parent"]
    assert {"path", "sha256", "params", "macs", "classes"} <= parent.keys()
    assert parent["sha256"] == hashlib.sha256(before).hexdigest()
    assert parent["classes"] == ["a", "b", "c", "d", "e"]
    assert parent["params"] == model_stats(str(case.path)).params
    assert len(manifest["modules"]) == 2
    assert [m["class_index"] for m in manifest["modules"]] == [0, 2]
    assert [m["class_name"] for m in manifest["modules"]] == ["a", "c"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["modules"] == manifest["modules"]
    assert sorted(p.name for p in out.iterdir()) == ["class_0.onnx", "class_2.onnx",
                                                      "manifest.json"]
    for m in manifest["modules"]:
        assert {"class_index", "class_name", "file", "params", "macs"} <= m.keys()
        path = out / m["file"]
        assert path.is_file()
        assert m["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        proto = onnx.load(str(path))
        stats = model_stats(proto)
        assert (m["params"], m["macs"]) == (stats.params, stats.macs)
        assert m["params"] < parent["params"]
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["onnxdecomp.parent_sha256"] == parent["sha256"]
        assert meta["onnxdecomp.class_index"] == str(m["class_index"])
        assert meta["onnxdecomp.class_name"] == m["class_name"]
    linked = link_parallel(sorted(out.glob("*.onnx")))
    assert ort_run(linked, case.calib(5)).shape == (5, 2)


def test_decompose_in_memory_proto_tuned(get_case) -> None:
    """A proto in, no out_dir: fidelity tuning picks a keep ratio from the grid."""
    case = get_case("bn_conv")
    proto = onnx.load(str(case.path))
    manifest = decompose(proto, case.calib(80), classes=[1],
                         settings=Settings(fidelity=0.9, device="cpu")).to_json()
    assert manifest["parent"]["path"] == "<memory>"
    (m,) = manifest["modules"]
    assert 0.1 <= m["keep_ratio"] <= 1.0
    assert m["fidelity"] >= 0.9


@pytest.mark.parametrize("net", TORCH_NETS)
def test_exporters_agree(get_case, net: str) -> None:
    """Both exports of one net are the same function (the cases are comparable)."""
    a, b = get_case(f"{net}-dynamo"), get_case(f"{net}-torchscript")
    x = a.calib(10, seed=3)
    np.testing.assert_allclose(a.logits(x), b.logits(x), atol=1e-4)


def test_sequential_refit_gives_a_valid_module_of_the_same_size() -> None:
    """The sequential refit changes weights, never shapes; the module passes the checker and
    tracks the parent at least about as well as the parallel refit on this tiny model."""
    root = Path(__file__).resolve().parents[1]
    ds = load_data("sklearn:digits", "train")
    dec = Decomposer(str(root / "models" / "cnn_digits.onnx"), ds.x, ds.y,
                     Settings(device="cpu", sequential_samples=200))
    seq_module = dec.build(3, 0.4, compensation="sequential", check=True)
    par_module = dec.build(3, 0.4, compensation="lstsq")
    seq, par = seq_module.proto, par_module.proto
    assert seq_module.removed == par_module.removed and seq_module.removed
    assert _weights(seq) == _weights(par)
    seq_w = {t.name: numpy_helper.to_array(t) for t in seq.graph.initializer}
    par_w = {t.name: numpy_helper.to_array(t) for t in par.graph.initializer}
    assert any(not np.allclose(seq_w[n], par_w[n]) for n in seq_w if n in par_w)
    assert dec.measure(seq_module).fidelity >= dec.measure(par_module).fidelity - 0.02


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_sequential_refit_targets_the_residual_add(get_case, exporter: str) -> None:
    """A layer feeding a residual Add is solved for the Add's output: the module's block
    output tracks the parent's closer than when each branch only copies its own output."""
    from onnxdecomp.irutil import with_outputs
    from onnxdecomp.runtime import Runner

    case = get_case(f"residual-{exporter}")
    dec = Decomposer(case.path, case.calib(200), None,
                     Settings(device="cpu", sequential_samples=100))
    module = dec.build(0, 0.5, compensation="sequential", check=True)
    proto, removed = module.proto, module.removed
    seq = dec._sequential
    # the identity block's last conv reads the stem as shortcut; the projection block's
    # last conv and its 1x1 shortcut conv are each other's partners
    assert len(seq.partner) == 3
    graph = dec.parent.proto.graph
    consts = {i.name for i in graph.initializer}
    last_add = [n for n in graph.node if n.op_type == "Add" and not consts & set(n.input)][-1]
    out = next(v for v in _values(dec) if v.name == last_add.output[0])
    assert set(last_add.input) <= set(seq.partner.values())
    keep = [c for c, r in enumerate(dec.parent.cg.roots(out)) if r not in removed]
    x = seq.x

    def add_error(module) -> float:
        got = Runner(with_outputs(module, [out.name]), device="cpu", probe=True).run(x)[-1]
        want = Runner(with_outputs(dec.parent.proto, [out.name]), device="cpu",
                      probe=True).run(x)[-1][:, keep]
        return float(np.mean((got - want) ** 2))

    partner, seq.partner = seq.partner, {}
    plain = dec.build(0, 0.5, compensation="sequential").proto
    seq.partner = partner
    assert add_error(proto) < add_error(plain)


def _sequential_without_cuts(dec: Decomposer, build) -> onnx.ModelProto:
    """``build()`` with every sequential probe run from the input, as before cuts."""
    seq = dec._sequential
    seq.cut = False
    try:
        return build()
    finally:
        seq.cut = True


@pytest.mark.parametrize("case_name", ["residual-dynamo", "concat-torchscript",
                                       "clinc_bilstm2"])
def test_sequential_probes_cut_at_final_activations_change_nothing(
        get_case, case_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that starts from the activations earlier solves made final (the graph cut
    there) gives the module that probes run from the input give, bit for bit."""
    # (the package's name is taken by the decompose function: import the module by path)
    sequential = importlib.import_module("onnxdecomp.decompose.sequential")
    cuts = []
    monkeypatch.setattr(sequential, "cut_at", lambda *a: cuts.append(a) or cut_at(*a))
    if case_name == "clinc_bilstm2":  # the second layer reads the first's final output
        path = str(Path(__file__).resolve().parents[1] / "models" / "clinc_bilstm2.onnx")
        x = np.random.default_rng(0).integers(1, 500, (120, 20)).astype(np.int64)
    else:
        case = get_case(case_name)
        path, x = case.path, case.calib(120)
    dec = Decomposer(path, x, None, Settings(device="cpu", sequential_samples=60))
    module = dec.build(0, 0.5, compensation="sequential", check=True)
    again = _sequential_without_cuts(
        dec, lambda: dec.build(0, 0.5, compensation="sequential").proto)
    assert module.removed and cuts
    got, want = _weights_of(module.proto), _weights_of(again)
    assert got.keys() == want.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], want[name])


def test_sequential_probe_runs_from_the_input_when_a_cut_cannot_be_bounded(
        get_case, monkeypatch: pytest.MonkeyPatch) -> None:
    sequential = importlib.import_module("onnxdecomp.decompose.sequential")
    case = get_case("residual-dynamo")
    dec = Decomposer(case.path, case.calib(120), None,
                     Settings(device="cpu", sequential_samples=60))
    want = dec.build(0, 0.5, compensation="sequential").proto

    def unbounded(*args):
        raise ValueError("the subgraph is not properly bounded")

    monkeypatch.setattr(sequential, "cut_at", unbounded)
    got = dec.build(0, 0.5, compensation="sequential").proto
    for name, value in _weights_of(want).items():
        np.testing.assert_array_equal(_weights_of(got)[name], value)


def _weights_of(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def _values(dec: Decomposer):
    model = ir.serde.deserialize_model(dec.parent.proto)
    return [o for n in model.graph for o in n.outputs]


# ------------------------------------------------------------------------ alignment


def test_kept_count_rounds_up_to_the_vector_width() -> None:
    from onnxdecomp.decompose.align import kept_count

    assert [kept_count(64, k, 8) for k in (0.1, 0.3, 0.5, 0.95, 1.0)] == [8, 24, 32, 64, 64]
    assert kept_count(84, 0.5, 8) == 48 and kept_count(84, 0.99, 8) == 84
    # a group of fewer than two vectors is kept in half vectors where it holds two of them,
    # a smaller one stays unaligned
    assert [kept_count(16, k, 16) for k in (0.3, 0.5, 0.6, 0.9)] == [8, 8, 16, 16]
    assert kept_count(12, 0.5, 8) == 8 and kept_count(16, 0.5, 8) == 8
    assert kept_count(6, 0.5, 8) == 3 and kept_count(12, 0.5, 16) == 6
    assert [kept_count(49, k, 1) for k in (0.1, 0.5)] == [5, 25]


@pytest.mark.parametrize("align", [1, 4])
def test_aligned_modules_keep_multiples(get_case, align: int) -> None:
    from onnxdecomp.decompose.align import group_align, kept_count

    case = get_case("residual-dynamo")
    dec = Decomposer(case.path, case.calib(80), None,
                     Settings(keep=0.5, align=align, device="cpu"))
    assert dec.align == align
    module = dec.build(1, 0.5, check=True)
    from collections import Counter

    sizes = Counter(dec.clusters.values())
    for cluster, n in sizes.items():
        kept = sum(1 for u, c in dec.clusters.items() if c == cluster
                   and u not in module.removed)
        assert kept == kept_count(n, 0.5, align), (cluster, n, kept)
        if kept < n:
            assert kept % group_align(n, align) == 0


def test_auto_align_reads_the_vector_width() -> None:
    from onnxdecomp.decompose.align import VECTOR_FLOATS, cpu_features, resolve_align

    features = cpu_features()
    expected = next((n for flag, n in VECTOR_FLOATS if features.get(flag)), 1)
    assert resolve_align("auto", "cpu") == expected
    assert resolve_align("auto", "cuda") == 8 and resolve_align(3) == 3


def test_float16_logits_give_float32_log_odds() -> None:
    """A model float16 from input to output (``keep_io_types=False``): its modules' log-odds
    are computed in float32 from the float16 logits (``score`` float32); in float16 they
    were off by float16 steps (0.024 on a digits MLP)."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (16, 8)).astype(np.float16)
    w2 = rng.normal(0, 1.5, (5, 16)).astype(np.float16)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["z"], transB=1)]
    graph = helper.make_graph(
        nodes, "f16", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT16, ["N", 5])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(0, 1, (200, 8)).astype(np.float16)
    lo = logodds_from_logits(ort_run(model, x).astype(np.float64))
    dec = Decomposer(model, x, None, Settings(device="cpu", seed=0, align=1))
    for k in range(5):
        score = ort_run(dec.build(k, 1.0, check=True).proto, x)
        assert score.dtype == np.float32
        # ONNX Runtime may run the Gemm before the Cast in float32 (more exact than the
        # parent's float16 logits): within two float16 steps of logits up to 8
        np.testing.assert_allclose(score[:, 0], lo[:, k], atol=2e-2)
