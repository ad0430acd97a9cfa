"""``parallel`` linking: modules side by side on one shared input, their scores
concatenated into ``scores`` [N, K] in the order given; identical initializers and
subgraphs are shared."""

from __future__ import annotations

import json
import os

import onnx
import onnx_ir as ir
from onnx import compose, helper, version_converter
from onnx_ir.passes import common

from onnxdecomp import provenance
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import opset_version
from onnxdecomp.modelio import read_model
from onnxdecomp.passes import finalize
from onnxdecomp.version import __version__

SCORES = "scores"


def _signature(m: onnx.ModelProto) -> tuple:
    t = m.graph.input[0].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return t.elem_type, dims[1:]


def link_parallel(modules: list[str | os.PathLike | onnx.ModelProto]) -> onnx.ModelProto:
    """One model whose output ``scores`` [N, K] is the modules' scores side by side."""
    if not modules:
        raise OnnxDecompError("link needs at least one module")
    protos, labels = [], []
    for src in modules:
        m = read_model(src)
        label = str(src) if not isinstance(src, onnx.ModelProto) else f"module {len(protos)}"
        if len(m.graph.input) != 1 or len(m.graph.output) != 1:
            raise OnnxDecompError(f"{label}: a module has one input and one output")
        out = m.graph.output[0].type.tensor_type.shape.dim
        if len(out) != 2 or (out[1].HasField("dim_value") and out[1].dim_value != 1):
            raise OnnxDecompError(f"{label}: output is not a [N, 1] score; is it a module?")
        protos.append(m)
        labels.append(label)
    first = _signature(protos[0])
    for m, label in zip(protos[1:], labels[1:]):
        if _signature(m) != first:
            raise OnnxDecompError(
                f"{label}: input {_signature(m)} differs from {labels[0]} {first}")
    opset = max(opset_version(m) for m in protos)
    merged_nodes, inits, sources = [], [], []
    shared = protos[0].graph.input[0]
    outputs = []
    for i, (m, label) in enumerate(zip(protos, labels)):
        if opset_version(m) != opset:
            try:
                m = version_converter.convert_version(m, opset)
            except Exception as exc:
                raise OnnxDecompError(f"{label}: cannot convert to opset {opset}: {exc}") from exc
        m = compose.add_prefix(m, f"m{i}_")
        own_input = m.graph.input[0].name
        for node in m.graph.node:
            for j, name in enumerate(node.input):
                if name == own_input:
                    node.input[j] = shared.name
        merged_nodes.extend(m.graph.node)
        inits.extend(m.graph.initializer)
        outputs.append(m.graph.output[0].name)
        sources.append({"index": i, "source": os.path.basename(label),
                        **provenance.module_identity(m)})
    merged_nodes.append(helper.make_node("Concat", outputs, [SCORES], axis=1, name="link_concat"))
    out_type = protos[0].graph.output[0].type.tensor_type.elem_type
    batch = shared.type.tensor_type.shape.dim[0]
    batch = batch.dim_param or (batch.dim_value if batch.HasField("dim_value") else None)
    graph = helper.make_graph(
        merged_nodes, "onnxdecomp_linked", [shared],
        [helper.make_tensor_value_info(SCORES, out_type, [batch, len(protos)])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)],
        ir_version=max(m.ir_version for m in protos),
        producer_name="onnxdecomp", producer_version=__version__,
    )
    helper.set_model_props(model, {provenance.LINK: json.dumps(
        {"mode": "parallel", "modules": sources})})
    ir_model = ir.serde.deserialize_model(model)
    ir.passes.PassManager([
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
    ])(ir_model)
    return finalize(ir_model)

