"""The forms of the ONNX model zoo's oldest classifiers (opsets 7 and 8, IR 3, Caffe2's and
MXNet's converters), built by hand with random weights: a SqueezeNet (fire modules'
concats, Dropout with a ratio, a softmax over the pooled map [N, K, 1, 1] at its default
axis), a GoogLeNet (LRN, an inception block's four branches with a pooled one, Reshape to
flatten, a softmax head) and a pre-activation ResNet v2 (BatchNormalization with the
``spatial`` attribute on the input and before each conv, identity and projection shortcuts);
initializers listed among the graph inputs, as IR 3 wants.

Each: the module of class 0 with nothing pruned gives the parent's log-odds to 1e-5, and the
module at keep 0.5 passes the full checker, runs and is smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_export_decomposes
from onnx import TensorProto, helper, numpy_helper


class _Builder:
    """Nodes and initializers of one model, each op's output named after the op."""

    def __init__(self, seed: int) -> None:
        self.rng, self.nodes, self.inits = np.random.default_rng(seed), [], []

    def const(self, name: str, array, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        out = f"{kind.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1,
             bias: bool = True) -> str:
        i = len(self.nodes)
        w = self.const(f"w{i}", self.rng.normal(0, 1 / np.sqrt(cin * k * k), (cout, cin, k, k)))
        ins = [x, w] + ([self.const(f"b{i}", self.rng.normal(0, 0.1, cout))] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[k // 2] * 4)

    def bn(self, x: str, c: int) -> str:
        i, r = len(self.nodes), self.rng
        params = [self.const(f"{p}{i}", v) for p, v in (
            ("g", r.uniform(0.5, 1.5, c)), ("be", r.normal(0, 0.1, c)),
            ("mu", r.normal(0, 0.1, c)), ("var", r.uniform(0.5, 1.5, c)))]
        return self.op("BatchNormalization", [x, *params], epsilon=1e-5, spatial=1)

    def gemm(self, x: str, cin: int, k: int) -> str:
        i = len(self.nodes)
        return self.op("Gemm", [x, self.const(f"fw{i}", self.rng.normal(0, 1, (k, cin))),
                                self.const(f"fb{i}", np.zeros(k))], transB=1)

    def model(self, opset: int, out_shape: list) -> onnx.ModelProto:
        """IR 3: the initializers are graph inputs too."""
        y = helper.make_tensor_value_info(self.nodes[-1].output[0], TensorProto.FLOAT,
                                          out_shape)
        inputs = [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, ["N", 3, 16, 16])]
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                   for t in self.inits]
        graph = helper.make_graph(self.nodes, "zoo", inputs, [y], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  ir_version=3)
        onnx.checker.check_model(model, full_check=True)
        return model


def _squeezenet(opset: int) -> onnx.ModelProto:
    b = _Builder(1)
    x = b.op("MaxPool", [b.op("Relu", [b.conv("data_0", 3, 16)])], kernel_shape=[2, 2],
             strides=[2, 2])
    for cin in (16, 32):  # fire modules: squeeze 1x1, expand 1x1 and 3x3, concatenated
        s = b.op("Relu", [b.conv(x, cin, 8, 1)])
        x = b.op("Concat", [b.op("Relu", [b.conv(s, 8, 16, 1)]),
                            b.op("Relu", [b.conv(s, 8, 16, 3)])], axis=1)
    x = b.op("Dropout", [x], ratio=0.5)
    x = b.op("GlobalAveragePool", [b.op("Relu", [b.conv(x, 32, 6, 1)])])
    b.op("Softmax", [x])  # default axis 1: over [N, K, 1, 1] the classes alone vary
    return b.model(opset, ["N", 6, 1, 1])


def _googlenet(opset: int) -> onnx.ModelProto:
    b = _Builder(2)
    x = b.op("MaxPool", [b.op("Relu", [b.conv("data_0", 3, 16, 5, 2)])], kernel_shape=[2, 2],
             strides=[2, 2])
    x = b.op("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)
    pooled = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    x = b.op("Concat", [b.op("Relu", [b.conv(x, 16, 8, 1)]),
                        b.op("Relu", [b.conv(b.op("Relu", [b.conv(x, 16, 6, 1)]), 6, 12)]),
                        b.op("Relu", [b.conv(b.op("Relu", [b.conv(x, 16, 4, 1)]), 4, 6, 5)]),
                        b.op("Relu", [b.conv(pooled, 16, 6, 1)])], axis=1)
    x = b.op("Dropout", [b.op("AveragePool", [x], kernel_shape=[4, 4])], ratio=0.4)
    x = b.op("Reshape", [x, b.const("flat", [-1, 32], np.int64)])
    b.op("Softmax", [b.gemm(x, 32, 6)])
    return b.model(opset, ["N", 6])


def _resnet_v2(opset: int) -> onnx.ModelProto:
    b = _Builder(3)
    x = b.conv(b.bn("data_0", 3), 3, 16, bias=False)
    for cin, cout, stride in ((16, 16, 1), (16, 32, 2)):
        pre = b.op("Relu", [b.bn(x, cin)])
        y = b.conv(b.op("Relu", [b.bn(b.conv(pre, cin, cout, 3, stride, False), cout)]),
                   cout, cout, bias=False)
        shortcut = x if cin == cout else b.conv(pre, cin, cout, 1, stride, False)
        x = b.op("Add", [y, shortcut])
    x = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [b.bn(x, 32)])])])
    b.op("Softmax", [b.gemm(x, 32, 6)])
    return b.model(opset, ["N", 6])


MODELS: dict[str, Callable[[int], onnx.ModelProto]] = {
    "squeezenet": _squeezenet, "googlenet": _googlenet, "resnet_v2": _resnet_v2}


@pytest.mark.parametrize("opset", [7, 8])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_old_zoo_form_decomposes(tmp_path: Path, name: str, opset: int) -> None:
    path = tmp_path / f"{name}-{opset}.onnx"
    onnx.save(MODELS[name](opset), path)
    assert_export_decomposes(path, scores=lambda z: z.reshape(len(z), -1))  # [N, K(, 1, 1)]
