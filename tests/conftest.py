# ruff: noqa: E402
"""Shared fixtures: tiny seeded classifiers written as ONNX files, and calibration data.

Every model takes RAW pixel values (0..255 as float32) and normalises inside the graph as
its first ops, ``(x / 255 - 0.5) / 0.25``, like the project's model zoo. Weights are random
(no training); the head is rescaled so that each class's logit is standardised over random
inputs, hence the models' predictions cover all classes.

Cases (``CASES``, ids ``<model>-<exporter>``):

* torch nets, each exported with both exporters (``dynamo`` and ``torchscript``):
  ``plain`` conv-BN-relu x2, MaxPool, Flatten, Linear; ``residual`` an identity block and a
  1x1-projection block, global average pooling; ``concat`` two conv branches concatenated on
  channels, then a conv; ``depthwise`` a depthwise 3x3 conv (groups=C) then a pointwise 1x1;
  ``mlp`` (TorchScript only) a [N, 144] MLP;
* onnx.helper graphs: ``bn_conv`` Conv -> BatchNormalization (folded by the pass), with a
  Dropout and an Identity; ``bn_add`` BatchNormalization after a residual Add (not foldable:
  the per-channel rule), Softmax output; ``cntk`` a CNTK-like export with the batch fixed at
  1: Conv -> Add(bias [C,1,1]) -> Relu -> MaxPool -> Reshape([1, F]) -> MatMul -> Add, its
  MatMul weight itself a Reshape of a constant.
"""

from __future__ import annotations

import os

# Tiny matrices on a few shared cores: BLAS thread pools only add contention (3x slower
# least-squares refits here). Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from onnx import TensorProto, helper, numpy_helper

