"""``link``: modules, from one model or several, into one model with ``scores`` and ``label``.

Modes: ``union`` cuts one sub-task network per parent for the classes its modules stand for
(needs the parent and calibration data, found through the manifest beside the modules);
``parallel`` puts the modules themselves side by side; ``auto`` unites each parent's modules
(two or more) and puts the united parts side by side. Across parts, calibration data with
labels fits a score combiner (``combine``), stored in the graph.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx

from onnxdecomp.arguments import class_list, data_spec, fraction, model_list, path_list
from onnxdecomp.data import DataSpec
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link import combine
from onnxdecomp.link.calibration import Calibration, fitted_scores
from onnxdecomp.link.merge import Part, align_batches, side_by_side
from onnxdecomp.link.modules import Module, read_modules
from onnxdecomp.link.output import finish, gather_columns, set_scores
from onnxdecomp.link.union import UnionBuilder
from onnxdecomp.runtime import Runner, check_device
from onnxdecomp.stats import model_stats

MODES = ("auto", "union", "parallel")


@dataclass
class Group:
    """The modules of one parent (their positions in the order given) and its part."""

    parent_sha256: str
    members: list[int]  # indices into the modules as given
    modules: list[Module]
    union: Part | None = None
    info: dict = field(default_factory=dict)

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(m.class_index for m in self.modules)


@dataclass
class LinkResult:
    """The linked model and what was done to make it."""

    proto: onnx.ModelProto
    mode: str  # union, parallel or union+parallel
    columns: list[dict]  # per output column: class_index, class_name, parent_sha256, source
    parts: list[dict]  # per parent: what was built (a union's keep, fidelity, MACs ...)
    combiner: str | None = None
    held_out: dict[str, float] | None = None  # each combiner's held-out calibration accuracy
    batch: int | None = None  # a batch size the linked model had to keep
    notes: list[str] = field(default_factory=list)


def column_name(column: dict) -> str:
    """A column in words: its position's class and where it comes from."""
    return f"{column.get('class_name', column.get('class_index'))} ({column.get('source')})"


def group_modules(modules: list[Module]) -> list[Group]:
    """Modules by parent, parents in the order they first appear; a module without
    provenance is a group of its own."""
    groups: dict[str, Group] = {}
    for i, m in enumerate(modules):
        key = m.parent_sha256 or f"unknown parent of {m.label}"
        g = groups.setdefault(key, Group(key, [], []))
        if m.class_index in g.classes:
            raise OnnxDecompError(f"{m.label}: class {m.class_index} of its parent is "
                                  "linked twice")
        g.members.append(i)
        g.modules.append(m)
    return list(groups.values())


