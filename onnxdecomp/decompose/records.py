"""What is recorded of a module: its manifest entry and the provenance stamped into it."""

from __future__ import annotations

import onnx

from onnxdecomp import provenance
from onnxdecomp.decompose.manifest import ModuleEntry
from onnxdecomp.decompose.parent import Parent, kernel_fraction
from onnxdecomp.decompose.settings import Settings
from onnxdecomp.stats import model_stats


def module_entry(module, parent: Parent, n_units: int) -> ModuleEntry:
    """The manifest entry of a built, measured one-class module."""
    stats = model_stats(module.proto)
    k = module.k
    scale, shift = module.score_map or (1.0, 0.0)
    return ModuleEntry(
        class_index=k,
        class_name=parent.class_names[k],
        file=f"class_{k:0{len(str(parent.num_classes - 1))}d}.onnx",
        params=stats.params,
        macs=stats.macs,
        params_fraction=round(stats.params / max(parent.params, 1), 4),
        macs_fraction=round(stats.macs / max(parent.macs, 1), 4),
        kept_channels=round(1 - len(module.removed) / max(n_units, 1), 4),
        kept_kernels=round(kernel_fraction(parent.cg, module.removed), 4),
        keep_ratio=module.keep,
        fidelity=round(module.fidelity, 4),
        decision_agreement=round(module.agreement, 4),
        stepped=module.stepped,
        score_scale=round(scale, 6),
        score_shift=round(shift, 6),
    )


def stamp_module(proto: onnx.ModelProto, parent: Parent, entry: ModuleEntry, s: Settings,
                 n_prof: int, n_hold: int, align: int, align_recurrent: int | None) -> None:
    """Provenance in the module itself: a module stays traceable once copied elsewhere."""
    kept = {key: getattr(entry, key) for key in (
        "kept_channels", "kept_kernels", "params_fraction", "macs_fraction", "keep_ratio")}
    calibration = {
        "samples": n_prof, "holdout": n_hold, "criterion": s.criterion,
        "compensation": s.compensation, "fidelity_target": s.fidelity,
        "macs_budget": s.macs, "fidelity": entry.fidelity, "seed": s.seed,
        "positions": s.positions, "align": align,
        "score_map": [entry.score_scale, entry.score_shift]}
    if align_recurrent is not None:
        calibration["align_recurrent"] = align_recurrent
    provenance.stamp(proto, provenance.module_meta(
        parent.sha256, entry.class_index, entry.class_name, parent.num_classes, kept,
        calibration))
