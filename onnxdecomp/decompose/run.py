"""The decomposition as users call it: every asked class's module tuned, checked, stamped
with its provenance and written with the manifest, atomically."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from onnxdecomp.arguments import class_list, data_spec, model_argument
from onnxdecomp.channels import ChannelGraph
from onnxdecomp.data import DataSpec
from onnxdecomp.decompose.class_samples import check_classes_have_samples
from onnxdecomp.decompose.decomposer import Decomposer
from onnxdecomp.decompose.manifest import Manifest, ParentEntry
from onnxdecomp.decompose.parent import as_given_notes, float_weight_notes
from onnxdecomp.decompose.records import module_entry, stamp_module
from onnxdecomp.decompose.settings import Settings
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.modelio import atomic_folder, check_output_folder, read_model, sha256_bytes
from onnxdecomp.passes import check_emitted
from onnxdecomp.version import __version__

# Below these, the held-out fidelity is a rough estimate: digits at --limit 20 (6 held-out
# samples) gave modules at 22.0% of the MACs, every one "passing" 0.99, whose linked top-1
# was 94.67% against the parent's 98.67%. A class the parent decides for no held-out sample
# had its module's claims never checked.
MIN_HOLDOUT, MIN_HOLDOUT_OF_CLASS = 100, 1
PRESENT = "present"  # ``classes``: every class the calibration data has


def holdout_notes(hold_logodds: np.ndarray, classes: list[int]) -> list[str]:
    """A note when the fidelities rest on few held-out samples (rows: samples, or a
    tagger's labelled steps): fewer than ``MIN_HOLDOUT`` in all, or fewer than
    ``MIN_HOLDOUT_OF_CLASS`` that the parent decides for one of ``classes``."""
    n = len(hold_logodds)
    decided = np.bincount(hold_logodds.argmax(axis=1), minlength=hold_logodds.shape[1])
    few = [c for c in classes if decided[c] < MIN_HOLDOUT_OF_CLASS]
    if n >= MIN_HOLDOUT and not few:
        return []
    which = (f" (the parent decides none of them for class{'es' if len(few) > 1 else ''} "
             f"{','.join(map(str, few[:10]))}{', ...' if len(few) > 10 else ''})"
             if few else "")
    return [f"the fidelities were measured on {n} held-out samples{which}: a module can meet "
            "the target there and still lose accuracy; give more calibration data (--limit; "
            "30% of it is held out)"]


def unprunable_notes(clusters: dict[int, str], cg: ChannelGraph) -> list[str]:
    """A note when no channel of the parent can go (``clusters``: its prunable units),
    naming what pinned them: none is free, or each group of free ones is one unit, which a
    module keeps (a layer normalised as one group)."""
    units = Counter(clusters.values())
    if any(n > 1 for n in units.values()):
        return []
    ops = {op: n for op, n in cg.pinned_by.items() if not op.startswith("the graph")}
    by = ", ".join(f"{op} ({len(n)})" if len(n) > 1 else op for op, n in sorted(
        (ops or cg.pinned_by).items(), key=lambda kv: -len(kv[1])))
    return ["no channel of this model can be removed: every channel is pinned"
            + (f" (by {by})" if by else "") + (" or is one unit with every other of its "
                                               "layer" if units else "")
            + "; each module is the parent's network with its class's log-odds as output"]


def decompose(
    model: str | os.PathLike | onnx.ModelProto,
    x: np.ndarray,
    y: np.ndarray | None = None,
    out_dir: str | os.PathLike | None = None,
    classes: list[int] | str | None = None,
    class_names: list[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    calibration: DataSpec | None = None,
    force: bool = False,
) -> Manifest:
    """Cut ``model`` into one module per class; returns the manifest (also written to
    ``out_dir/manifest.json`` with the modules when ``out_dir`` is given).

    ``x`` is calibration data exactly as the model takes it (``y`` optional: classes are
    assigned by the parent's own predictions); ``classes``: the classes to cut (None: all;
    ``"present"``: those the data has, by its labels, else by the parent's decisions; a
    class without a sample is refused before profiling when labels say so); ``calibration``
    says where it came from, for
    the manifest (union linking loads it again). ``progress(stage, done, total)`` is called
    as work advances. ``out_dir`` must be new or empty unless ``force``; it is written as a
    whole (``modelio.atomic_folder``): an interrupted run leaves it as it was.
    """
    model = model_argument(model)
    if calibration is not None:
        calibration = data_spec(calibration, "calibration")
    if out_dir is not None:
        inputs = () if isinstance(model, onnx.ModelProto) else (model,)
        check_output_folder(out_dir, force, inputs)
    present = isinstance(classes, str)
    if present and classes != PRESENT:
        raise OnnxDecompError(f"{{classes}} takes class indices or {PRESENT!r}, got {classes!r}",
                              options=["classes"])
    if not present:  # numpy integers too; a class named twice would be one file
        classes = class_list(classes)
    if present:  # labels say which classes the data has; without them the parent does
        classes = None if y is None else sorted(set(np.asarray(y).reshape(-1).tolist()) - {-1})
    dec = Decomposer(model, x, y, settings, class_names, progress, classes, needs_samples=True)
    s, parent, timing = dec.settings, dec.parent, dec.timing
    k_all = parent.num_classes
    if present and classes is None:
        classes = np.flatnonzero(dec.profile.samples).tolist()
    classes = list(range(k_all)) if classes is None else list(classes)
    if not classes:
        raise OnnxDecompError("no class to decompose: {classes} names none",
                              options=["classes"])
    for c in classes:
        if not 0 <= c < k_all:
            raise OnnxDecompError(f"class {c} outside the model's classes 0..{k_all - 1}")
    if y is None:  # labelled classes were checked before the profile (Decomposer)
        check_classes_have_samples(dec.profile.samples, classes, False)
    entries, files = [], []
    t0 = time.perf_counter()
    allocated = dec.allocate(classes, s.macs) if s.macs is not None else {}
    t_prune, t_write = time.perf_counter() - t0, 0.0
    for done, k in enumerate(classes):
        t0 = time.perf_counter()
        if k in allocated:
            module = allocated[k]
            check_emitted(module.proto)
        elif s.keep is not None:
            module = dec.measure(dec.build(k, s.keep, check=True))
        else:
            module = dec.tune(k)
            check_emitted(module.proto)
        t_prune += time.perf_counter() - t0
        t0 = time.perf_counter()
        entry = module_entry(module, parent, len(dec.clusters))
        stamp_module(module.proto, parent, entry, s, dec.n_profile, dec.n_holdout, dec.align,
                     dec.align_recurrent if dec.recurrent else None)
        data = module.proto.SerializeToString()
        entry.sha256 = sha256_bytes(data)
        files.append((entry.file, data))
        entries.append(entry)
        t_write += time.perf_counter() - t0
        if progress:
            progress("modules", done + 1, len(classes))
    timing["pruning"] = t_prune
    t0 = time.perf_counter()
    given = read_model(model)  # once for both notes on the file as given
    weight_notes = float_weight_notes(given)
    manifest = Manifest(
        parent=ParentEntry(parent.path, parent.sha256, parent.params, parent.macs,
                           parent.class_names, _resolved(model), parent.per_step),
        modules=entries, settings=s,
        calibration_samples=dec.n_profile, holdout_samples=dec.n_holdout,
        parent_agreement_on_calibration=(
            None if y is None else round(dec.profile.agreement, 4)), align=dec.align,
        align_recurrent=dec.align_recurrent if dec.recurrent else None,
        onnxdecomp_version=__version__, timing_seconds=timing,
        profile_passes=dec.profiles.passes,
        calibration=None if calibration is None else calibration.resolved(),
        notes=as_given_notes(given, x[:2]) + weight_notes
        + unprunable_notes(dec.clusters, parent.cg)
        + holdout_notes(dec.hold_logodds, classes))
    if out_dir is not None:
        with atomic_folder(out_dir, force) as tmp:
            for name, data in files:
                (tmp / name).write_bytes(data)
            timing["writing"] = t_write + time.perf_counter() - t0
            manifest.write(tmp)
    else:
        timing["writing"] = t_write + time.perf_counter() - t0
    return manifest


def _resolved(model) -> str | None:
    return None if isinstance(model, onnx.ModelProto) else str(Path(model).resolve())
