"""Helpers over onnx-ir used to probe intermediate values."""

from __future__ import annotations

import numpy as np
import onnx

from onnxdecomp.irutil import only_outputs, with_outputs
from onnxdecomp.runtime import Runner


def test_only_outputs_keeps_just_what_the_values_need(get_case) -> None:
    case = get_case("residual-torchscript")
    proto = onnx.load(str(case.path))
    names = [n.output[0] for n in proto.graph.node if n.op_type == "Conv"]
    early, late = names[0], names[-1]
    x = case.calib(8)
    small = only_outputs(proto, [early])
    assert [o.name for o in small.graph.output] == [early]
    assert len(small.graph.node) < len(proto.graph.node)
    want = Runner(with_outputs(proto, [early]), device="cpu", probe=True).run(x)[-1]
    np.testing.assert_array_equal(Runner(small, device="cpu", probe=True).run(x)[0], want)
    both = only_outputs(proto, [late, early])
    got = Runner(both, device="cpu", probe=True).run(x)
    assert [o.name for o in both.graph.output] == [late, early]
    np.testing.assert_array_equal(got[1], want)
    assert len(only_outputs(proto, [proto.graph.input[0].name]).graph.node) == 0
