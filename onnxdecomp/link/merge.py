"""Parts side by side on one shared input: the merge every link mode ends with.

``onnx.compose.merge_models`` chains models in sequence and refuses mixed IR versions, so
the merge is by hand: opsets converted up to the highest, names prefixed per part, every
part reading the shared input, the parts' outputs concatenated into ``scores``; identical
initializers and subgraphs are then shared (onnx-ir's dedup and CSE passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import compose, helper, version_converter
from onnx_ir.passes import common

from onnxdecomp import provenance
from onnxdecomp.data.records import as_records
from onnxdecomp.errors import OnnxDecompError, first_line
from onnxdecomp.irutil import opset_version
from onnxdecomp.link.select_classes import SCORES
from onnxdecomp.runtime import Runner, proto_batch_axes, proto_batch_axis
from onnxdecomp.version import __version__


@dataclass
class Part:
    """A model with its inputs (one, or several matched by name) and one output [N, k] (a
    tagger's: [N, T, k]): a module (k = 1) or a union."""

    label: str
    proto: onnx.ModelProto

    @property
    def width(self) -> int:
        return self.proto.graph.output[0].type.tensor_type.shape.dim[-1].dim_value

    @property
    def steps(self) -> list:
        """The output's dims between the batch and the columns: [T] for a tagger."""
        dims = self.proto.graph.output[0].type.tensor_type.shape.dim[1:-1]
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in dims]


def signature(proto: onnx.ModelProto, index: int = 0, axis: int = 0) -> tuple:
    """(element type name, dims but the batch ``axis``) of the model's input ``index``."""
    t = proto.graph.input[index].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in t.shape.dim)
    return onnx.TensorProto.DataType.Name(t.elem_type).lower(), dims[:axis] + dims[axis + 1:]


def signatures(proto: onnx.ModelProto) -> tuple:
    """``signature`` of each input without its own batch axis (a steps-first sequence's or
    a recurrent state's is axis 1): one for a one-input model, by name for several (so
    that parts whose exporters list the inputs in other orders still agree)."""
    axes = proto_batch_axes(proto)
    own = [signature(proto, i, axes.get(vi.name, 0)) for i, vi in enumerate(proto.graph.input)]
    if len(own) == 1:
        return own[0]
    return tuple(sorted(zip((vi.name for vi in proto.graph.input), own)))


def _shown(proto: onnx.ModelProto) -> str:
    """The inputs for messages: ``float [N, 1, 8, 8]``; ``ids int64 [N, 7], mask ...``."""
    parts, axes = [], proto_batch_axes(proto)  # a recurrent state's batch is axis 1
    for i, vi in enumerate(proto.graph.input):
        axis = axes.get(vi.name, 0)
        kind, dims = signature(proto, i, axis)
        dims = [*dims[:axis], "N", *dims[axis:]]
        name = f"{vi.name} " if len(proto.graph.input) > 1 else ""
        parts.append(f"{name}{kind} [{', '.join(map(str, dims))}]")
    return ", ".join(parts)


def fixed_batch(proto: onnx.ModelProto) -> int | None:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if not dims:
        return None
    dim = dims[proto_batch_axis(proto) if len(dims) > 1 else 0]
    return dim.dim_value if dim.HasField("dim_value") else None


