"""Verify an emitted model: on its own, against the manifest beside it, against its parent.

Each check is a row: ``pass``, ``fail`` or ``skip`` (nothing to check it against) with what
was seen. The model passes when no row fails. Against the parent on data, a module's score
is compared with the parent's log-odds of its class (fidelity: the share of their variance
reproduced; agreement: decisions about the class); a linked model of one parent with the
parent restricted to its classes (agreement of decisions).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from onnxdecomp import provenance
from onnxdecomp.data import Dataset, fit_to_input, labelled_steps
from onnxdecomp.decompose.fidelity import jaccard_fidelity, logodds_fidelity
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.decompose.manifest import FILE as MANIFEST
from onnxdecomp.decompose.manifest import read_manifest
from onnxdecomp.decompose.parent import scores_model
from onnxdecomp.errors import OnnxDecompError, first_line
from onnxdecomp.modelio import model_sha256, read_model, sha256_bytes
from onnxdecomp.runtime import Runner

_MODULE_KEYS = (provenance.VERSION, provenance.PARENT_SHA256, provenance.CLASS_INDEX,
                provenance.CLASS_NAME, provenance.NUM_CLASSES, provenance.KEPT,
                provenance.CALIBRATION)


@dataclass
class Row:
    check: str
    status: str  # pass | fail | skip
    detail: str


@dataclass
class Report:
    model: str
    kind: str  # module | linked | model
    rows: list[Row]

    @property
    def passed(self) -> bool:
        return all(r.status != "fail" for r in self.rows)

    def to_json(self) -> dict:
        return {"model": self.model, "kind": self.kind, "passed": self.passed,
                "rows": [asdict(r) for r in self.rows]}


def verify(model: str | os.PathLike, parent: str | os.PathLike | None = None,
           data: Dataset | None = None) -> Report:
    """Check ``model``; with ``parent`` its provenance, with ``data`` too its agreement."""
    proto = read_model(model)
    meta = {p.key: p.value for p in proto.metadata_props}
    kind = ("module" if provenance.CLASS_INDEX in meta else
            "linked" if provenance.COLUMNS in meta else "model")
    rows = [_checker(proto), _ort(model)]
    rows += _metadata(meta, kind)
    rows.append(_manifest(Path(model), meta, kind))
    if parent is None:
        rows.append(Row("parent", "skip", "no parent given"))
        return Report(str(model), kind, rows)
    rows.append(_parent(parent, meta, kind))
    if data is not None and rows[-1].status == "pass" and rows[1].status == "pass":
        rows.append(_agreement(model, parent, meta, kind, data))
    return Report(str(model), kind, rows)


def _checker(proto: onnx.ModelProto) -> Row:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        return Row("onnx.checker (full)", "fail", first_line(exc))
    return Row("onnx.checker (full)", "pass", "valid, shapes infer")


def _ort(model) -> Row:
    try:
        runner = Runner(model, device="cpu")
    except OnnxDecompError as exc:
        return Row("ONNX Runtime load", "fail", str(exc))
    outs = ", ".join(o.name for o in runner.session.get_outputs())
    ins = ", ".join(i.name for i in runner.inputs)
    return Row("ONNX Runtime load", "pass", f"input {ins}, outputs {outs}")


def _metadata(meta: dict, kind: str) -> list[Row]:
    if kind == "model":
        return [Row("metadata", "skip", "no onnxdecomp provenance: not a module or a linked "
                    "model")]
    keys = _MODULE_KEYS if kind == "module" else (provenance.COLUMNS, provenance.LINK)
    missing = [k for k in keys if k not in meta]
    bad = []
    for k in (provenance.KEPT, provenance.CALIBRATION, provenance.COLUMNS, provenance.LINK):
        if k in meta:
            try:
                json.loads(meta[k])
            except ValueError:
                bad.append(k)
    if kind == "module" and not missing:
        if not 0 <= int(meta[provenance.CLASS_INDEX]) < int(meta[provenance.NUM_CLASSES]):
            bad.append(provenance.CLASS_INDEX)
    if missing or bad:
        return [Row("metadata", "fail", f"missing {missing}, unreadable {bad}")]
    what = (f"class {meta[provenance.CLASS_INDEX]} ({meta[provenance.CLASS_NAME]}) of "
            f"{meta[provenance.NUM_CLASSES]}" if kind == "module" else
            f"{len(json.loads(meta[provenance.COLUMNS]))} columns, mode "
            f"{json.loads(meta[provenance.LINK]).get('mode')}")
    return [Row("metadata", "pass", what)]


def _manifest(path: Path, meta: dict, kind: str) -> Row:
    candidate = path.parent / MANIFEST
    if kind != "module" or not candidate.is_file():
        return Row("manifest", "skip", "no manifest.json beside the module" if kind == "module"
                   else "only modules have one")
    try:
        manifest = read_manifest(candidate)
    except OnnxDecompError as exc:
        return Row("manifest", "fail", str(exc))
    digest = sha256_bytes(path.read_bytes())
    entry = next((e for e in manifest["modules"] if e["file"] == path.name), None)
    if entry is None:
        return Row("manifest", "fail", f"{candidate} does not list {path.name}")
    problems = []
    if entry.get("sha256") != digest:
        problems.append("sha256 differs (the file changed since it was written)")
    if str(entry.get("class_index")) != meta.get(provenance.CLASS_INDEX):
        problems.append("class index differs")
    if manifest["parent"]["sha256"] != meta.get(provenance.PARENT_SHA256):
        problems.append("parent sha256 differs")
    if problems:
        return Row("manifest", "fail", "; ".join(problems))
    return Row("manifest", "pass", f"listed in {candidate}, sha256 and class agree")


def _parent_shas(meta: dict, kind: str) -> set[str]:
    if kind == "module":
        return {meta.get(provenance.PARENT_SHA256, "")}
    if kind == "linked":
        return {c.get("parent_sha256") for c in json.loads(meta[provenance.COLUMNS])} - {None}
    return set()


def _parent(parent, meta: dict, kind: str) -> Row:
    digest = model_sha256(parent) if Path(parent).is_file() else None
    if digest is None:
        return Row("parent", "fail", f"not found: {parent}")
    shas = _parent_shas(meta, kind)
    if not shas:
        return Row("parent", "skip", "the model records no parent")
    if digest not in shas:
        return Row("parent", "fail", f"{parent} is not its parent (sha256 differs)")
    return Row("parent", "pass", f"sha256 {digest[:12]} matches")


def _agreement(model, parent, meta: dict, kind: str, data: Dataset) -> Row:
    runner = Runner(model, device="cpu")
    p_runner = Runner(scores_model(parent), device="cpu")  # logits, not probabilities
    x = fit_to_input(data, runner.input.shape, runner.input.dtype).x
    logits = p_runner.run(fit_to_input(data, p_runner.input.shape, p_runner.input.dtype).x)[0]
    out = runner.run(x)[0]
    y, unit = (data.y if data.labelled else None), "samples"
    if logits.ndim == 3:  # a tagger: its labelled steps (every step without labels)
        steps = labelled_steps(y, logits.shape)
        logits, out, y = logits[steps], out[steps], (y[steps] if y.ndim == 2 else None)
        unit = "steps"
    what = f"{len(logits)} {unit}"
    if kind == "module":
        k = int(meta[provenance.CLASS_INDEX])
        lo = logodds_from_logits(logits)
        fid, agree = logodds_fidelity(out, lo, k), jaccard_fidelity(out, lo, k)
        return Row("against the parent", "pass", f"{what}: log-odds fidelity "
                   f"{fid:.4f}, decision agreement {agree:.4f} for class {k}")
    columns = json.loads(meta[provenance.COLUMNS])
    if len(_parent_shas(meta, kind)) != 1:
        return Row("against the parent", "skip", "columns of several parents")
    classes = [c["class_index"] for c in columns]
    owner = y if y is not None and y.ndim == 1 else logits.argmax(axis=1)
    mine = np.isin(owner, classes)  # the samples of its classes: the others it never decides
    if not mine.any():
        return Row("against the parent", "skip", f"no sample of classes {classes}")
    agree = float(np.mean(out[mine].argmax(axis=1) == logits[mine][:, classes].argmax(axis=1)))
    return Row("against the parent", "pass", f"{int(mine.sum())} {unit} of classes {classes}: "
               f"decisions agree with the parent restricted to them on {100 * agree:.2f}%")
