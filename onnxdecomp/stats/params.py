"""Parameters: which tensors are weights, their element counts, and the layers they feed.

Weights are top-level initializers (dense and sparse) and Constant nodes: every floating-point
tensor, plus integer tensors in a quantized-weight slot. Other integer tensors (shapes, axes,
indices, zero points) are not parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import onnx
import onnx_ir as ir

from onnxdecomp.irutil import is_default_domain
from onnxdecomp.stats.compat import SPARSE_VALUES

# Input slots where an integer tensor is a (quantized) weight rather than a shape or zero point.
INT_WEIGHT_SLOTS = {
    "DequantizeLinear": (0,),
    "QLinearConv": (3, 8),
    "ConvInteger": (1,),
    "QLinearMatMul": (3,),
    "QGemm": (3, 6),  # com.microsoft: B and its int32 bias C
    "MatMulInteger": (1,),
    "DynamicQuantizeMatMul": (1,),  # com.microsoft
    "DynamicQuantizeLSTM": (1, 2),  # com.microsoft: W and R
}


def _constant_tensor(node: ir.Node) -> tuple[ir.DataType, int] | None:
    """(dtype, elements) of a Constant node's value, or None if it holds no tensor."""
    for attr in node.attributes.values():
        if attr.is_ref():
            continue
        if attr.name == "value":
            tensor = attr.as_tensor()
            # compat.py made a sparse value dense for onnx-ir; count what was stored.
            stored = node.metadata_props.get(SPARSE_VALUES)
            return tensor.dtype, int(stored) if stored is not None else tensor.size
        if attr.name == "value_float":
            return ir.DataType.FLOAT, 1
        if attr.name == "value_floats":
            return ir.DataType.FLOAT, len(attr.as_floats())
    return None


def weight_sizes(graph: ir.Graph, sparse: Iterable[onnx.SparseTensorProto]) -> dict[ir.Value, int]:
    """Elements of each weight tensor (initializer or Constant output) of the top-level graph.

    ``sparse`` are the graph's sparse initializers from the proto: onnx-ir 1.1 does not read
    them, so compat.py made each a typed graph input; its stored values are counted here.
    """
    int_weights: set[ir.Value] = set()
    for node in graph:
        if is_default_domain(node.domain) or node.domain == "com.microsoft":
            for slot in INT_WEIGHT_SLOTS.get(node.op_type, ()):
                if slot < len(node.inputs) and node.inputs[slot] is not None:
                    int_weights.add(node.inputs[slot])

    def is_weight(value: ir.Value, dtype: ir.DataType) -> bool:
        return dtype.is_floating_point() or value in int_weights

    sizes: dict[ir.Value, int] = {}
    for value in graph.initializers.values():
        tensor = value.const_value
        if tensor is not None and is_weight(value, tensor.dtype):
            sizes[value] = tensor.size
    inputs = {value.name: value for value in graph.inputs}
    for sp in sparse:
        value = inputs.get(sp.values.name)
        if value is not None and is_weight(value, ir.DataType(sp.values.data_type)):
            sizes[value] = math.prod(int(d) for d in sp.values.dims)  # stored, not dense
    for node in graph:
        if node.op_type == "Constant" and is_default_domain(node.domain) and node.outputs:
            const = _constant_tensor(node)
            if const is not None and is_weight(node.outputs[0], const[0]):
                sizes[node.outputs[0]] = const[1]
    return sizes


class WeightTracer:
    """Finds the weight tensors behind a value through constant-only subgraphs."""

    def __init__(self, weights: dict[ir.Value, int], constants: set[ir.Value]) -> None:
        self.weights = weights
        self.constants = constants | set(weights)  # non-weight constants (shapes, indices)
        self._memo: dict[ir.Value, frozenset[ir.Value] | None] = {}

    def sources(self, value: ir.Value) -> frozenset[ir.Value] | None:
        """Weights behind ``value``; None when it depends on a runtime input."""
        if value in self._memo:
            return self._memo[value]
        self._memo[value] = None  # guards against cycles in malformed graphs
        result: frozenset[ir.Value] | None
        if value in self.weights:
            result = frozenset([value])
        elif value in self.constants:
            result = frozenset()
        elif (node := value.producer()) is None:
            result = None  # a graph input
        elif node.op_type == "Constant":
            result = frozenset()
        else:
            inputs = [i for i in node.inputs if i is not None]
            found: set[ir.Value] = set()
            result = frozenset() if inputs else None  # no inputs, e.g. RandomNormal: not stored
            for i in inputs:
                sub = self.sources(i)
                if sub is None:
                    result = None
                    break
                found |= sub
            if result is not None:
                result = frozenset(found)
        self._memo[value] = result
        return result

    def layer_params(self, node: ir.Node) -> int:
        """Weight elements feeding ``node``; a weight shared by layers counts in each."""
        found: set[ir.Value] = set()
        for i in node.inputs:
            if i is not None and (sub := self.sources(i)):
                found |= sub
        return sum(self.weights[w] for w in found)
