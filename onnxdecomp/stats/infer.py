"""Shapes for one sample: batch 1 on the real inputs, then onnx shape inference in place.

The batch axis of a real graph input is axis 0, except for a sequence that reaches an
RNN/GRU/LSTM with ``layout=0`` (``[seq, batch, in]``) on its axis 1
(``irutil.input_batch_axis``). Shapes recorded on intermediate values (value_info) are
forgotten first: a fixed batch there would clash with batch 1 and be kept silently. Graph
outputs keep only their element type, for the same reason.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterator, Sequence

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.irutil import carry_untyped_shapes, const_array, input_batch_axis
from onnxdecomp.modelio import SMALL_TENSOR_ELEMENTS
from onnxdecomp.stats.shapes import one_line


def _is_tensor(value: ir.Value) -> bool:
    # No type but a shape happens for a tensor_type whose elem_type is unset.
    return value.type is None or isinstance(value.type, ir.TensorType)


def batch_one(model: ir.Model, real_inputs: Collection[str],
              sample: Sequence[int] | None = None) -> set[int]:
    """Set the batch axis of the real inputs to 1 (and their other dynamic axes to
    ``sample``'s, the size of one sample, where given) and forget every inferable shape.
    Returns the fixed batch sizes (over 1) the inputs had, for ``unpin_reshape_batch``."""
    graph = model.graph
    fixed: set[int] = set()
    for value in graph.inputs:
        if value.name not in real_inputs or value.shape is None or not _is_tensor(value):
            continue
        axis = input_batch_axis(value)
        if len(value.shape) > axis:
            new = list(value.shape)
            if isinstance(new[axis], int) and new[axis] > 1:
                fixed.add(new[axis])
            new[axis] = 1
            rest = [i for i in range(len(new)) if i != axis]
            if sample is not None and len(sample) == len(rest):
                for i, d in zip(rest, sample):
                    if not isinstance(new[i], int):
                        new[i] = int(d)
            value.shape = ir.Shape(new)
    for value in graph.initializers.values():
        if value.const_value is not None:  # a value_info may disagree with the tensor
            value.shape = value.const_value.shape
            value.dtype = value.const_value.dtype
    forget_shapes(graph)
    return fixed


def forget_shapes(graph: ir.Graph) -> None:
    """Forget every inferable shape: onnx's inference keeps a recorded one that disagrees."""
    outputs = set(graph.outputs)
    for node in graph:
        for value in node.outputs:
            if value not in outputs:
                value.type, value.shape = None, None
            elif _is_tensor(value):
                value.shape = None  # keep the element type only


def unpin_reshape_batch(model: ir.Model, batches: Collection[int]) -> bool:
    """Reshape targets that write a fixed batch (dynamo's ``x.view(32, -1)`` in a model
    exported at batch 32, flattening into its dense layer: the target [32, 16]) as batch 1,
    in place; True if one changed. A target is taken for one only where its first entry is
    the inputs' fixed batch and its other entries hold one sample's elements at batch 1
    exactly: otherwise the layers after it would be counted once per sample of the batch.
    Requires shapes inferred at batch 1 (``batch_one``, ``infer_shapes``); ensures, where
    one changed, that they are forgotten, for ``infer_shapes`` to run again."""
    changed = False
    for node in model.graph:
        if node.op_type != "Reshape" or len(node.inputs) < 2 or node.inputs[1] is None:
            continue
        target = const_array(node.inputs[1])
        x = node.inputs[0]
        dims = list(x.shape) if x is not None and x.shape is not None else []
        if target is None or target.ndim != 1 or len(target) < 2 or not dims \
                or not all(isinstance(d, int) for d in dims) or dims[0] != 1:
            continue
        if int(target[0]) in batches and np.all(target[1:] > 0) \
                and int(np.prod(target[1:])) == math.prod(dims):
            new = target.copy()
            new[0] = 1
            node.replace_input_with(1, ir.Value(name=f"{node.inputs[1].name}_batch_one",
                                                const_value=ir.tensor(new)))
            model.graph.initializers.add(node.inputs[1])
            changed = True
    if changed:
        forget_shapes(model.graph)
    return changed


@contextlib.contextmanager
def _weights_as_inputs(graph: ir.Graph) -> Iterator[None]:
    """Big initializers as typed inputs for a while: shape inference needs only their type."""
    n_inputs = len(graph.inputs)
    big = [
        v
        for v in graph.initializers.values()
        if v.const_value is None or v.const_value.size > SMALL_TENSOR_ELEMENTS
    ]
    for value in big:
        graph.initializers.pop(value.name)
        if value not in graph.inputs:
            graph.inputs.append(value)
    try:
        yield
    finally:
        while len(graph.inputs) > n_inputs:
            graph.inputs.pop()
        for value in big:
            graph.initializers.add(value)


def infer_shapes(model: ir.Model) -> str | None:
    """Shapes of the top-level values, in place; returns the failure as one line, or None.

    onnx's shape inference runs on a copy whose initializers over SMALL_TENSOR_ELEMENTS are
    typed inputs (shape tensors keep their values for data propagation) and is read back on
    protobuf, tensor types only. Not onnx-ir's ShapeInferencePass: in 1.1 it drops every
    initializer over 1000 bytes (so a shape table of 126+ int64 loses its values), only logs
    a failure, and raises reading back map types (ZipMap's output). Past an op that keeps
    its input's shape but that inference leaves untyped (``irutil.SHAPE_KEEPING``), that
    shape is carried over and inference runs again.
    """
    failure = _infer_once(model)
    while failure is None and carry_untyped_shapes(model):
        failure = _infer_once(model)
    return failure


def _infer_once(model: ir.Model) -> str | None:
    with _weights_as_inputs(model.graph):
        light = ir.serde.serialize_model(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(
            light, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception as exc:  # malformed graphs, unsupported opsets: fail only if a shape is needed
        return one_line(exc)
    found = {vi.name: vi.type for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    for node in model.graph:
        for value in node.outputs:
            tp = found.get(value.name or "")
            if tp is not None and tp.WhichOneof("value") == "tensor_type":
                value.type = ir.serde.deserialize_type_proto_for_type(tp)
                value.shape = ir.serde.deserialize_type_proto_for_shape(tp)
    return None
