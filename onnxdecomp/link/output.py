"""The linked model's outputs and metadata: columns in the order given, ``scores`` then
``label``, class names and provenance, the full check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp import provenance
from onnxdecomp.irutil import fresh_name, leading_dims, new_initializer
from onnxdecomp.link.append_label import AppendLabelPass
from onnxdecomp.link.select_classes import SCORES
from onnxdecomp.modelio import model_sha256
from onnxdecomp.passes import finalize


def set_scores(model: ir.Model, value: ir.Value) -> None:
    """Make ``value`` the first output, named ``scores`` (the old one keeps its values)."""
    old = model.graph.outputs[0]
    old.name = fresh_name(model.graph, f"{SCORES}_raw")
    value.name = SCORES
    value.dtype = old.dtype
    if value.shape is None:  # a combiner: same [N, K], only the values change
        value.shape = old.shape
    model.graph.outputs[0] = value


def gather_columns(model: ir.Model, order: list[int]) -> None:
    """Reorder the columns of ``scores``: new column i is old column ``order[i]``."""
    graph = model.graph
    scores = graph.outputs[0]
    idx = new_initializer(graph, "onnxdecomp_order", np.array(order, dtype=np.int64))
    lead = leading_dims(scores)
    node = ir.node("Gather", [scores, idx], attributes={"axis": len(lead)},
                   name="onnxdecomp_order")
    graph.append(node)
    out = node.outputs[0]
    out.dtype = scores.dtype
    out.shape = ir.Shape([*lead, len(order)])
    set_scores(model, out)


def finish(model: ir.Model, columns: list[dict], info: dict) -> onnx.ModelProto:
    """Append ``label``, finalise (checker, ORT load) and stamp the provenance."""
    AppendLabelPass()(model)
    proto = finalize(model)
    provenance.stamp(proto, provenance.link_meta(columns, info))
    return proto


def label_map(proto: onnx.ModelProto) -> tuple[dict[int, int], str | None] | None:
    """For a linked model of one parent: (parent class -> column, the parent's file when the
    model records it and its sha256 still matches); None for any other model, whose labels
    are its columns already."""
    columns = provenance.read_columns(proto)
    if not columns or any(c.get("class_index") is None for c in columns):
        return None
    parents = {c.get("parent_sha256") for c in columns}
    if len(parents) != 1 or None in parents:
        return None
    info = provenance.read_link(proto) or {}
    (sha,) = parents
    files = [p["parent"] for p in info.get("parts", []) if p.get("parent")
             and Path(p["parent"]).is_file()
             and model_sha256(p["parent"]) == sha]
    return {c["class_index"]: j for j, c in enumerate(columns)}, (files[0] if files else None)
