"""``manifest.json``: what a decomposition wrote, from what, how, and whether it passed.

Its keys are a public contract (README): extend them, never rename them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onnxdecomp.data import DataSpec
from onnxdecomp.decompose.settings import Settings
from onnxdecomp.errors import OnnxDecompError, first_line
from onnxdecomp.modelio import atomic_write_text

FILE = "manifest.json"


@dataclass
class ParentEntry:
    path: str  # as given
    sha256: str
    params: int
    macs: int
    classes: list[str]
    resolved_path: str | None = None  # absolute, for a linker run from another folder
    per_step: bool = False  # a tagger: logits [N, T, K], modules score every step [N, T, 1]


@dataclass
class ModuleEntry:
    class_index: int
    class_name: str
    file: str
    params: int
    macs: int
    params_fraction: float
    macs_fraction: float
    kept_channels: float
    kept_kernels: float
    keep_ratio: float
    fidelity: float
    decision_agreement: float
    sha256: str = ""
    stepped: bool = False  # groups stepped below keep_ratio's counts (decompose.refine)
    # score = score_scale * log-odds + score_shift, fitted on the held-out samples
    # (decompose.calibrate); 1 and 0 when the module was not mapped
    score_scale: float = 1.0
    score_shift: float = 0.0


@dataclass
class Manifest:
    parent: ParentEntry
    modules: list[ModuleEntry]
    settings: Settings
    calibration_samples: int
    holdout_samples: int
    parent_agreement_on_calibration: float | None
    onnxdecomp_version: str
    align: int = 1  # the channel multiple used (settings.align resolved)
    align_recurrent: int | None = None  # the one for recurrent hidden units, if any
    timing_seconds: dict[str, float] = field(default_factory=dict)
    calibration: DataSpec | None = None  # how to load the calibration data again
    profile_passes: int = 1  # passes over the profiling samples (tracked.py: chunks of classes)
    notes: list[str] = field(default_factory=list)  # what the user should know of the result

    @property
    def mean_macs(self) -> float:
        """Mean module MACs as a fraction of the parent's."""
        return sum(m.macs_fraction for m in self.modules) / len(self.modules)

    @property
    def passed(self) -> bool:
        """Whether the modules meet what the settings asked for (``Settings.goal``)."""
        s = self.settings
        if s.macs is not None:
            return self.mean_macs <= s.macs + 1e-9
        if s.keep is not None:
            return True
        return all(m.fidelity >= s.fidelity for m in self.modules)

    def to_json(self) -> dict:
        s = self.settings
        return {
            "parent": asdict(self.parent),
            "modules": [asdict(m) for m in self.modules],
            "settings": {
                "fidelity": s.fidelity, "criterion": s.criterion,
                "compensation": s.compensation, "keep": s.keep, "macs": s.macs,
                "holdout": s.holdout, "positions": s.positions, "seed": s.seed,
                "align": self.align, "align_requested": s.align,
                "align_recurrent": self.align_recurrent,
                "prune_embeddings": s.prune_embeddings, "refine": s.refine,
                "calibrate_score": s.calibrate_score,
                "calibration_samples": self.calibration_samples,
                "holdout_samples": self.holdout_samples,
            },
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "parent_agreement_on_calibration": self.parent_agreement_on_calibration,
            "onnxdecomp_version": self.onnxdecomp_version,
            "timing_seconds": {key: round(v, 3) for key, v in self.timing_seconds.items()},
            "profile_passes": self.profile_passes,
            "notes": self.notes,
        }

    def write(self, folder: str | Path) -> None:
        atomic_write_text(Path(folder) / FILE, json.dumps(self.to_json(), indent=2) + "\n")


def read_manifest(path: str | Path) -> dict:
    """``manifest.json`` as JSON, checked for the shape its readers rely on (the parent's
    path and sha256, a list of module entries with their files); one-line errors."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OnnxDecompError(f"cannot read {path}: {first_line(exc)}") from None
    parent = manifest.get("parent") if isinstance(manifest, dict) else None
    modules = manifest.get("modules") if isinstance(manifest, dict) else None
    ok = (isinstance(parent, dict) and isinstance(parent.get("sha256"), str)
          and isinstance(modules, list)
          and all(isinstance(m, dict) and isinstance(m.get("file"), str)
                  and isinstance(m.get("class_index"), int) for m in modules)
          and isinstance(manifest.get("calibration") or {}, dict)
          and isinstance(manifest.get("settings") or {}, dict))
    if not ok:
        raise OnnxDecompError(f"{path} is not a manifest.json of onnxdecomp decompose (keys "
                              "missing or of the wrong type)")
    return manifest
