"""UnfuseGroupNormPass: GroupNormalization (opsets 18 and 21) as Reshape, InstanceNormalization,
Reshape, Mul, Add, checked against ONNX Runtime's run of the op; left alone where the
rewrite would change the arithmetic (a 16-bit input)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from conftest import ort_run
from onnx import TensorProto, helper, numpy_helper
from onnx_ir.passes import common

from onnxdecomp.irutil import to_proto
from onnxdecomp.passes import UnfuseGroupNormPass

C, G = 8, 4


def _model(shape: list, opset: int = 21, dtype=TensorProto.FLOAT) -> onnx.ModelProto:
    """One GroupNormalization over 4 groups of ``shape``'s 8 channels."""
    rng = np.random.default_rng(0)
    n = C if opset >= 21 else G  # opset 18: scale and bias per group
    np_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    inits = [numpy_helper.from_array((1 + rng.normal(0, 0.3, n)).astype(np_type), "s"),
             numpy_helper.from_array(rng.normal(0, 0.3, n).astype(np_type), "b")]
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=G,
                            epsilon=1e-3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, shape)],
                              [helper.make_tensor_value_info("y", dtype, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10)
    if opset >= 21:  # the checker calls opset 18's form deprecated; ONNX Runtime runs it
        onnx.checker.check_model(model, full_check=True)
    return model


def _unfused(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    m = ir.from_proto(model)
    common.ShapeInferencePass(strict_mode=True, data_prop=True)(m)
    modified = UnfuseGroupNormPass()(m).modified
    proto = to_proto(m)
    onnx.checker.check_model(proto, full_check=True)
    return proto, modified


@pytest.mark.parametrize(("shape", "opset"), [
    (["N", C, 5, 6], 21), (["N", C, 5, 6], 18), (["N", C, "H", "W"], 21), (["N", C, 7], 21),
    (["N", C, 2, 3, 4], 21)])
def test_group_norm_becomes_instance_norm(shape: list, opset: int) -> None:
    model = _model(shape, opset)
    proto, modified = _unfused(model)
    ops = [n.op_type for n in proto.graph.node]
    assert modified and "GroupNormalization" not in ops and "InstanceNormalization" in ops
    dims = [d if isinstance(d, int) else 3 for d in shape[1:]]
    x = np.random.default_rng(1).normal(1.0, 2.0, (5, *dims)).astype(np.float32)
    np.testing.assert_allclose(ort_run(proto, x), ort_run(model, x), atol=1e-5, rtol=1e-5)


def test_16_bit_group_norm_stays() -> None:
    proto, modified = _unfused(_model(["N", C, 5, 6], dtype=TensorProto.FLOAT16))
    assert not modified
    assert [n.op_type for n in proto.graph.node] == ["GroupNormalization"]
