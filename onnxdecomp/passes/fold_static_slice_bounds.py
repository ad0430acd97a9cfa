"""FoldStaticSliceBoundsPass: Slice bounds computed from static dimensions become constants."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from onnxdecomp.irutil import const_array, is_default_domain, new_initializer

# Integer arithmetic on shape vectors, the ops exporters write between Shape and Slice.
_SHAPE_ARITHMETIC = {"Constant", "Add", "Sub", "Mul", "Div", "Floor", "Ceil", "Neg", "Max",
                     "Min", "Cast", "Concat", "Gather", "Unsqueeze", "Squeeze", "Identity",
                     "Slice"}


class FoldStaticSliceBoundsPass(ir.passes.InPlacePass):
    """Replace a Slice's starts/ends/axes/steps computed from static dimensions by constants.

    The TorchScript exporter writes ``torch.chunk(x, 2, dim=1)`` as Slices whose bounds are
    ``(Shape(x)[1] + 1) / 2 * i``: for a static channel count these are numbers, and as
    constants the channel rules can map the sliced channels and patch the bounds to what a
    module keeps (a bound that stayed computed would halve the pruned count instead).

    Requires: shapes inferred. Ensures: every Slice bound that depends only on constants and
    on static dimensions of Shape's inputs is an initializer; others are left as they are.
    """

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        opset = dict(model.opset_imports).get("", 17)
        memo: dict[int, np.ndarray | None] = {}
        modified = False
        for node in list(graph):
            if node.op_type != "Slice" or not is_default_domain(node.domain):
                continue
            for i, bound in enumerate(node.inputs[1:5], start=1):
                if bound is None or const_array(bound) is not None:
                    continue
                value = static_value(bound, opset, memo)
                if value is None:
                    continue
                node.replace_input_with(
                    i, new_initializer(graph, f"{bound.name}_static", value.astype(np.int64)))
                modified = True
        return ir.passes.PassResult(model, modified)


def static_value(value: ir.Value, opset: int,
                 memo: dict[int, np.ndarray | None] | None = None) -> np.ndarray | None:
    """The value of an integer vector computed from constants and static dimensions (Shape
    of a tensor whose read dimensions are known), or None."""
    memo = {} if memo is None else memo
    key = id(value)
    if key not in memo:
        memo[key] = _evaluate(value, opset, memo)
    return memo[key]


def _evaluate(value: ir.Value, opset: int, memo: dict) -> np.ndarray | None:
    array = const_array(value)
    if array is not None:
        return array
    node = value.producer()
    if node is None or not is_default_domain(node.domain):
        return None
    if node.op_type == "Shape":
        return _static_dims(node, None)
    if node.op_type == "Gather" and node.inputs[0].producer() is not None and \
            node.inputs[0].producer().op_type == "Shape":
        index = static_value(node.inputs[1], opset, memo)  # x.size(1), the batch dynamic
        return None if index is None else _static_dims(node.inputs[0].producer(), index)
    if node.op_type not in _SHAPE_ARITHMETIC:
        return None
    inputs = [v for v in node.inputs if v is not None]
    arrays = [static_value(v, opset, memo) for v in inputs]
    if any(a is None for a in arrays):
        return None
    proto = ir.serde.serialize_node(node)
    try:
        results = ReferenceEvaluator(proto, opsets={"": opset}).run(
            None, {v.name: a for v, a in zip(inputs, arrays)})
    except Exception:  # an op the reference cannot run stays computed
        return None
    return np.asarray(results[list(node.outputs).index(value)])


def _static_dims(shape_node: ir.Node, index: np.ndarray | None) -> np.ndarray | None:
    """Shape's output (or the entries ``index`` of it) when those dimensions are static."""
    x = shape_node.inputs[0]
    if x.shape is None:
        return None
    dims = list(x.shape)
    start = shape_node.attributes.get_int("start", 0)
    end = shape_node.attributes.get_int("end", len(dims))
    dims = dims[start:end]
    picked = dims if index is None else [dims[int(i)] for i in np.ravel(index)]
    if not all(isinstance(d, int) for d in picked):
        return None
    out = np.array(picked, dtype=np.int64)
    return out if index is None or np.ndim(index) else out.reshape(())
