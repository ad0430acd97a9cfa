"""The proto as an ``ir.Model``, working around what onnx-ir 1.1 cannot read.

onnx-ir 1.1 drops ``sparse_initializer`` (nodes using one get a dangling input), raises on
sparse tensor attributes, and raises on map types (``seq(map)``, e.g. ZipMap's output in
sklearn classifiers). For such a model, and only then, onnx-ir reads a patched copy:

* top-level sparse initializers become typed graph inputs: shape inference needs their dense
  shape, not their values, and params.py counts their stored values from the proto;
* sparse initializers of subgraphs and sparse attributes become dense tensors (a subgraph's
  inputs are positional, so they cannot become inputs). A Constant's ``sparse_value`` becomes
  its ``value``, with the stored-value count in the node's metadata under ``SPARSE_VALUES``;
* map-typed inputs, outputs and value_info lose their type: nothing that is counted is a map.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir
from onnx import AttributeProto, helper, numpy_helper

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import is_default_domain
from onnxdecomp.stats.shapes import one_line

SPARSE_VALUES = "onnxdecomp.stats.sparse_values"

_SPARSE_ATTRS = (AttributeProto.SPARSE_TENSOR, AttributeProto.SPARSE_TENSORS)

Body = onnx.GraphProto | onnx.FunctionProto


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    """``proto`` as an ir.Model; ``proto`` itself is never modified."""
    if _needs_patch(proto):
        proto = _patched(proto)
    try:
        return ir.serde.deserialize_model(proto)
    except Exception as exc:  # SerdeError wraps the cause in several layers
        while exc.__cause__ is not None:
            exc = exc.__cause__
        raise OnnxDecompError(f"cannot read the model: {one_line(exc)}") from None


def _bodies(proto: onnx.ModelProto) -> Iterator[tuple[Body, bool]]:
    """Every graph and function body, with True for the top-level graph."""

    def walk(body: Body, top: bool) -> Iterator[tuple[Body, bool]]:
        yield body, top
        for node in body.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    yield from walk(attr.g, False)
                elif attr.type == AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        yield from walk(g, False)

    yield from walk(proto.graph, True)
    for function in proto.functions:
        yield from walk(function, False)


def _value_infos(body: Body) -> Iterator[onnx.ValueInfoProto]:
    if isinstance(body, onnx.GraphProto):
        yield from body.input
        yield from body.output
    yield from body.value_info  # (FunctionProto has value_info from IR 10 on)


def _has_map(tp: onnx.TypeProto) -> bool:
    kind = tp.WhichOneof("value")
    if kind == "map_type":
        return True
    if kind in ("sequence_type", "optional_type"):
        return _has_map(getattr(tp, kind).elem_type)
    return False


def _needs_patch(proto: onnx.ModelProto) -> bool:
    for body, _ in _bodies(proto):
        if isinstance(body, onnx.GraphProto) and body.sparse_initializer:
            return True
        if any(a.type in _SPARSE_ATTRS for node in body.node for a in node.attribute):
            return True
        if any(_has_map(vi.type) for vi in _value_infos(body)):
            return True
    return False


def _dense(sp: onnx.SparseTensorProto) -> onnx.TensorProto:
    values = numpy_helper.to_array(sp.values).reshape(-1)
    shape = tuple(int(d) for d in sp.dims)
    size = math.prod(shape)
    dense = np.full(size, b"", object) if values.dtype == object else np.zeros(size, values.dtype)
    if values.size:
        idx = numpy_helper.to_array(sp.indices).astype(np.int64)
        # Indices are linear [NNZ] or coordinates [NNZ, rank].
        flat = idx.reshape(-1) if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.T), shape)
        dense[flat] = values
    return numpy_helper.from_array(dense.reshape(shape), name=sp.values.name)


def _densify_attributes(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == AttributeProto.SPARSE_TENSOR:
            dense, stored = _dense(attr.sparse_tensor), attr.sparse_tensor.values.dims
            attr.ClearField("sparse_tensor")
            attr.t.CopyFrom(dense)
            attr.type = AttributeProto.TENSOR
            if node.op_type == "Constant" and is_default_domain(node.domain):
                attr.name = "value"  # what shape inference expects of a dense Constant
                node.metadata_props.add(key=SPARSE_VALUES, value=str(math.prod(stored)))
        elif attr.type == AttributeProto.SPARSE_TENSORS:
            dense_list = [_dense(sp) for sp in attr.sparse_tensors]
            attr.ClearField("sparse_tensors")
            attr.tensors.extend(dense_list)
            attr.type = AttributeProto.TENSORS


def _patched(proto: onnx.ModelProto) -> onnx.ModelProto:
    # A full copy (weights included), paid only by models that need the patch.
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for body, top in _bodies(copy):
        if isinstance(body, onnx.GraphProto) and body.sparse_initializer:
            if top:
                listed = {vi.name for vi in body.input}
                for sp in body.sparse_initializer:
                    if sp.values.name not in listed:
                        body.input.append(
                            helper.make_tensor_value_info(
                                sp.values.name, sp.values.data_type, list(sp.dims)
                            )
                        )
            else:
                body.initializer.extend(_dense(sp) for sp in body.sparse_initializer)
            body.ClearField("sparse_initializer")
        for node in body.node:
            _densify_attributes(node)
        for vi in _value_infos(body):
            if _has_map(vi.type):
                vi.ClearField("type")
    return copy