# Property-based tests: a few derandomised examples in CI, many with ``pytest --slow``.
hypothesis_settings.register_profile(
    "ci", max_examples=6, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.register_profile(
    "slow", max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="run the property-based tests with many more examples")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--slow"):
        hypothesis_settings.load_profile("slow")


OPSET = 17
IR_VERSION = 8  # onnx.helper defaults to an IR version onnxruntime refuses
HW = 12
F32 = TensorProto.FLOAT


def calib(model_input_shape, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` random raw-pixel samples (integer values 0..255, float32) for an input of
    ``model_input_shape`` (its batch entry, fixed or symbolic, is ignored).

    Each sample gets its own brightness range so that samples differ in more than noise.
    """
    rng = np.random.default_rng(seed)
    shape = (n, *[int(d) for d in model_input_shape[1:]])
    lo = rng.uniform(0, 128, size=(n,) + (1,) * (len(shape) - 1))
    hi = rng.uniform(128, 256, size=lo.shape)
    x = lo + (hi - lo) * rng.random(shape)
    return np.clip(np.floor(x), 0, 255).astype(np.float32)


def ort_run(model, x: np.ndarray, optimised: bool = True) -> np.ndarray:
    """First output of ``model`` (path or proto) on ``x`` with plain ONNX Runtime (without
    its graph optimisations: a quantised model's exact arithmetic, no int8 kernels); a model
    whose batch is fixed at 1 is run sample by sample."""
    import onnxruntime as ort

    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimised:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.shape[0] == 1:
        return np.concatenate([sess.run(None, {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {inp.name: x})[0]


def assert_full_module_exact(dec, model, x: np.ndarray, k: int = 0, n: int = 50):
    """Class ``k``'s module of ``dec`` with nothing pruned reproduces ``model``'s log-odds
    (path or proto) on ``x[:n]`` to 1e-5; returns that module."""
    from onnxdecomp.decompose.head import logodds_from_logits

    full = dec.build(k, 1.0, check=True).proto
    np.testing.assert_allclose(ort_run(full, x[:n])[:, 0],
                               logodds_from_logits(ort_run(model, x[:n]))[:, k],
                               atol=1e-5, rtol=1e-5)
    return full


def export_inputs(path: Path, n: int) -> np.ndarray:
    """n random samples for an exported model's first input: token ids (int32 or int64,
    0..29), int8 codes (a quantised input) or standard normal floats, of its static shape
    beyond the batch."""
    spec = onnx.load(path).graph.input[0].type.tensor_type
    shape = [d.dim_value for d in spec.shape.dim[1:]]
    rng = np.random.default_rng(0)
    if spec.elem_type == TensorProto.INT8:  # a quantised image, not token ids
        return rng.integers(-128, 128, (n, *shape)).astype(np.int8)
    if spec.elem_type in (TensorProto.INT32, TensorProto.INT64):
        dtype = np.int32 if spec.elem_type == TensorProto.INT32 else np.int64
        return rng.integers(0, 30, (n, *shape)).astype(dtype)
    return rng.normal(size=(n, *shape)).astype(np.float32)


def logodds(z: np.ndarray) -> np.ndarray:
    """Class log-odds of logits or softmax probabilities, [N, K] or a tagger's [N, T, K]."""
    from onnxdecomp.decompose.head import logodds_from_logits

    if (z >= 0).all() and np.allclose(z.sum(-1), 1, atol=1e-4):  # a softmax head
        z = np.log(np.maximum(z, 1e-30))
    return logodds_from_logits(z.reshape(-1, z.shape[-1])).reshape(z.shape)


def assert_export_decomposes(path: Path, shrinks: bool = True, optimised: bool = True,
                             scores=None, exact_share: float = 1.0):
    """Another exporter's model: class 0's module with nothing pruned gives its log-odds to
    1e-5 (every step's for a tagger; both run without ORT's graph optimisations where not
    ``optimised``: a quantised model's int8 kernels round otherwise, fused otherwise); at
    keep 0.5 the module passes the full checker, runs and, where ``shrinks``, loses units
    and MACs (else nothing can go). ``scores`` maps the parent's output to its scores (int8
    logits to the floats they stand for); ``exact_share``: the share of samples that must
    agree to 1e-5 (int8 logits: a sum in another order can round one to the next code),
    the others to within 0.1. Returns the Decomposer."""
    from onnxdecomp.decompose import Decomposer, Settings
    from onnxdecomp.stats import model_stats

    x = export_inputs(path, 120)
    dec = Decomposer(path, x, None, Settings(device="cpu", seed=0, align=1))
    full = dec.build(0, 1.0, check=True).proto
    out = ort_run(path, x[:50], optimised)
    want = logodds(scores(out) if scores else out)[..., 0]
    got = ort_run(full, x[:50], optimised).reshape(want.shape)
    if exact_share < 1:
        close = np.isclose(got, want, atol=1e-5, rtol=1e-5)
        assert close.mean() >= exact_share and np.abs(got - want).max() < 0.1
    else:
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    half = dec.build(0, 0.5, check=True)
    assert ort_run(half.proto, x[:3]).shape[0] == 3
    assert bool(half.removed) == shrinks
    if shrinks:
        assert model_stats(half.proto).macs < dec.parent.macs
    return dec


def float16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` as onnxconverter-common's ``convert_float_to_float16(keep_io_types=True)``
    writes it: float16 weights and activations, a Cast of the float32 input to float16 and
    of the output back to float32 (float32 Casts made float16)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16),
                                               t.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            if n.op_type == "Constant" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
    del g.value_info[:]
    x, y = g.input[0].name, g.output[0].name
    for n in g.node:
        n.input[:] = [f"{x}_16" if i == x else i for i in n.input]
        n.output[:] = [f"{y}_16" if o == y else o for o in n.output]
    g.node.insert(0, helper.make_node("Cast", [x], [f"{x}_16"], to=TensorProto.FLOAT16))
    g.node.append(helper.make_node("Cast", [f"{y}_16"], [y], to=TensorProto.FLOAT))
    onnx.checker.check_model(m, full_check=True)
    return m


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Case:
    """One test model on disk."""

    name: str
    path: Path
    input_shape: tuple  # batch entry None (symbolic) or 1 (fixed)
    num_classes: int
    probs: bool = False  # output is softmax probabilities, not logits

    def calib(self, n: int = 200, seed: int = 0) -> np.ndarray:
        return calib(self.input_shape, n, seed)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The parent's class scores as logits (log of probabilities for a softmax output)."""
        z = ort_run(self.path, x).astype(np.float64)
        return np.log(z) if self.probs else z


# --------------------------------------------------------------------------- onnx.helper


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _norm_nodes(x: str = "input", out: str = "xn") -> tuple[list, list]:
    """(x / 255 - 0.5) / 0.25 as the graph's first ops."""
    nodes = [
        helper.make_node("Div", [x, "c255"], ["x01"], name="scale"),
        helper.make_node("Sub", ["x01", "c05"], ["xc"], name="center"),
        helper.make_node("Div", ["xc", "c025"], [out], name="std"),
    ]
    inits = [_init("c255", np.float32(255)), _init("c05", np.float32(0.5)),
             _init("c025", np.float32(0.25))]
    return nodes, inits


def make_model(nodes, inputs, outputs, inits, opset: int = OPSET) -> onnx.ModelProto:
    """A checked model onnxruntime 1.x accepts (IR version 8)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSION, producer_name="onnxdecomp-tests")
    onnx.checker.check_model(model, full_check=True)
    return model


def _balance_head(model: onnx.ModelProto, w_name: str, b_name: str, class_axis: int,
                  output: str | None = None) -> onnx.ModelProto:
    """Rescale a linear head so that every logit is standardised over random inputs.

    ``output`` names the head's logits when the graph output is something after it.
    """
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    if output is not None:
        del probe.graph.output[:]
        probe.graph.output.append(onnx.ValueInfoProto(name=output))
    shape = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
    z = ort_run(probe, calib(shape, 200, seed=12345)).astype(np.float64)
    mean, std = z.mean(axis=0), z.std(axis=0) + 1e-6
    inits = {t.name: t for t in model.graph.initializer}
    w = numpy_helper.to_array(inits[w_name]).astype(np.float64)
    b = numpy_helper.to_array(inits[b_name]).astype(np.float64)
    scale = (1.0 / std).reshape([-1 if a == class_axis else 1 for a in range(w.ndim)])
    inits[w_name].CopyFrom(_init(w_name, (w * scale).astype(np.float32)))
    inits[b_name].CopyFrom(_init(b_name, ((b - mean) / std).astype(np.float32)))
    return model


def _bn_and_head(rng: np.random.Generator, c: int, k: int) -> list[onnx.TensorProto]:
    """BatchNorm parameters g, be, mu, var over c channels, then a Gemm head fw [k, c], fb."""
    return [
        _init("g", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _init("be", rng.uniform(-0.3, 0.3, c).astype(np.float32)),
        _init("mu", rng.uniform(-0.5, 0.5, c).astype(np.float32)),
        _init("var", rng.uniform(0.5, 2.0, c).astype(np.float32)),
        _init("fw", rng.normal(0, 1, (k, c)).astype(np.float32)),
        _init("fb", np.zeros(k, np.float32)),
    ]


def build_bn_conv(k: int = 5, seed: int = 3) -> onnx.ModelProto:
    """[N,3,12,12] -> norm -> Conv -> BatchNormalization -> Relu -> Dropout -> Identity ->
    GlobalAveragePool -> Flatten -> Gemm(transB=1)."""
    rng = np.random.default_rng(seed)
    norm, inits = _norm_nodes()
    c = 8
    nodes = norm + [
        helper.make_node("Conv", ["xn", "cw", "cb"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn1"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu"),
        helper.make_node("Dropout", ["r1"], ["d1"], name="drop"),
        helper.make_node("Identity", ["d1"], ["i1"], name="ident"),
        helper.make_node("GlobalAveragePool", ["i1"], ["p1"], name="gap"),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flat", axis=1),
        helper.make_node("Gemm", ["f1", "fw", "fb"], ["logits"], name="fc", transB=1),
    ]
    inits += [
        _init("cw", rng.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)),
        _init("cb", rng.normal(0, 0.1, c).astype(np.float32)),
    ] + _bn_and_head(rng, c, k)
    model = make_model(
        nodes, [helper.make_tensor_value_info("input", F32, ["N", 3, HW, HW])],
        [helper.make_tensor_value_info("logits", F32, ["N", k])], inits)
    return _balance_head(model, "fw", "fb", class_axis=0)


def build_bn_add(k: int = 4, seed: int = 4) -> onnx.ModelProto:
    """[N,1,12,12] -> norm -> Conv -> Relu -> Conv; Add(conv2, relu1) -> BatchNormalization
    (after an Add: not foldable) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    norm, inits = _norm_nodes()
    c = 6
    nodes = norm + [
        helper.make_node("Conv", ["xn", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"], name="add"),
        helper.make_node("BatchNormalization", ["s", "g", "be", "mu", "var"], ["bn"],
                         name="bn_after_add"),
        helper.make_node("Relu", ["bn"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["z"], name="fc", transB=1),
        helper.make_node("Softmax", ["z"], ["probs"], name="softmax", axis=1),
    ]
    inits += [
        _init("w1", rng.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32)),
        _init("b1", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("w2", rng.normal(0, 0.2, (c, c, 3, 3)).astype(np.float32)),
        _init("b2", rng.normal(0, 0.1, c).astype(np.float32)),
    ] + _bn_and_head(rng, c, k)
    model = make_model(
        nodes, [helper.make_tensor_value_info("input", F32, ["N", 1, HW, HW])],
        [helper.make_tensor_value_info("probs", F32, ["N", k])], inits)
    return _balance_head(model, "fw", "fb", class_axis=0, output="z")


def build_cntk(k: int = 6, seed: int = 5) -> onnx.ModelProto:
    """A CNTK-style export: input [1,1,12,12] raw pixels, batch fixed at 1, Constant nodes,
    Conv without bias + Add(bias [C,1,1]), Reshape(x, [1, F]), a MatMul weight that is a
    Reshape of a flat constant, Add(b [K])."""
    rng = np.random.default_rng(seed)
    norm, inits = _norm_nodes()
    c, feat = 6, 6 * 6 * 6
    w = rng.normal(0, 1, (feat, k)).astype(np.float32)

    def const(name: str, array: np.ndarray):
        return helper.make_node("Constant", [], [name], name=f"{name}_node",
                                value=_init(name, array))

    nodes = norm + [
        const("cw", rng.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32)),
        const("cbias", rng.normal(0, 0.2, (c, 1, 1)).astype(np.float32)),
        const("flat_shape", np.array([1, feat], np.int64)),
        const("w_flat", w.reshape(-1)),
        const("w_shape", np.array([feat, k], np.int64)),
        helper.make_node("Conv", ["xn", "cw"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["conv", "cbias"], ["conv_b"], name="conv_bias"),
        helper.make_node("Relu", ["conv_b"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Reshape", ["p", "flat_shape"], ["f"], name="flatten_reshape"),
        helper.make_node("Reshape", ["w_flat", "w_shape"], ["fw"], name="weight_reshape"),
        helper.make_node("MatMul", ["f", "fw"], ["mm"], name="dense"),
        helper.make_node("Add", ["mm", "fb"], ["logits"], name="dense_bias"),
    ]
    inits.append(_init("fb", np.zeros(k, np.float32)))
    model = make_model(
        nodes, [helper.make_tensor_value_info("input", F32, [1, 1, HW, HW])],
        [helper.make_tensor_value_info("logits", F32, [1, k])], inits)
    # Balance the head through a copy whose MatMul weight is an initializer.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.node.remove(next(n for n in probe.graph.node if n.name == "weight_reshape"))
    probe.graph.initializer.append(_init("fw", w))
    probe = _balance_head(probe, "fw", "fb", class_axis=1)
    inits_p = {t.name: numpy_helper.to_array(t) for t in probe.graph.initializer}
    for node in model.graph.node:
        if node.name == "w_flat_node":
            node.attribute[0].t.CopyFrom(_init("w_flat", inits_p["fw"].reshape(-1)))
    for t in model.graph.initializer:
        if t.name == "fb":
            t.CopyFrom(_init("fb", inits_p["fb"]))
    return model


def build_lstm(**attrs) -> onnx.ModelProto:
    """x [N, 5, 3] -> (Transpose to [5, N, 3] unless ``layout=1``) -> LSTM(hidden 4,
    ``attrs``) -> Y_h squeezed -> MatMul head (3 classes)."""
    rng = np.random.default_rng(0)
    h, i, k = 4, 3, 3
    batch_first = attrs.get("layout", 0) == 1
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in [
        ("W", (1, 4 * h, i)), ("R", (1, 4 * h, h)), ("WhT", (h, k))]]
    inits.append(numpy_helper.from_array(np.array([1 if batch_first else 0], np.int64), "ax"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, i])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", k])
    nodes = [] if batch_first else [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])]
    nodes += [helper.make_node("LSTM", ["x" if batch_first else "xt", "W", "R"], ["y", "yh"],
                               hidden_size=h, name="lstm", **attrs),
              helper.make_node("Squeeze", ["yh", "ax"], ["hn"]),
              helper.make_node("MatMul", ["hn", "WhT"], ["z"])]
    graph = helper.make_graph(nodes, "lstm", [x], [z], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build_unsupported(kind: str, k: int = 3, seed: int = 6) -> onnx.ModelProto:
    """A small CNN with one op on the channel path that has no coupling rule:
    ``lpnorm`` LpNormalization(axis=1), ``cumsum`` CumSum over the channels.
    The same net with an op that has one, for contrast: ``gather`` (Gather of channels
    [0, 2, 3] on axis 1), ``merge`` ([N, C, H, W] -> [N, C, H*W]) and ``reshape`` (merges
    channels with rows, [N, C, H, W] -> [N, C*H, W]: each channel's rows one unit)."""
    rng = np.random.default_rng(seed)
    norm, inits = _norm_nodes()
    c = 4
    odd = {
        "lpnorm": [helper.make_node("LpNormalization", ["r"], ["odd"], name="odd_op", axis=1)],
        "gather": [helper.make_node("Gather", ["r", "idx"], ["odd"], name="odd_op", axis=1)],
        "cumsum": [helper.make_node("CumSum", ["r", "cum_axis"], ["odd"], name="odd_op")],
        "reshape": [helper.make_node("Reshape", ["r", "shp"], ["odd"], name="odd_op")],
        "merge": [helper.make_node("Reshape", ["r", "shp"], ["odd"], name="odd_op")],
    }[kind]
    c_odd = {"gather": 3, "reshape": c * HW}.get(kind, c)
    tail = "odd"
    nodes = norm + [
        helper.make_node("Conv", ["xn", "cw", "cb"], ["cv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["cv"], ["r"], name="relu"),
        *odd,
    ]
    if kind in ("reshape", "merge"):
        nodes.append(helper.make_node("ReduceMean", ["odd"], ["m"], name="mean", axes=[2],
                                      keepdims=0))
        tail = "m"
    else:
        nodes += [
            helper.make_node("GlobalAveragePool", ["odd"], ["gp"], name="gap"),
            helper.make_node("Flatten", ["gp"], ["m"], name="flat", axis=1),
        ]
        tail = "m"
    nodes.append(helper.make_node("Gemm", [tail, "fw", "fb"], ["logits"], name="fc", transB=1))
    inits += [
        _init("cw", rng.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32)),
        _init("cb", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("fw", rng.normal(0, 1, (k, c_odd)).astype(np.float32)),
        _init("fb", rng.normal(0, 1, k).astype(np.float32)),
    ]
    if kind == "gather":
        inits.append(_init("idx", np.array([0, 2, 3], np.int64)))
    if kind == "cumsum":
        inits.append(_init("cum_axis", np.array(1, np.int64)))
    if kind == "reshape":
        inits.append(_init("shp", np.array([0, c * HW, HW], np.int64)))
    if kind == "merge":
        inits.append(_init("shp", np.array([0, c, HW * HW], np.int64)))
    return make_model(
        nodes, [helper.make_tensor_value_info("input", F32, ["N", 1, HW, HW])],
        [helper.make_tensor_value_info("logits", F32, ["N", k])], inits)


def build_sklearn_like(zipmap: bool) -> onnx.ModelProto:
    """What skl2onnx writes for a classifier: Softmax probabilities, an int64 label through
    ArgMax, and by default the probabilities as a ZipMap sequence of maps."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["z"], name="fc", transB=1),
             helper.make_node("Relu", ["z"], ["h"], name="relu"),
             helper.make_node("Gemm", ["h", "w2", "b2"], ["s"], name="head", transB=1),
             helper.make_node("Softmax", ["s"], ["probabilities"], name="softmax", axis=1),
             helper.make_node("ArgMax", ["probabilities"], ["label"], name="argmax", axis=1,
                              keepdims=0)]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])]
    if zipmap:
        nodes.append(helper.make_node("ZipMap", ["probabilities"], ["output_probability"],
                                      name="zipmap", domain="ai.onnx.ml",
                                      classlabels_int64s=[0, 1, 2]))
        zipped = helper.make_sequence_type_proto(helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(F32, [])))
        outputs.append(helper.make_value_info("output_probability", zipped))
    else:
        outputs.append(helper.make_tensor_value_info("probabilities", F32, ["N", 3]))
    rng = np.random.default_rng(5)  # the same weights every call
    weights = [numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)
               for name, shape in [("w", (8, 6)), ("b", (8,)), ("w2", (3, 8)), ("b2", (3,))]]
    x = helper.make_tensor_value_info("x", F32, ["N", 6])
    graph = helper.make_graph(nodes, "sklearn", [x], outputs, weights)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets)


# --------------------------------------------------------------------------- torch


def _torch_nets() -> dict[str, Callable]:
    """name -> (factory returning (module, head Linear), input shape). Imports torch."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Normalize(nn.Module):
        def forward(self, x):
            return (x / 255.0 - 0.5) / 0.25

    def cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list:
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups),
                nn.BatchNorm2d(cout), nn.ReLU()]

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.features = nn.Sequential(*cbr(1, 6), *cbr(6, 8), nn.MaxPool2d(2), nn.Flatten())
            self.head = nn.Linear(8 * 6 * 6, 5)

        def forward(self, x):
            return self.head(self.features(self.norm(x)))

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*cbr(cin, cout, stride=stride),
                                      nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout))
            self.short = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.stem = nn.Sequential(*cbr(3, 6))
            self.identity_block = Block(6, 6, 1)
            self.projection_block = Block(6, 10, 2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(10, 6)

        def forward(self, x):
            x = self.projection_block(self.identity_block(self.stem(self.norm(x))))
            return self.head(torch.flatten(self.pool(x), 1))

    class ConcatNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
            self.a = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(6, 5, 1), nn.ReLU())
            self.mix = nn.Sequential(nn.Conv2d(9, 8, 3, padding=1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            s = self.stem(self.norm(x))
            y = self.mix(torch.cat([self.a(s), self.b(s)], dim=1))
            return self.head(torch.flatten(self.pool(y), 1))

    class Depthwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.features = nn.Sequential(*cbr(3, 8), *cbr(8, 8, groups=8), *cbr(8, 10, k=1),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(10, 7)

        def forward(self, x):
            return self.head(self.features(self.norm(x)))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normalize()
            self.body = nn.Sequential(nn.Linear(HW * HW, 24), nn.ReLU(), nn.Linear(24, 16),
                                      nn.ReLU())
            self.head = nn.Linear(16, 6)

        def forward(self, x):
            return self.head(self.body(self.norm(x)))

    return {
        "plain": (Plain, (None, 1, HW, HW)),
        "residual": (Residual, (None, 3, HW, HW)),
        "concat": (ConcatNet, (None, 1, HW, HW)),
        "depthwise": (Depthwise, (None, 3, HW, HW)),
        "mlp": (MLP, (None, HW * HW)),
    }


def _torch_model(name: str):
    """A seeded, eval-mode net with random BatchNorm statistics and a balanced head."""
    import torch

    from models.nets import random_batchnorm

    factory, shape = _torch_nets()[name]
    torch.manual_seed(0)
    net = factory()
    random_batchnorm(net, affine=True)
    with torch.no_grad():
        net.eval()
        head = net.head
        head.bias.zero_()
        z = net(torch.from_numpy(calib(shape, 200, seed=12345))).double()
        mean, std = z.mean(0), z.std(0) + 1e-6
        head.weight.copy_(head.weight / std[:, None].float())
        head.bias.copy_((-mean / std).float())
    return net, shape


def export_torch(name: str, exporter: str, path: Path) -> tuple[Path, tuple, int]:
    """Export the net ``name`` with ``exporter`` ('dynamo' | 'torchscript') to ``path``."""
    import torch

    net, shape = _torch_model(name)
    torch_export(net, torch.from_numpy(calib(shape, 2, seed=7)), exporter, path)
    k = net.head.out_features
    return path, shape, k


@contextlib.contextmanager
def quiet():
    """torch's exporters without their warnings and prints."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.getLogger("torch").setLevel(logging.ERROR)
        yield


def torch_export(net, x, exporter: str, path: Path, opset: int = 17, batch_axis: int = 0) -> Path:
    """``net`` exported on example ``x`` with a dynamic batch axis N (``batch_axis`` of the
    input), quietly (``opset``: TorchScript's; dynamo writes 18)."""
    import torch

    kwargs = dict(input_names=["input"], output_names=["logits"])
    with quiet():
        if exporter == "torchscript":
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset,
                              dynamic_axes={"input": {batch_axis: "N"}, "logits": {0: "N"}},
                              **kwargs)
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=True, external_data=False,
                              opset_version=18, verbose=False,
                              dynamic_shapes=({batch_axis: torch.export.Dim("N", min=1)},),
                              **kwargs)
    return path


# --------------------------------------------------------------------------- cases

TORCH_NETS = ("plain", "residual", "concat", "depthwise")
EXPORTERS = ("dynamo", "torchscript")
TORCH_CASES = tuple(f"{n}-{e}" for n in TORCH_NETS for e in EXPORTERS) + ("mlp-torchscript",)
HELPER_CASES = ("bn_conv", "bn_add", "cntk")
CASES = TORCH_CASES + HELPER_CASES

_HELPERS = {"bn_conv": build_bn_conv, "bn_add": build_bn_add, "cntk": build_cntk}
_CACHE: dict[str, Case] = {}


def build_case(name: str, folder: Path) -> Case:
    """The case ``name`` written under ``folder`` (built once per test session)."""
    if name in _CACHE:
        return _CACHE[name]
    path = folder / f"{name}.onnx"
    if name in _HELPERS:
        model = _HELPERS[name]()
        onnx.save(model, str(path))
        dims = model.graph.input[0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        k = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
        case = Case(name, path, shape, k, probs=name == "bn_add")
    else:
        net, exporter = name.split("-")
        _, shape, k = export_torch(net, exporter, path)
        case = Case(name, path, shape, k)
    _CACHE[name] = case
    return case


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def get_case(model_dir: Path) -> Callable[[str], Case]:
    """``get_case(name)`` -> the Case, built on first use."""
    return lambda name: build_case(name, model_dir)


@pytest.fixture(scope="session", params=CASES)
def model_case(request: pytest.FixtureRequest, get_case) -> Case:
    """Every test model in turn."""
    return get_case(request.param)


@pytest.fixture(scope="session")
def cntk_case(get_case) -> Case:
    return get_case("cntk")
