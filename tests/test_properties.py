"""Property-based tests over random small classifiers built directly in ONNX.

Random widths, residual adds, concat blocks, depthwise convs, BatchNorm after a conv (folded)
or after an add (kept), a fixed or dynamic batch, opsets 17 and 18 (the two forms of Reduce*
axes): with nothing pruned every module reproduces the parent's class log-odds to 1e-5; with
pruning every module is a valid model that ONNX Runtime runs. The CI profile is small and
derandomised; ``pytest --slow`` runs many more examples.
"""

from __future__ import annotations

import numpy as np
import onnx
from conftest import F32, ort_run
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from onnxdecomp.decompose import Decomposer, Settings
from onnxdecomp.decompose.head import logodds_from_logits

HW = 6


@st.composite
def classifiers(draw) -> onnx.ModelProto:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    opset = draw(st.sampled_from([17, 18]))
    batch = draw(st.sampled_from([None, 1]))
    c_in = draw(st.integers(1, 3))
    nodes, inits = [], []

    def param(name: str, *shape, scale: float = 0.5) -> str:
        inits.append(numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32),
                                             name))
        return name

    def conv(x: str, c: int, out: int, k: int, group: int = 1) -> str:
        name = f"conv{len(nodes)}"
        w = param(f"{name}_w", out, c // group, k, k, scale=1.0 / np.sqrt(c // group * k * k))
        b = param(f"{name}_b", out, scale=0.1)
        nodes.append(helper.make_node("Conv", [x, w, b], [name], name=name, group=group,
                                      pads=[k // 2] * 4))
        return name

    def op(kind: str, inputs: list[str], **attrs) -> str:
        name = f"{kind.lower()}{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def positive(name: str, c: int, lo: float, hi: float) -> str:
        inits.append(numpy_helper.from_array(rng.uniform(lo, hi, c).astype(np.float32), name))
        return name

    def bn(x: str, c: int) -> str:
        i = len(nodes)
        return op("BatchNormalization", [
            x, positive(f"bn{i}_s", c, 0.5, 1.5), param(f"bn{i}_b", c, scale=0.1),
            param(f"bn{i}_m", c), positive(f"bn{i}_v", c, 0.5, 2.0)])

    x, c = "input", c_in
    for _ in range(draw(st.integers(1, 3))):
        block = draw(st.sampled_from(["conv", "residual", "concat", "depthwise"]))
        if block == "conv":
            out = draw(st.integers(2, 8))
            y = conv(x, c, out, draw(st.sampled_from([1, 3])))
            if draw(st.booleans()):
                y = bn(y, out)  # after a conv: folded by the normalisation passes
            x, c = op("Relu", [y]), out
        elif block == "residual":
            y = op("Relu", [conv(x, c, c, 3)])
            y = op("Add", [conv(y, c, c, 3), x])
            if draw(st.booleans()):
                y = bn(y, c)  # after an add: kept, the per-channel rule
            x = op("Relu", [y])
        elif block == "concat":
            a, b = draw(st.integers(1, 5)), draw(st.integers(1, 5))
            x = op("Relu", [op("Concat", [conv(x, c, a, 1), conv(x, c, b, 3)], axis=1)])
            c = a + b
        else:
            x = op("Relu", [conv(x, c, c, 3, group=c)])
    k = draw(st.integers(2, 5))
    flat = op("Flatten", [op("GlobalAveragePool", [x])], axis=1)
    w = param("head_w", k, c)
    nodes.append(helper.make_node("Gemm", [flat, w, param("head_b", k, scale=0.1)],
                                  ["logits"], name="head", transB=1))
    graph = helper.make_graph(
        nodes, "random", [helper.make_tensor_value_info("input", F32, [batch or "N", c_in,
                                                                        HW, HW])],
        [helper.make_tensor_value_info("logits", F32, [batch or "N", k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _data(model: onnx.ModelProto, n: int, seed: int) -> np.ndarray:
    c = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return np.random.default_rng(seed).normal(0, 1, (n, c, HW, HW)).astype(np.float32)


@given(classifiers())
def test_nothing_pruned_reproduces_the_parent(model: onnx.ModelProto) -> None:
    x = _data(model, 40, 1)
    dec = Decomposer(model, x, None, Settings(keep=1.0, compensation="none", device="cpu"))
    xt = _data(model, 12, 2)
    expected = logodds_from_logits(ort_run(model, xt))
    for k in range(dec.parent.num_classes):
        module = dec.build(k, 1.0, check=True)
        assert module.removed == set()
        np.testing.assert_allclose(ort_run(module.proto, xt)[:, 0], expected[:, k], atol=1e-5,
                                   rtol=0)


@given(classifiers(), st.sampled_from([0.3, 0.5, 0.8]), st.sampled_from(["lstsq", "mean"]))
def test_pruned_modules_are_valid_models(model: onnx.ModelProto, keep: float,
                                         compensation: str) -> None:
    x = _data(model, 60, 3)
    dec = Decomposer(model, x, None, Settings(keep=keep, compensation=compensation,
                                              device="cpu", align=1))
    xt = _data(model, 8, 4)
    for k in range(dec.parent.num_classes):
        module = dec.build(k, keep, check=True)  # onnx.checker full + ONNX Runtime load
        score = ort_run(module.proto, xt)
        assert score.shape == (len(xt), 1) and np.all(np.isfinite(score))
