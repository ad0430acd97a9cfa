"""What the linker calibrates with: each parent's file and data, and labelled samples for a
combiner.

A union needs its parent and calibration data: the manifest beside the modules records both
(``decompose`` writes the parent's path and sha256 and the data spec); ``--parent`` files
(matched by sha256) and ``--calibrate`` specs override them. Calibration specs are either
one per parent, in the order the parents first appear, labelled with that parent's class
indices, or one for all, labelled with the linked model's columns (-1 = ignore).

A parent's data may come without labels (``.npz`` without ``y``, a folder of images): its
samples are then labelled by the parent's own decisions, which is what a union reproduces
and what a combiner across parents needs inside each parent's domain (the domain itself is
known from which parent's data a sample came). One data set for several parents needs
labels: nothing else says which parent a sample belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.data import Dataset, DataSpec, check_label_shape, check_labels, fit_to_input
from onnxdecomp.data.records import is_records
from onnxdecomp.decompose import Settings
from onnxdecomp.decompose.parent import scores_model
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import to_proto
from onnxdecomp.modelio import model_sha256
from onnxdecomp.runtime import Runner


@dataclass
class UnionSetup:
    parent: str  # the parent's file
    x: np.ndarray  # calibration samples of the union's classes, as the parent takes them
    y: np.ndarray  # their labels, the parent's class indices
    settings: Settings  # the decomposition's own (criterion, compensation, seed ...)
    fidelity: float
    source: str  # where the samples came from, in words


class Calibration:
    def __init__(self, groups, specs: list[DataSpec], parents: list[str], device: str) -> None:
        if specs and len(specs) not in (1, len(groups)):
            raise OnnxDecompError(
                f"{len(specs)} calibration data sets for {len(groups)} parents: give one per "
                "parent (in the order they first appear) or one for all",
                options=["calibrate"])
        self.groups, self.specs, self.device = groups, specs, device
        self.per_parent = len(specs) == len(groups)
        self.parents: dict[str, str] = {}
        shas = {g.parent_sha256 for g in groups}
        for path in parents:
            if not Path(path).is_file():
                raise OnnxDecompError(f"parent model not found: {path}")
            sha = model_sha256(path)
            if sha not in shas:
                raise OnnxDecompError(f"{path} is not the parent of any module given (its "
                                      "sha256 differs from theirs)", options=["parents"])
            self.parents[sha] = path

    # ---- a union's parent and data ---------------------------------------------------
    def union_setup(self, group, fidelity: float | None,
                    compensation: str | None = None) -> UnionSetup:
        manifest, where = self._manifest(group)
        parent = self.parent_file(group, manifest, where)
        s = (manifest or {}).get("settings", {})
        settings = Settings(criterion=s.get("criterion", "refit"),
                            compensation=compensation or s.get("compensation", "lstsq"),
                            holdout=s.get("holdout", 0.3), positions=s.get("positions", 64),
                            seed=s.get("seed", 0), device=self.device,
                            prune_embeddings=bool(s.get("prune_embeddings", False)),
                            refine=bool(s.get("refine", True)))
        settings.check()
        target = fidelity if fidelity is not None else s.get("fidelity") or 0.99
        classes = list(group.classes)
        if self.specs:
            x, y, source = self._samples_of(group, classes)
        elif manifest and manifest.get("calibration"):
            spec = DataSpec.from_json(manifest["calibration"])
            if not spec.data.startswith("sklearn:") and not Path(spec.data).exists():
                raise OnnxDecompError(
                    f"{where}: a union reads its calibration data again, and {spec.data} is "
                    "gone: give it (or other data of the same classes) with {calibrate}",
                    options=["calibrate"])
            ds = self._parent_samples(group, spec, classes, checked=False)
            x, y, source = ds.x, ds.y, ds.source
        else:
            raise OnnxDecompError(
                f"{group.modules[0].label}: a union needs calibration data, and no manifest "
                "beside the modules records it: give {calibrate}", options=["calibrate"])
        return UnionSetup(parent, fit_for(Runner(parent, device="cpu"), x), y, settings,
                          float(target), source)

    def _manifest(self, group) -> tuple[dict | None, Path | None]:
        for m in group.modules:
            if m.manifest is not None:
                return m.manifest, m.manifest_path
        return None, None

    def parent_file(self, group, manifest: dict | None, where: Path | None) -> str:
        """The parent's file: a given one with its sha256, else the manifest's (checked)."""
        sha = group.parent_sha256
        if sha in self.parents:
            return self.parents[sha]
        label = group.modules[0].label
        if manifest is None:
            raise OnnxDecompError(
                f"{label}: a union needs the parent model, and no manifest beside the modules "
                "names it: give {parents}", options=["parents"])
        entry = manifest["parent"]
        tried = [p for p in (entry.get("resolved_path"), entry.get("path")) if p]
        if where is not None and entry.get("path"):
            tried.append(str(where.parent / entry["path"]))
        for path in tried:
            if Path(path).is_file():
                if model_sha256(path) != sha:
                    raise OnnxDecompError(
                        f"parent {path} has changed since {label} was cut from it (sha256 "
                        "differs): give the original with {parents}", options=["parents"])
                return path
        raise OnnxDecompError(f"{label}: parent model not found (tried {', '.join(tried)}): "
                              "give it with {parents}", options=["parents"])

    # ---- labelled samples -------------------------------------------------------------
    def _samples_of(self, group, classes: list[int]) -> tuple[np.ndarray, np.ndarray, str]:
        """Samples of ``classes`` of the group's parent, labelled with its class indices."""
        gi = self.groups.index(group)
        if self.per_parent:
            ds = self._parent_samples(group, self.specs[gi], classes)
            return ds.x, ds.y, ds.source
        ds = self._columns_data(group.members)
        if ds.y.ndim != 1:
            raise OnnxDecompError(f"{ds.source}: per-step labels cannot name the linked "
                                  "columns; give one calibration set per parent",
                                  options=["calibrate"])
        keep = np.isin(ds.y, group.members)
        to_class = {i: m.class_index for i, m in zip(group.members, group.modules)}
        y = np.array([to_class[int(v)] for v in ds.y[keep]], dtype=np.int64)
        return ds.x[keep], y, ds.source

    def _parent_samples(self, group, spec: DataSpec, classes: list[int] | None = None,
                        checked: bool = True) -> Dataset:
        """The group's parent's data labelled with its class indices (by the parent's own
        decisions where it has no labels), only samples of ``classes`` when given.
        ``checked``: the labels of the whole set are checked first (given data: a second
        read when ``classes`` are asked); the manifest's were checked by ``decompose``."""
        ds = spec.load() if checked or classes is None else spec.load(classes=classes)
        if ds.labelled:
            if not checked:
                return ds
            check_label_shape(ds.y, group.modules[0].per_step, ds.source)
            check_labels(ds.y, group.modules[0].num_classes, ds.source)
            return ds if classes is None else spec.load(classes=classes)
        x, scores = fitted_scores(scores_model(self.parent_file(group, *self._manifest(group))),
                                  ds.x, self.device)
        y = scores.argmax(axis=-1).astype(np.int64)
        ds = replace(ds, x=x, y=y, source=f"{ds.source}, labelled by the parent's decisions")
        if classes is None:
            return ds
        hit = np.isin(y, classes).reshape(len(y), -1).any(axis=1)
        if not hit.any():
            raise OnnxDecompError(f"{ds.source}: the parent decides no sample for classes "
                                  f"{list(classes)}", options=["calibrate"])
        return replace(ds, x=x[hit], y=y[hit])

    def _columns_data(self, columns: list[int] | None = None) -> Dataset:
        """The one data set for several parents, labelled with the linked columns; of
        ``columns`` alone when given (a union's: the spec's limit drawn from them, as a
        parent's own set is)."""
        ds = self.specs[0].load()
        if not ds.labelled:
            raise OnnxDecompError(
                f"{ds.source} has no labels: one calibration set for several parents needs "
                "labels naming the linked columns; give one set per parent (unlabelled sets "
                "are labelled by their parent's decisions)", options=["calibrate"])
        check_labels(ds.y, sum(len(g.members) for g in self.groups), ds.source)
        return ds if columns is None or ds.y.ndim != 1 else self.specs[0].load(classes=columns)

    def column_samples(self, modules) -> tuple[np.ndarray, np.ndarray]:
        """All calibration samples, labelled with the linked model's columns (-1: a class
        that is not linked)."""
        if not self.per_parent:  # one data set for several parents: labels are the columns
            ds = self._columns_data()
            return ds.x, ds.y
        xs, ys = [], []
        for gi, g in enumerate(self.groups):
            ds = self._parent_samples(g, self.specs[gi])
            column = {m.class_index: i for i, m in zip(g.members, g.modules)}
            xs.append(ds.x)
            ys.append(np.array([column.get(int(v), -1) for v in ds.y], dtype=np.int64))
        shapes = {x.dtype if is_records(x) else x.shape[1:] for x in xs}
        if len(shapes) > 1:
            raise OnnxDecompError(f"calibration data sets differ in sample shape: {shapes}",
                                  options=["calibrate"])
        return np.concatenate(xs), np.concatenate(ys)


def fit_for(runner: Runner, x: np.ndarray) -> np.ndarray:
    """``x`` as the runner's model takes it (``fit_to_input``), checked."""
    ds = fit_to_input(Dataset(x, np.zeros(len(x), np.int64), None, ""), runner.input.shape,
                      runner.input.dtype)
    runner.check_input(ds.x)
    return ds.x


def run_scores(model: ir.Model, x: np.ndarray, device: str) -> np.ndarray:
    """The model's first output on ``x``."""
    return fitted_scores(model, x, device)[1]


def fitted_scores(model: ir.Model | onnx.ModelProto, x: np.ndarray,
                  device: str) -> tuple[np.ndarray, np.ndarray]:
    """(``x`` as the model takes it, the model's first output on it)."""
    runner = Runner(model if isinstance(model, onnx.ModelProto) else to_proto(model),
                    device=device)
    x = fit_for(runner, x)
    return x, runner.run(x)[0]