def batch_dynamic(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy whose batch axis is symbolic, when the graph allows it (shapes re-inferred and
    two samples run through ONNX Runtime); None when it does not (a constant holds the batch)."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    axes = proto_batch_axes(proto)  # a steps-first sequence's samples: axis 1
    for vi in (*m.graph.input, *m.graph.output):
        dim = vi.type.tensor_type.shape.dim[axes.get(vi.name, 0)]
        dim.Clear()
        dim.dim_param = "N"
    del m.graph.value_info[:]
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
        zeros = {vi.name: np.zeros((2, *signature(m, i, axes.get(vi.name, 0))[1]),
                                   dtype=helper.tensor_dtype_to_np_dtype(
                                       vi.type.tensor_type.elem_type))
                 for i, vi in enumerate(m.graph.input)}  # samples first, as Runner takes them
        x = next(iter(zeros.values())) if len(zeros) == 1 else as_records(zeros)
        out = Runner(m, device="cpu").run(x)[0]
    except Exception:
        return None
    return m if out.shape[0] == 2 else None


def align_batches(parts: list[Part]) -> tuple[list[Part], int | None]:
    """Parts with a fixed batch made batch-dynamic where their graphs allow; returns the
    parts and the batch the linked model must keep (None: dynamic)."""
    if all(fixed_batch(p.proto) is None for p in parts):
        return parts, None
    out, kept = [], None
    for p in parts:
        b = fixed_batch(p.proto)
        dyn = p.proto if b is None else batch_dynamic(p.proto)
        if dyn is None:
            kept = b
            dyn = p.proto
        out.append(Part(p.label, dyn))
    if kept is not None and any(fixed_batch(p.proto) not in (None, kept) for p in out):
        raise OnnxDecompError("modules with different fixed batch sizes cannot be linked")
    return out, kept


def side_by_side(parts: list[Part], batch: int | None = None) -> ir.Model:
    """One model whose output ``scores`` [N, sum of widths] ([N, T, sum] for taggers) is the
    parts' outputs side by side; ``batch`` fixes the batch axis (None: symbolic). Inputs must
    agree, and outputs score samples or steps alike (checked)."""
    first = signatures(parts[0].proto)
    for p in parts[1:]:
        if len(p.steps) != len(parts[0].steps):
            raise OnnxDecompError(
                f"{p.label}: scores {'every step' if p.steps else 'whole samples'}, "
                f"{parts[0].label} {'every step' if parts[0].steps else 'whole samples'}: "
                "a tagger's modules link with a tagger's only")
        if signatures(p.proto) != first:
            raise OnnxDecompError(f"{p.label}: input {_shown(p.proto)} differs from "
                                  f"{parts[0].label}'s {_shown(parts[0].proto)}")
    opset = max(opset_version(p.proto) for p in parts)
    nodes, inits, outputs = [], [], []
    shared = [onnx.ValueInfoProto() for _ in parts[0].proto.graph.input]
    for vi, src in zip(shared, parts[0].proto.graph.input, strict=True):
        vi.CopyFrom(src)
    dim0 = onnx.TensorShapeProto.Dimension()
    if batch is None:
        dim0.dim_param = "N"
    else:
        dim0.dim_value = batch
    axes = proto_batch_axes(parts[0].proto)  # a steps-first sequence's samples: axis 1
    for vi in shared:
        dims = vi.type.tensor_type.shape.dim
        axis = axes.get(vi.name, 0)
        if len(dims) > axis:
            dims[axis].CopyFrom(dim0)
    for i, p in enumerate(parts):
        m = p.proto
        if opset_version(m) != opset:
            try:
                m = version_converter.convert_version(m, opset)
            except Exception as exc:
                raise OnnxDecompError(
                    f"{p.label}: cannot convert to opset {opset}: {first_line(exc)}") from exc
        # The part's inputs read the shared ones: by name for several (``signatures``).
        own = {vi.name: shared[0].name if len(shared) == 1 else vi.name for vi in m.graph.input}
        m = compose.add_prefix(m, f"m{i}_")
        own = {f"m{i}_{k}": v for k, v in own.items()}
        for node in m.graph.node:
            for j, name in enumerate(node.input):
                if name in own:
                    node.input[j] = own[name]
        nodes.extend(m.graph.node)
        inits.extend(m.graph.initializer)
        outputs.append(m.graph.output[0].name)
    width = sum(p.width for p in parts)
    if len(outputs) > 1:
        nodes.append(helper.make_node("Concat", outputs, [SCORES], axis=-1, name="link_concat"))
    else:
        nodes.append(helper.make_node("Identity", outputs, [SCORES], name="link_scores"))
    out_type = parts[0].proto.graph.output[0].type.tensor_type.elem_type
    graph = helper.make_graph(
        nodes, "onnxdecomp_linked", shared,
        [helper.make_tensor_value_info(SCORES, out_type, [dim0.dim_param or dim0.dim_value,
                                                          *parts[0].steps, width])],
        initializer=inits,
    )
    # Other domains (ONNX Runtime's com.microsoft ops of a dynamically quantised parent)
    # at the highest version any part imports.
    domains: dict[str, int] = {}
    for p in parts:
        for o in p.proto.opset_import:
            if o.domain not in ("", "ai.onnx"):
                domains[o.domain] = max(domains.get(o.domain, 0), o.version)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)] + [
            helper.make_opsetid(d, v) for d, v in sorted(domains.items())],
        ir_version=max(p.proto.ir_version for p in parts),
        producer_name="onnxdecomp", producer_version=__version__,
    )
    sizes = {provenance.macs_at(p.proto) for p in parts} - {None}
    if len(sizes) == 1:  # parts of an input of any size: counted at their calibration's
        model.metadata_props.add(key=provenance.MACS_AT, value=",".join(map(str, sizes.pop())))
    ir_model = ir.serde.deserialize_model(model)
    ir.passes.PassManager([
        common.IdentityEliminationPass(),
        # No size limit: the modules of a recurrent model share their whole embedding table.
        common.DeduplicateInitializersPass(size_limit=2**62),
        common.CommonSubexpressionEliminationPass(),
    ])(ir_model)
    return ir_model
