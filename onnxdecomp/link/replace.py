"""``replace``: some classes of a model decided by modules, typically of a stronger model.

The model's logits become the log-odds of each of its classes against the rest (the head of
``SelectClassesPass`` over all classes); a module's score is the log-odds of its class
against the rest of its own parent's classes, so a replaced column is on the same scale as
the columns it competes with. With calibration data labelled in the model's classes, a
combiner (``combine``; no router: one task) is fitted on top (CNNSplitter's patching).
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp import provenance
from onnxdecomp.arguments import data_spec, model_argument, replacement_list
from onnxdecomp.data import DataSpec, check_label_shape, check_labels, require_labels
from onnxdecomp.decompose.parent import class_count
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import combine
from onnxdecomp.link.calibration import run_scores
from onnxdecomp.link.linker import LinkResult, column_name, strict_device
from onnxdecomp.link.merge import Part, align_batches, side_by_side
from onnxdecomp.link.modules import read_module
from onnxdecomp.link.output import finish, gather_columns, set_scores
from onnxdecomp.link.select_classes import SelectClassesPass
from onnxdecomp.modelio import model_sha256, read_model
from onnxdecomp.passes import finalize, normalize, requantize, select_scores_output
from onnxdecomp.runtime import check_device


def replace(model: str | os.PathLike | onnx.ModelProto,
            replacements: list[tuple[int, str | os.PathLike | onnx.ModelProto]],
            calibrate: DataSpec | str | os.PathLike | None = None, combiner: str = "auto",
            device: str = "auto") -> LinkResult:
    """``model`` with class ``i`` decided by module ``m`` for each ``(i, m)``; outputs
    ``scores`` [N, K] (the model's classes, in its order; a tagger's [N, T, K]) and
    ``label``."""
    if combiner not in combine.COMBINERS or combiner in combine.ROUTERS:
        choices = [c for c in combine.COMBINERS if c not in combine.ROUTERS]
        raise OnnxDecompError(f"unknown {{combiner}} {combiner!r} for replace: choose one of "
                              f"{', '.join(choices)}", options=["combiner"])
    check_device(device)
    model, replacements = model_argument(model), replacement_list(replacements)
    if isinstance(calibrate, (list, tuple)):  # as link takes it: one spec for the one model
        if len(calibrate) != 1:
            raise OnnxDecompError(f"{{calibrate}}: one data set for the model, got "
                                  f"{len(calibrate)}", options=["calibrate"])
        calibrate = calibrate[0]
    label = "model" if isinstance(model, onnx.ModelProto) else os.fspath(model)
    proto = read_model(model)
    if provenance.read_columns(proto) is not None:
        # Its columns are other models' classes, which --class would not name.
        raise OnnxDecompError(f"{label} is a linked model: replace decides a classifier's "
                              "classes; link its modules with the replacing ones instead")
    base = normalize(ir.serde.deserialize_model(select_scores_output(proto)))
    out = base.graph.outputs[0]
    k = class_count(out, label)
    SelectClassesPass(list(range(k)), k)(base)
    requantize(base)  # the model's integer weights and ops, as it computes
    parts = [Part(label, finalize(base, check=False))]
    replaced: dict[int, int] = {}  # class -> column of the merged scores
    result_notes: list[str] = []
    # The model's columns name it as their parent, as a module's name its own: ``check
    # --parent MODEL`` knows it again, and a column replaced from another model makes two.
    sha = model_sha256(model)
    columns = [{"class_index": c, "class_name": str(c), "source": os.path.basename(label),
                "parent_sha256": sha} for c in range(k)]
    for cls, src in replacements:
        if not 0 <= cls < k:
            raise OnnxDecompError(f"{{classes}}: class {cls} outside the model's classes "
                                  f"0..{k - 1}", options=["classes"])
        if cls in replaced:
            raise OnnxDecompError(f"class {cls} is replaced twice", options=["classes"])
        module = read_module(src, len(parts))
        if module.parent_sha256 == sha and module.class_index != cls:
            raise OnnxDecompError(f"{module.label} is class {module.class_index}'s module of "
                                  f"this model: it cannot decide class {cls}")
        replaced[cls] = k + len(parts) - 1
        parts.append(Part(module.label, module.proto))
        if module.class_index != cls:  # allowed (a class of another name), but say so
            result_notes.append(f"{module.label} is class {module.class_index} "
                                f"({module.column.get('class_name')}) of its parent; here it "
                                f"decides class {cls} ({columns[cls]['class_name']})")
        # The column decides the model's class: it keeps that class's name.
        columns[cls] = {**module.column, "class_index": cls, "replaces": cls,
                        "class_name": columns[cls]["class_name"],
                        "module_class_index": module.class_index,
                        "module_class_name": module.column.get("class_name")}
    parts, batch = align_batches(parts)
    merged = side_by_side(parts, batch)
    gather_columns(merged, [replaced.get(c, c) for c in range(k)])
    result = LinkResult(onnx.ModelProto(), "replace", columns,
                        [{"kind": "model", "source": label}]
                        + [{"kind": "module", "class": c, "source": columns[c]["source"]}
                           for c in replaced], batch=batch, notes=result_notes)
    if calibrate is not None and len(out.shape) == 3:
        raise OnnxDecompError("a combiner fitted on calibration data is for models that score "
                              "whole samples; replace a tagger's classes without "
                              "{calibrate}", options=["calibrate"])
    if calibrate is not None:
        ds = data_spec(calibrate).load()
        # The weak model's own decisions would teach the combination its faults.
        require_labels(ds, "replace fits its combination")
        check_label_shape(ds.y, False, ds.source)
        check_labels(ds.y, k, ds.source)
        choice = combine.choose(combiner, run_scores(merged, ds.x, device), ds.y,
                                np.zeros(k, dtype=np.int64),
                                columns=[column_name(c) for c in columns])
        result.combiner, result.held_out = choice.combiner.name, choice.held_out
        result.notes += choice.notes
        set_scores(merged, choice.combiner.emit(merged.graph, merged.graph.outputs[0],
                                                merged.opset_imports.get("", 17)))
    result.proto = finish(merged, columns, {"mode": "replace", "parts": result.parts,
                                            "combiner": result.combiner,
                                            "held_out": result.held_out})
    strict_device(result.proto, device)
    return result
