"""What a shape computation amounts to: the entries of an integer vector that exporters
compute from ``Shape`` (TorchScript's ``x.view(x.size(0), -1)``, ``torch.chunk``), each a
number or a dynamic dimension of some tensor."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from onnxdecomp.irutil import const_array, is_default_domain, run_node

Entry = int | ir.SymbolicDim
# Ops that only move entries around; arithmetic needs every entry known.
_STRUCTURAL = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Identity", "Slice",
               "Reshape"}
_ARITHMETIC = {"Constant", "Add", "Sub", "Mul", "Div", "Mod", "Floor", "Ceil", "Neg", "Max", "Min",
               "Cast", "Concat", "Gather", "Unsqueeze", "Squeeze", "Identity", "Slice",
               "ConstantOfShape"}
# Shape computations are a few numbers: larger values are data, not worth evaluating.
_SMALL = 1024


def same_dynamic_dim(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same named dynamic dimension (both symbolic)."""
    return not isinstance(a, int) and not isinstance(b, int) and a is not None and \
        b is not None and a.value is not None and a.value == b.value


class ShapeValues:
    """Evaluates integer vectors (and scalars) computed from shapes and constants, memoised
    per value: ``entries`` keeps dynamic dimensions symbolic, ``static`` wants numbers."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self._memo: dict[int, tuple[bool, list[Entry]] | None] = {}
        self._tensors: dict[int, np.ndarray | None] = {}

    @classmethod
    def of(cls, model: ir.Model) -> ShapeValues:
        """An evaluator at the model's default-domain opset."""
        return cls(next((v for d, v in model.opset_imports.items() if is_default_domain(d)),
                        17))

    def static(self, value: ir.Value) -> np.ndarray | None:
        """The value as numbers, or None when it is not computed from static dimensions and
        constants only."""
        got = self._eval(value)
        if got is None or not all(isinstance(e, int) for e in got[1]):
            return None
        array = np.array(got[1], dtype=np.int64)
        return array.reshape(()) if got[0] else array

    def static_tensor(self, value: ir.Value, depth: int = 48) -> np.ndarray | None:
        """The value as a small array of any rank, computed by ONNX's reference evaluator
        from constants and static dimensions, or None. TorchScript writes ``F.pad``'s
        amounts computed from shapes through ConstantOfShape, a Reshape to [-1, 2], a
        reversing Slice and a Transpose (torchvision's Swin pads to whole windows), which
        ``static``'s vectors do not follow. ``depth`` bounds the walk back: a value that is
        not a shape computation is met within a few producers."""
        key = id(value)
        if key not in self._tensors:
            self._tensors[key] = None  # a cycle (there is none in a DAG) stops here
            self._tensors[key] = self._compute_tensor(value, depth)
        return self._tensors[key]

    def _compute_tensor(self, value: ir.Value, depth: int) -> np.ndarray | None:
        array = const_array(value)
        if array is not None:
            return array if array.size <= _SMALL else None
        vector = self.static(value)
        if vector is not None:
            return vector
        node = value.producer()
        if depth <= 0 or node is None or not is_default_domain(node.domain) \
                or node.op_type.startswith("Random") or any(
                    a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
                    for a in node.attributes.values()):
            return None
        if value.shape is not None and value.shape.is_static() \
                and np.prod(value.shape.numpy()) > _SMALL:
            return None
        if node.op_type == "Shape":
            return None  # static() already took every Shape of static dimensions
        out = self._run(node, value, lambda v: self.static_tensor(v, depth - 1))
        return out if out is not None and out.size <= _SMALL and out.dtype.kind in "iufb" \
            else None

    def _run(self, node: ir.Node, value: ir.Value,
             evaluate: Callable[[ir.Value], np.ndarray | None]) -> np.ndarray | None:
        """``value``, an output of ``node``, by ONNX's reference evaluator on its inputs as
        ``evaluate`` gives them, or None where one is unknown or the reference fails."""
        arrays = [evaluate(v) for v in node.inputs if v is not None]
        if any(a is None for a in arrays):
            return None
        out = run_node(node, arrays, self.opset)
        return None if out is None else out[list(node.outputs).index(value)]

    def entries(self, value: ir.Value) -> list[Entry] | None:
        """The entries of a 1-D vector, dynamic dimensions as the tensors' own symbolic
        dimensions, or None."""
        got = self._eval(value)
        return None if got is None or got[0] else got[1]

    def _eval(self, value: ir.Value) -> tuple[bool, list[Entry]] | None:
        """(is a scalar, its entries) or None."""
        key = id(value)
        if key not in self._memo:
            self._memo[key] = None  # a cycle (there is none in a DAG) stops here
            self._memo[key] = self._compute(value)
        return self._memo[key]

    def _compute(self, value: ir.Value) -> tuple[bool, list[Entry]] | None:
        array = const_array(value)
        if array is not None:
            if array.dtype.kind not in "iu" or array.ndim > 1:
                return None
            return array.ndim == 0, [int(v) for v in np.ravel(array)]
        node = value.producer()
        if node is None or not is_default_domain(node.domain):
            return None
        if node.op_type in _STRUCTURAL:
            moved = self._move(node)
            if moved is not None:
                return moved
        if node.op_type not in _ARITHMETIC:
            return None
        out = self._run(node, value, self.static)
        if out is None or out.dtype.kind not in "iu" or out.ndim > 1:
            return None
        return out.ndim == 0, [int(v) for v in np.ravel(out)]

    def _move(self, node: ir.Node) -> tuple[bool, list[Entry]] | None:
        """Entries moved by a structural op, dynamic ones kept symbolic."""
        op = node.op_type
        if op == "Shape":
            x = node.inputs[0]
            if x.shape is None:
                return None
            dims = list(x.shape)
            start = node.attributes.get_int("start", 0)
            end = node.attributes.get_int("end", len(dims))
            return False, dims[start:end]
        src = self._eval(node.inputs[0])
        if src is None:
            return None
        scalar, items = src
        if op in ("Cast", "Identity"):
            return src
        if op == "Concat":
            parts = [self._eval(v) for v in node.inputs]
            if any(p is None or p[0] for p in parts):
                return None
            return False, [e for p in parts for e in p[1]]
        if op == "Gather":
            index = self.static(node.inputs[1])
            if index is None or scalar:
                return None
            picked = [items[int(i)] for i in np.ravel(index)]
            return index.ndim == 0, picked
        if op == "Unsqueeze":
            return (False, items) if scalar else None
        if op == "Squeeze":
            return (True, items) if not scalar and len(items) == 1 else None
        if op == "Reshape":  # dynamo: a product of dimensions reshaped to [1] before a Concat
            target = self.static(node.inputs[1])
            if target is None or target.ndim != 1 or len(target) > 1:
                return None
            return (True, items) if len(target) == 0 and len(items) == 1 else (False, items)
        if op == "Slice":
            bounds = self._slice_bounds(node)
            return None if scalar or bounds is None else (False, items[bounds[0]:bounds[1]])
        return None

    def _slice_bounds(self, node: ir.Node) -> tuple[int, int] | None:
        """(start, end) of a step-1 Slice of a vector: inputs from opset 10, attributes
        before."""
        if len(node.inputs) < 3:  # opset 1-9: starts, ends (and axes) are attributes
            starts = node.attributes.get_ints("starts", None)
            ends = node.attributes.get_ints("ends", None)
            return None if not starts or not ends else (int(starts[0]), int(ends[0]))
        bounds = [self.static(v) if v is not None else None for v in node.inputs[1:5]]
        if any(b is None for b in bounds[:2]) or (
                len(bounds) > 3 and bounds[3] is not None and int(bounds[3][0]) != 1):
            return None
        return int(bounds[0][0]), int(bounds[1][0])
