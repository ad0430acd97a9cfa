"""select_scores_output: of a classifier's several outputs, keep the class scores."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from onnxdecomp.errors import UnsupportedModelError
from onnxdecomp.runtime import proto_batch_axis

_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def select_scores_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its class scores as its one output, when that is unambiguous.

    scikit-learn's converter (skl2onnx) writes two outputs: the label (int64 or string,
    through ArgMax and ArrayFeatureExtractor) and the probabilities, as a float tensor or,
    by default, as a sequence of maps from ZipMap. The scores are the one float tensor among
    the outputs, or the tensor a ZipMap reads; the nodes only the other outputs need go.
    Logits beside their softmax give the logits; other float tensors side by side (features
    and logits) are ambiguous: a one-line error.

    A function on the protobuf, not an onnx-ir pass: onnx-ir cannot read a graph whose
    output is a sequence of maps. A model with one tensor output, or with no single float
    score tensor, comes back unchanged (``normalize`` then says what it expected).
    """
    graph = proto.graph
    if len(graph.output) == 1 and graph.output[0].type.WhichOneof("value") == "tensor_type":
        return _samples_first(_flat_scores(proto))
    producer = {o: n for n in graph.node for o in n.output}
    candidates: list[str] = []
    for out in graph.output:
        node = producer.get(out.name)
        if out.type.WhichOneof("value") == "tensor_type":
            if out.type.tensor_type.elem_type in _FLOATS:
                candidates.append(out.name)
        elif node is not None and node.op_type == "ZipMap":
            candidates.append(node.input[0])
    if len(set(candidates)) > 1:  # logits and their softmax: the logits
        derived = {c for c in candidates if (n := producer.get(c)) is not None and
                   n.op_type in ("Softmax", "LogSoftmax") and n.input[0] in candidates}
        candidates = [c for c in candidates if c not in derived]
    if len(set(candidates)) > 1:
        listed = ", ".join(f"{o.name} {_shape(o)}" for o in graph.output)
        raise UnsupportedModelError(
            f"model has {len(graph.output)} outputs ({listed}): which holds the class scores "
            "is ambiguous; export the classifier with its scores as its one float output, or "
            "keep that one: onnx.utils.extract_model(model, out, [inputs], [scores])")
    if not candidates:
        return proto
    name = candidates[0]
    info = _value_info(proto, name)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.output[:]
    out.graph.output.append(info)
    _keep_needed(out.graph, name)
    return _samples_first(_flat_scores(out))


def _flat_scores(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Scores [N, K, 1, 1] (a convolutional head pooled, unflattened: SqueezeNet) or
    [N, 1, K] (Keras' ``Reshape((1, K))`` before the softmax; a tagger's steps are never a
    fixed 1) as [N, K] through a Flatten, the output keeping its name (a Softmax before it
    is still the output's, see ``StripOutputSoftmaxPass``)."""
    out = proto.graph.output[0]
    dims = out.type.tensor_type.shape.dim if out.type.WhichOneof("value") == "tensor_type" \
        else []

    def ones(ds) -> bool:
        return all(d.HasField("dim_value") and d.dim_value == 1 for d in ds)

    if len(dims) < 3 or not any(out.name in n.output for n in proto.graph.node):
        return proto
    if ones(dims[2:]):
        keep = dims[1]
    elif ones(dims[1:-1]) and dims[-1].HasField("dim_value"):
        keep = dims[-1]
    else:
        return proto
    model = _through(proto, "Flatten", "map", axis=1)
    shape = model.graph.output[0].type.tensor_type.shape
    kept = type(keep)()
    kept.CopyFrom(keep)
    del shape.dim[1:]
    shape.dim.append(kept)
    return model


def _samples_first(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A tagger's scores [T, N, K] (PyTorch's steps-first ``nn.LSTM`` and a Linear over its
    output, the input ids [T, N]) as [N, T, K] through a Transpose, the output keeping its
    name: every command reads a tagger's scores samples first."""
    out, inp = proto.graph.output[0], proto.graph.input[0] if proto.graph.input else None
    dims = out.type.tensor_type.shape.dim if out.type.WhichOneof("value") == "tensor_type" \
        else []
    if len(dims) != 3 or inp is None or not any(out.name in n.output for n in proto.graph.node):
        return proto
    in_dims = inp.type.tensor_type.shape.dim
    if len(in_dims) < 2 or proto_batch_axis(proto) != 1:
        return proto
    batch, steps = in_dims[1], in_dims[0]
    same = (batch.dim_param and dims[1].dim_param == batch.dim_param) or (
        steps.HasField("dim_value") and dims[0].dim_value == steps.dim_value and
        not dims[1].HasField("dim_value"))
    if not same:
        return proto
    model = _through(proto, "Transpose", "steps_first", perm=[1, 0, 2])
    d = model.graph.output[0].type.tensor_type.shape.dim
    swapped = [type(d[i])() for i in range(3)]
    for new, old in zip(swapped, (d[1], d[0], d[2])):
        new.CopyFrom(old)
    del d[:]
    d.extend(swapped)
    return model


def _through(proto: onnx.ModelProto, op: str, tag: str, **attrs) -> onnx.ModelProto:
    """A copy whose output's producer writes under a new name (``<output>_<tag>``, made
    unique) and ``op`` of it writes the output, keeping its name; its type is the caller's
    to adjust."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    name = graph.output[0].name
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {
        v.name for v in (*graph.input, *graph.initializer)}
    moved = next(f"{name}_{tag}{i or ''}" for i in range(len(taken) + 1)
                 if f"{name}_{tag}{i or ''}" not in taken)
    at = 0
    for i, n in enumerate(graph.node):
        if name in n.output:
            at = i + 1
        n.output[:] = [moved if v == name else v for v in n.output]
        n.input[:] = [moved if v == name else v for v in n.input]
    graph.node.insert(at, onnx.helper.make_node(op, [moved], [name], **attrs))
    return model


def _shape(info: onnx.ValueInfoProto) -> str:
    if info.type.WhichOneof("value") != "tensor_type":
        return f"({info.type.WhichOneof('value')})"
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else "N"
                           for d in info.type.tensor_type.shape.dim) + "]"


def _value_info(proto: onnx.ModelProto, name: str) -> onnx.ValueInfoProto:
    """The type and shape of ``name``, inferred where the model does not record them."""
    found = {v.name: v for v in [*proto.graph.value_info, *proto.graph.output]}
    if name not in found:
        try:
            inferred = onnx.shape_inference.infer_shapes(proto)
            found.update((v.name, v) for v in inferred.graph.value_info)
        except Exception:  # inference is a help here, not a requirement
            pass
    info = found.get(name)
    if info is not None and info.type.tensor_type.HasField("shape"):
        return info
    return onnx.helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "K"])


def _keep_needed(graph: onnx.GraphProto, output: str) -> None:
    """Drop the nodes and initializers ``output`` does not depend on (subgraphs read their
    outer values by name: a node with one keeps what its subgraphs read too)."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    needed, todo = set(), [output]
    while todo:
        i = producer.get(todo.pop())
        if i is None or i in needed:
            continue
        needed.add(i)
        node = graph.node[i]
        todo.extend(node.input)
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs]:
                todo.extend(v for n in sub.node for v in n.input)
    kept = [n for i, n in enumerate(graph.node) if i in needed]
    del graph.node[:]
    graph.node.extend(kept)
    read = {v for n in kept for v in n.input} | {v for n in kept for a in n.attribute
                                                 for sub in [a.g, *a.graphs]
                                                 for m in sub.node for v in m.input}
    inits = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(inits)