def link(inputs: list[str | os.PathLike | onnx.ModelProto], mode: str = "auto",
         calibrate: list[DataSpec | str] | DataSpec | str | None = None,
         parents: list[str] | None = None,
         combiner: str = "auto", fidelity: float | None = None,
         compensation: str | None = None, device: str = "auto",
         refine: bool | None = None, classes: list[int | str] | None = None) -> LinkResult:
    """Link ``inputs`` (module files, proto modules, or folders holding a manifest; of a
    folder, only the modules of ``classes``, class indices or names, when given).

    ``calibrate``: labelled data (a ``DataSpec``, or a path read as the command line reads
    ``--calibrate``: ``DataSpec(path, "train", 1000)``);
    one per parent (in the order parents first appear; labels are that parent's class
    indices) or one for all (labels are the linked columns, -1 = ignore). It replaces the
    manifests' calibration data for unions and, across two or more parts, fits the
    ``combiner``. ``parents``: parent files overriding the manifests' (matched by sha256).
    ``fidelity`` and ``compensation``: the unions' fidelity target and refit (default: the
    manifest's; ``sequential`` refits every union layer after layer once its search is done,
    as pairs are by default). ``refine``: whether unions also step each channel group down
    its aligned counts while the target holds, a pair then being refitted sequentially
    (default: pairs only; see ``union``).
    """
    if mode not in MODES:
        raise OnnxDecompError(f"unknown {{mode}} {mode!r}: choose one of {', '.join(MODES)}",
                              options=["mode"])
    if combiner not in combine.COMBINERS:
        raise OnnxDecompError(
            f"unknown {{combiner}} {combiner!r}: choose one of {', '.join(combine.COMBINERS)}",
            options=["combiner"])
    check_device(device)
    fraction(fidelity, "fidelity")
    modules = read_modules(model_list(inputs), class_list(classes, names=True))
    groups = group_modules(modules)
    if not isinstance(calibrate, (list, tuple)) and calibrate is not None:
        calibrate = [calibrate]
    specs = [data_spec(c) for c in calibrate or []]
    parents = [] if parents is None else path_list(parents, "parents")
    data = Calibration(groups, specs, parents, device)
    if mode == "union" and any(m.parent_sha256 is None for m in modules):
        bad = next(m for m in modules if m.parent_sha256 is None)
        raise OnnxDecompError(f"{bad.label}: no onnxdecomp provenance, so no parent to unite "
                              "it with; is it a module of onnxdecomp decompose?")
    parts: list[Part] = []
    for g in groups:
        if mode != "parallel" and len(g.modules) > 1:
            g.union, g.info = build_union(g, data, fidelity, compensation, refine)
            parts.append(g.union)
        else:
            g.info = {"kind": "modules", "classes": list(g.classes)}
            parts.extend(Part(m.label, m.proto) for m in g.modules)
    parts, batch = align_batches(parts)
    model = side_by_side(parts, batch)
    merged = [i for g in groups for i in g.members]  # column order of the merge
    if merged != sorted(merged):
        gather_columns(model, [merged.index(i) for i in range(len(modules))])
    columns = [m.column for m in modules]
    kinds = {g.info["kind"] for g in groups}
    done = "union" if kinds == {"union"} else "parallel" if kinds == {"modules"} else \
        "union+parallel"
    result = LinkResult(onnx.ModelProto(), done, columns,
                        [g.info | {"parent_sha256": g.parent_sha256} for g in groups],
                        batch=batch)
    if batch is not None:
        result.notes.append(f"a module's graph fixes the batch at {batch}: the linked model "
                            f"keeps batch {batch}")
    alone = [m.label for g in groups if len(g.modules) == 1 for m in g.modules]
    if mode == "union" and alone:  # asked for, and nothing to unite them with
        more = " ..." if len(alone) > 4 else ""
        result.notes.append(f"--mode union: {', '.join(alone[:4])}{more} "
                            f"{'is its' if len(alone) == 1 else 'are each their'} parent's "
                            "only module here, run as given (a union unites two classes or "
                            "more of one parent)")
    if calibrate and len(modules) == 1:
        result.notes.append("one module: nothing to unite or combine, so the calibration "
                            "data was not used")
    for g in groups:
        if g.info["kind"] == "union":
            result.notes += combine.few_held_out(
                f"the union of classes {','.join(map(str, g.info['classes']))} was tuned",
                g.info["held_out_samples"])
    if calibrate and len(parts) > 1 and parts[0].steps:
        raise OnnxDecompError("a combiner fitted on calibration data is for models that score "
                              "whole samples; link a tagger's modules without {calibrate}",
                              options=["calibrate"])
    if calibrate and len(parts) > 1:
        group_of = np.array([next(j for j, g in enumerate(groups) if i in g.members)
                             for i in range(len(modules))])
        x, y = data.column_samples(modules)
        x, scores = fitted_scores(model, x, device)
        choice = combine.choose(combiner, scores, y, group_of, x=x,
                                columns=[column_name(c) for c in columns])
        result.combiner, result.held_out = choice.combiner.name, choice.held_out
        result.notes += choice.notes
        set_scores(model, choice.combiner.emit(model.graph, model.graph.outputs[0],
                                               model.opset_imports.get("", 17),
                                               model.graph.inputs[0]))
    elif len(groups) > 1:
        result.notes.append("scores of different models are combined raw: give calibration "
                            "data to fit a combiner")
    result.proto = finish(model, columns, {
        "mode": result.mode, "parts": result.parts, "combiner": result.combiner,
        "held_out": result.held_out})
    strict_device(result.proto, device)
    return result


def strict_device(proto: onnx.ModelProto, device: str) -> None:
    """``device`` "cuda" is strict where nothing was run on it (no union, no combiner): the
    linked model is loaded on CUDA, which fails clearly where CUDA does not run."""
    if device == "cuda":
        Runner(proto, device="cuda")


def link_parallel(modules: list[str | os.PathLike | onnx.ModelProto]) -> onnx.ModelProto:
    """The modules side by side: ``link(modules, mode="parallel").proto``."""
    return link(modules, mode="parallel").proto


def build_union(g: Group, data: Calibration, fidelity: float | None,
                compensation: str | None, refine: bool | None = None) -> tuple[Part, dict]:
    """The union part of a parent's modules, tuned on that parent's calibration data."""
    from onnxdecomp.decompose import Decomposer

    setup = data.union_setup(g, fidelity, compensation)
    dec = Decomposer(setup.parent, setup.x, setup.y, setup.settings)
    builder = UnionBuilder(dec, refine=refine)
    module = builder.tune(g.classes, setup.fidelity)
    macs = model_stats(module.proto).macs
    info = {"kind": "union", "classes": list(g.classes), "keep": module.keep,
            "fidelity": round(module.fidelity, 4), "agreement": round(module.agreement, 4),
            "fidelity_target": setup.fidelity, "compensation": setup.settings.compensation,
            "refine": builder.refines(g.classes), "stepped": module.stepped,
            "polished": module.polished,
            "macs": macs, "parent_macs": dec.parent.macs,
            "macs_fraction": round(macs / max(dec.parent.macs, 1), 4),
            "calibration": setup.source, "parent": setup.parent,
            "held_out_samples": int(builder.held_out(g.classes).sum())}
    return Part(f"union of classes {list(g.classes)} of {setup.parent}", module.proto), info
