"""Decompose a classifier into one standalone, physically smaller ONNX module per class.

normalise -> analyse channel groups -> profile (one pass, all classes) -> per class: score
units, tune the keep ratio to the smallest module that meets ``fidelity`` on held-out
calibration samples (or, under a ``macs`` budget, share the budget between classes as the
composed decisions need it; see ``allocate``) -> prune (+ least-squares refit) -> log-odds
head -> finalise -> write.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp import __version__
from onnxdecomp.allocate import Candidate, allocate
from onnxdecomp.channels import ChannelGraph, analyse
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.finalize import check_emitted, finalize
from onnxdecomp.irutil import (
    atomic_write_bytes,
    atomic_write_text,
    load_proto,
    sha256_bytes,
    to_proto,
)
from onnxdecomp.normalize import normalize
from onnxdecomp.passes.append_logodds import AppendLogOddsPass
from onnxdecomp.passes.prune_channels import PruneChannelsPass, plain_slice
from onnxdecomp.profile import Profile, logodds_from_logits, profile
from onnxdecomp.runtime import Runner
from onnxdecomp.select import (
    CRITERIA,
    choose_removed,
    class_weights,
    jaccard_fidelity,
    logodds_fidelity,
    score_units,
)
from onnxdecomp.sequential import SequentialRefit
from onnxdecomp.summary import model_stats

COMPENSATIONS = ("lstsq", "sequential", "mean", "none")
KEEP_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(19))  # 0.10 .. 1.00
DEFAULT_FIDELITY = 0.99


@dataclass
class Settings:
    fidelity: float = DEFAULT_FIDELITY
    criterion: str = "refit"
    compensation: str = "lstsq"
    keep: float | None = None  # a fixed keep ratio disables tuning
    macs: float | None = None  # a budget on the mean module MACs (fraction of the parent's)
    holdout: float = 0.3
    positions: int = 64
    sequential_samples: int = 1000  # at most this many profiling samples feed the sequential refit
    ridge: float = 1e-3
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        if self.criterion not in CRITERIA:
            raise OnnxDecompError(f"unknown criterion {self.criterion!r}: {', '.join(CRITERIA)}")
        if self.compensation not in COMPENSATIONS:
            raise OnnxDecompError(
                f"unknown compensation {self.compensation!r}: {', '.join(COMPENSATIONS)}")
        if not 0.0 < self.fidelity <= 1.0:
            raise OnnxDecompError(f"--fidelity must be in (0, 1], got {self.fidelity}")
        if self.keep is not None and not 0.0 < self.keep <= 1.0:
            raise OnnxDecompError(f"--keep must be in (0, 1], got {self.keep}")
        if self.macs is not None and not 0.0 < self.macs <= 1.0:
            raise OnnxDecompError(f"--macs must be in (0, 1], got {self.macs}")
        if self.keep is not None and self.macs is not None:
            raise OnnxDecompError("--keep and --macs exclude each other: give one")
        if not 0.0 < self.holdout < 1.0:
            raise OnnxDecompError(f"holdout fraction must be in (0, 1), got {self.holdout}")


@dataclass
class Parent:
    """The normalised parent and everything the modules are built from."""

    path: str
    sha256: str
    proto: onnx.ModelProto  # normalised
    cg: ChannelGraph
    num_classes: int
    class_names: list[str]
    stats: dict = field(default_factory=dict)


def make_refit(prof: Profile, weights: np.ndarray, mode: str, ridge: float):
    """The consumer-weight refit for removed input channels.

    lstsq: W' = argmin E||W x~ - W' x~_S||^2 = (G_SS + lambda I)^-1 G_S: W^T, the kept columns
    re-solved to reproduce the parent's outputs (He et al. 2017; ThiNet), the bias column
    included. mean: removed inputs replaced by their mean, folded into the bias. none: slice.
    """
    if mode == "none":
        return plain_slice

    def refit(node: ir.Node, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if len(rows) == w.shape[1]:
            return w  # nothing removed from this input: the parent's weights are exact
        gram = prof.gram(node.name, weights)
        if mode == "mean":
            gone = np.setdiff1d(np.arange(gram.shape[0]), rows)
            out = w[:, rows].copy()
            out[:, -1] += w[:, gone] @ gram[gone, -1]
            return out
        a = gram[np.ix_(rows, rows)]
        lam = ridge * float(np.trace(a)) / len(rows)
        a = a + lam * np.eye(len(rows))
        return np.linalg.solve(a, gram[rows] @ w.T).T

    return refit


def build_module(parent: Parent, removed: set[int], refit, k: int, check: bool) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(parent.proto)
    PruneChannelsPass(parent.cg, removed, refit)(model)
    AppendLogOddsPass(k, parent.num_classes)(model)
    return finalize(model, check=check)


def kernel_fraction(cg: ChannelGraph, removed: set[int]) -> float:
    """Kept kernels / all kernels over Conv consumers (CNNSplitter's KRR); 1 with no Conv."""
    kept = total = 0
    for cons in cg.consumers:
        if cons.kind != "conv":
            continue
        out = cons.node.outputs[0]
        n_in = [r not in removed for r in cg.roots(cons.value)]
        n_out = [r not in removed for r in cg.roots(out)] if cg.has(out) else [True]
        kept += sum(n_in) * sum(n_out)
        total += len(n_in) * len(n_out)
    return kept / total if total else 1.0


def load_parent(model: str | os.PathLike | onnx.ModelProto,
                class_names: list[str] | None = None) -> Parent:
    proto = load_proto(model)
    raw = proto.SerializeToString()
    ir_model = normalize(ir.serde.deserialize_model(proto))
    out = ir_model.graph.outputs[0]
    if out.shape is None or len(out.shape) != 2 or not isinstance(out.shape[1], int):
        raise OnnxDecompError("the model's output must be [N, K] class scores")
    k = out.shape[1]
    if k < 2:
        raise OnnxDecompError("the model has fewer than two classes")
    cg = analyse(ir_model)
    names = list(class_names) if class_names and len(class_names) == k else [
        str(i) for i in range(k)]
    stats = model_stats(proto)
    return Parent(
        path=str(model) if not isinstance(model, onnx.ModelProto) else "<memory>",
        sha256=sha256_bytes(raw),
        proto=to_proto(ir_model),
        cg=cg,
        num_classes=k,
        class_names=names,
        stats={"params": stats.params, "macs": stats.macs},
    )


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(profiling indices, held-out indices), a seeded random split."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_hold = max(1, min(n - 1, int(round(n * holdout))))
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


class Decomposer:
    """The parent profiled once; modules for any class and keep ratio built on demand.

    ``x`` is calibration data exactly as the model takes it; a ``holdout`` fraction of it is
    kept apart to measure fidelity. ``y`` is optional: classes are assigned by the parent's
    own predictions.
    """

    def __init__(self, model, x: np.ndarray, y: np.ndarray | None = None,
                 settings: Settings | None = None, class_names: list[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        self.settings = s = settings or Settings()
        s.check()
        self.timing: dict[str, float] = {}
        t0 = time.perf_counter()
        self.parent = load_parent(model, class_names)
        self.clusters = self.parent.cg.units()
        self.timing["analysis"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prof_idx, hold_idx = _split(len(x), s.holdout, s.seed)
        self.n_profile, self.n_holdout = len(prof_idx), len(hold_idx)
        ir_model = ir.serde.deserialize_model(self.parent.proto)
        step = (lambda n: progress("profile", n, len(prof_idx))) if progress else None
        self.profile = profile(
            ir_model, self.parent.cg, x[prof_idx], None if y is None else y[prof_idx],
            device=s.device, positions=s.positions, seed=s.seed, progress=step)
        self.x_hold = x[hold_idx]
        logits = Runner(self.parent.proto, device=s.device).run(self.x_hold)[0]
        self.hold_logodds = logodds_from_logits(logits)
        self.timing["profiling"] = time.perf_counter() - t0
        self._scores: dict[tuple[str, int], dict[int, float]] = {}
        self._x_seq = x[prof_idx[:s.sequential_samples]]
        self._sequential: SequentialRefit | None = None

    def scores(self, k: int, criterion: str | None = None) -> dict[int, float]:
        key = (criterion or self.settings.criterion, k)
        if key not in self._scores:
            self._scores[key] = score_units(key[0], k, self.parent.cg, self.profile,
                                            self.settings.seed)
        return self._scores[key]

    def build(self, k: int, keep: float, criterion: str | None = None,
              compensation: str | None = None, check: bool = False):
        """(module proto, removed units) for class ``k`` keeping ``keep`` of each group."""
        s = self.settings
        mode = compensation or s.compensation
        removed = choose_removed(self.scores(k, criterion), self.clusters, keep)
        weights = class_weights(self.profile, k)
        refit = make_refit(self.profile, weights, "lstsq" if mode == "sequential" else mode,
                           s.ridge)
        if mode != "sequential" or not removed:
            return build_module(self.parent, removed, refit, k, check=check), removed
        if self._sequential is None:
            self._sequential = SequentialRefit(self.parent.proto, self.parent.cg, self._x_seq,
                                               s.positions, s.seed, s.ridge, s.device)
        proto = self._sequential.solve(
            removed, weights, lambda rf: build_module(self.parent, removed, rf, k, check=False),
            refit)
        if check:
            check_emitted(proto)
        return proto, removed

    def fidelity(self, k: int, proto: onnx.ModelProto) -> tuple[float, float]:
        """(log-odds fidelity, decision agreement) of a module on the held-out samples."""
        return self._fidelities(k, self._hold_score(proto))

    def _hold_score(self, proto: onnx.ModelProto) -> np.ndarray:
        return Runner(proto, device=self.settings.device).run(self.x_hold)[0]

    def _fidelities(self, k: int, score: np.ndarray) -> tuple[float, float]:
        return (logodds_fidelity(score, self.hold_logodds, k),
                jaccard_fidelity(score, self.hold_logodds, k))

    def allocate(self, classes: list[int], budget: float
                 ) -> dict[int, tuple[float, onnx.ModelProto, set[int], tuple[float, float]]]:
        """Per class (keep, module, removed, fidelities) with mean module MACs <= ``budget``
        (a fraction of the parent's), the keep ratios shared out by ``allocate``; modules
        are finalised but not yet checked. With the sequential refit, candidates are ranked
        with the parallel refit (same sizes, a fraction of the cost) and only the chosen
        modules are built sequentially."""
        ladder = KEEP_GRID[::-1]  # 1.0 (the parent, exact) down to the smallest
        built: dict[tuple[int, int], tuple] = {}
        sequential = self.settings.compensation == "sequential"

        def candidate(k: int, i: int) -> Candidate | None:
            if i >= len(ladder):
                return None
            if (k, i) not in built:
                proto, removed = self.build(k, ladder[i],
                                            compensation="lstsq" if sequential else None)
                score = self._hold_score(proto)
                macs = model_stats(proto).macs / max(self.parent.stats["macs"], 1)
                built[k, i] = (Candidate(macs, score[:, 0]), proto, removed, score)
            return built[k, i][0]

        chosen = allocate(candidate, classes, self.hold_logodds, budget)
        out = {}
        for k, i in chosen.items():
            _, proto, removed, score = built[k, i]
            if sequential and removed:
                proto, removed = self.build(k, ladder[i])
                score = self._hold_score(proto)
            out[k] = (ladder[i], proto, removed, self._fidelities(k, score))
        return out

    def tune(self, k: int) -> tuple[float, onnx.ModelProto, set[int], tuple[float, float]]:
        """(keep, module, removed, fidelities) of the smallest module meeting the fidelity
        target; the module is finalised but not yet checked."""
        def evaluate(keep: float):
            proto, removed = self.build(k, keep)
            return proto, removed, self.fidelity(k, proto)

        return _tune(evaluate, self.settings.fidelity)


def decompose(
    model: str | os.PathLike | onnx.ModelProto,
    x: np.ndarray,
    y: np.ndarray | None = None,
    out_dir: str | os.PathLike | None = None,
    classes: list[int] | None = None,
    class_names: list[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Cut ``model`` into one module per class; returns the manifest (also written to
    ``out_dir/manifest.json`` with the modules when ``out_dir`` is given).

    ``x`` is calibration data exactly as the model takes it (``y`` optional: classes are
    assigned by the parent's own predictions). ``progress(stage, done, total)`` is called as
    work advances.
    """
    dec = Decomposer(model, x, y, settings, class_names, progress)
    s, parent, timing = dec.settings, dec.parent, dec.timing
    k_all = parent.num_classes
    classes = list(range(k_all)) if classes is None else list(classes)
    if not classes:
        raise OnnxDecompError("no class to decompose: --classes names none")
    for c in classes:
        if not 0 <= c < k_all:
            raise OnnxDecompError(f"class {c} outside the model's classes 0..{k_all - 1}")
    modules, files = [], []
    t0 = time.perf_counter()
    allocated = dec.allocate(classes, s.macs) if s.macs is not None else {}
    t_prune, t_write = time.perf_counter() - t0, 0.0
    for done, k in enumerate(classes):
        t0 = time.perf_counter()
        if k in allocated:
            keep, proto, removed, fid = allocated[k]
            check_emitted(proto)
        elif s.keep is not None:
            keep = s.keep
            proto, removed = dec.build(k, keep, check=True)
            fid = dec.fidelity(k, proto)
        else:
            keep, proto, removed, fid = dec.tune(k)
            check_emitted(proto)
        t_prune += time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = model_stats(proto)
        entry = {
            "class_index": k,
            "class_name": parent.class_names[k],
            "file": f"class_{k:0{len(str(k_all - 1))}d}.onnx",
            "params": stats.params,
            "macs": stats.macs,
            "params_fraction": round(stats.params / max(parent.stats["params"], 1), 4),
            "macs_fraction": round(stats.macs / max(parent.stats["macs"], 1), 4),
            "kept_channels": round(1 - len(removed) / max(len(dec.clusters), 1), 4),
            "kept_kernels": round(kernel_fraction(parent.cg, removed), 4),
            "keep_ratio": keep,
            "fidelity": round(fid[0], 4),
            "decision_agreement": round(fid[1], 4),
        }
        _stamp(proto, parent, entry, s, dec.n_profile, dec.n_holdout)
        data = proto.SerializeToString()
        entry["sha256"] = sha256_bytes(data)
        files.append((entry["file"], data))
        modules.append(entry)
        t_write += time.perf_counter() - t0
        if progress:
            progress("modules", done + 1, len(classes))
    timing["pruning"] = t_prune
    t0 = time.perf_counter()
    manifest = {
        "parent": {
            "path": parent.path,
            "sha256": parent.sha256,
            "params": parent.stats["params"],
            "macs": parent.stats["macs"],
            "classes": parent.class_names,
        },
        "modules": modules,
        "settings": {
            "fidelity": s.fidelity, "criterion": s.criterion, "compensation": s.compensation,
            "keep": s.keep, "macs": s.macs, "holdout": s.holdout, "positions": s.positions,
            "seed": s.seed,
            "calibration_samples": dec.n_profile, "holdout_samples": dec.n_holdout,
        },
        "parent_agreement_on_calibration": (
            None if y is None else round(dec.profile.agreement, 4)),
        "onnxdecomp_version": __version__,
    }
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise OnnxDecompError(f"output path exists and is not a folder: {out}")
        for name, data in files:
            atomic_write_bytes(out / name, data)
    timing["writing"] = t_write + time.perf_counter() - t0
    manifest["timing_seconds"] = {key: round(v, 3) for key, v in timing.items()}
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _tune(evaluate, target: float):
    """Smallest keep ratio of KEEP_GRID whose fidelity meets ``target`` (binary search;
    fidelity grows with the ratio, and 1.0, nothing removed, is exact)."""
    lo, hi = 0, len(KEEP_GRID) - 1
    best = (KEEP_GRID[hi],) + evaluate(KEEP_GRID[hi])
    while lo < hi:
        mid = (lo + hi) // 2
        proto, removed, fid = evaluate(KEEP_GRID[mid])
        if fid[0] >= target:
            best, hi = (KEEP_GRID[mid], proto, removed, fid), mid
        else:
            lo = mid + 1
    return best


def _stamp(proto: onnx.ModelProto, parent: Parent, entry: dict, s: Settings,
           n_prof: int, n_hold: int) -> None:
    """Provenance in the module itself: a module stays traceable once copied elsewhere."""
    meta = {
        "onnxdecomp.version": __version__,
        "onnxdecomp.parent_sha256": parent.sha256,
        "onnxdecomp.class_index": str(entry["class_index"]),
        "onnxdecomp.class_name": entry["class_name"],
        "onnxdecomp.num_classes": str(parent.num_classes),
        "onnxdecomp.kept": json.dumps({key: entry[key] for key in (
            "kept_channels", "kept_kernels", "params_fraction", "macs_fraction", "keep_ratio")}),
        "onnxdecomp.calibration": json.dumps({
            "samples": n_prof, "holdout": n_hold, "criterion": s.criterion,
            "compensation": s.compensation, "fidelity_target": s.fidelity,
            "macs_budget": s.macs,
            "fidelity": entry["fidelity"], "seed": s.seed, "positions": s.positions}),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = "onnxdecomp", __version__
