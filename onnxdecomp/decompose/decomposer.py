"""Decompose a classifier into one standalone, physically smaller ONNX module per class.

normalise -> analyse channel groups -> profile (one pass, all classes) -> per class: score
units, tune the keep ratio to the smallest module that meets ``fidelity`` on held-out
calibration samples (or, under a ``macs`` budget, share the budget between classes as the
composed decisions need it; see ``allocate``) -> prune (+ least-squares refit) -> log-odds
head -> finalise -> write.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.arguments import calibration_arrays, class_index, fraction
from onnxdecomp.channels import PruneChannelsPass, plain_slice
from onnxdecomp.data import check_label_shape, check_labels, labelled_steps
from onnxdecomp.data.records import sample_shape
from onnxdecomp.decompose.align import cluster_aligns, recurrent_align, resolve_align
from onnxdecomp.decompose.allocate import Candidate, allocate
from onnxdecomp.decompose.calibrate import calibrate, fit_score_map
from onnxdecomp.decompose.class_samples import check_classes_have_samples, label_counts
from onnxdecomp.decompose.compensate import make_refit
from onnxdecomp.decompose.criteria import (
    Concern,
    choose_removed,
    class_concern,
    kept_counts,
    remove_beyond,
    score_units,
)
from onnxdecomp.decompose.fidelity import jaccard_fidelity, logodds_fidelity
from onnxdecomp.decompose.head import AppendLogOddsPass, logodds_from_logits
from onnxdecomp.decompose.parent import Parent, load_parent
from onnxdecomp.decompose.polish import polish_search
from onnxdecomp.decompose.profile import Profile, profile
from onnxdecomp.decompose.refine import lower_counts, refine_counts
from onnxdecomp.decompose.samples import running_count, split_holdout
from onnxdecomp.decompose.sequential import SequentialRefit
from onnxdecomp.decompose.settings import KEEP_GRID, Settings
from onnxdecomp.decompose.shape_macs import ShapeMacs
from onnxdecomp.decompose.tracked import TrackedProfile
from onnxdecomp.decompose.tune import tune_keep
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.passes import QuantizeWeightsPass, check_emitted, finalize, requantize
from onnxdecomp.passes.finalize import with_integer_ops
from onnxdecomp.runtime import Runner
from onnxdecomp.stats import model_stats


@dataclass
class BuiltModule:
    """A module for ``classes`` (one class, or a union's subset) at keep ratio ``keep``;
    fidelities once measured."""

    classes: tuple[int, ...]
    keep: float
    proto: onnx.ModelProto
    removed: set[int]
    fidelity: float | None = None  # share of the parent's log-odds variance reproduced
    agreement: float | None = None  # decision agreement with the parent
    stepped: bool = False  # per-group aligned steps were taken after the keep search
    polished: bool = False  # refitted sequentially after the parallel search (polish.py)
    # (a, b) once calibrated (calibrate.py): numbers for a module, one per class for a union
    score_map: tuple | None = None
    score: np.ndarray | None = None  # the held-out scores once measured

    @property
    def k(self) -> int:
        """The class of a one-class module."""
        (k,) = self.classes
        return k


def build_module(parent: Parent, removed: set[int], refit, head: ir.passes.InPlacePass,
                 check: bool, integer_ops: bool = True) -> onnx.ModelProto:
    """The parent with ``removed`` units pruned (``refit`` compensating) and ``head`` as its
    output. Without ``integer_ops`` a dynamically quantised parent's layers stay float ops
    on dequantised inputs, whose values the sequential refit probes by name."""
    model = parent.model.clone()
    PruneChannelsPass(parent.cg, removed, refit)(model)
    head(model)
    if integer_ops:
        requantize(model)
    else:
        QuantizeWeightsPass()(model)  # int8 weights, the layers float ops on DQ inputs
    return finalize(model, check=check)


class Decomposer:
    """The parent profiled once; modules for any class and keep ratio built on demand.

    ``x`` is calibration data exactly as the model takes it; a ``holdout`` fraction of it is
    kept apart to measure fidelity. ``y`` is optional: classes are assigned by the parent's
    own predictions. ``needs_samples``: each of ``classes`` (all without) has a labelled
    sample, checked before profiling."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray | None = None,
                 settings: Settings | None = None, class_names: list[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 classes: list[int] | None = None, needs_samples: bool = False) -> None:
        if settings is not None and not isinstance(settings, Settings):
            raise OnnxDecompError(f"settings must be a Settings, got {type(settings).__name__}"
                                  " (Settings(keep=0.5), ...)")
        self.settings = s = settings or Settings()
        s.check()
        x, y = calibration_arrays(x, y)
        self.timing: dict[str, float] = {}
        t0 = time.perf_counter()
        self.parent = load_parent(model, class_names, sample_shape(x))
        if self.parent.per_step and s.compensation == "sequential":
            raise OnnxDecompError(
                "{compensation} sequential weighs whole samples by their class; a tagger's "
                "classes are per step: use lstsq (the default) or none",
                options=["compensation"])
        if y is not None:
            check_label_shape(y, self.parent.per_step, "the calibration labels")
            check_labels(y, self.parent.num_classes, "the calibration labels")
            if needs_samples:  # before profiling: a many-class model's takes a while
                k = self.parent.num_classes
                check_classes_have_samples(label_counts(y, k), classes, True, class_names)
        self.clusters = self.parent.cg.units()
        if not s.prune_embeddings:
            lookups = {self.parent.cg.cluster(name) for name in self.parent.cg.lookups}
            self.clusters = {u: c for u, c in self.clusters.items() if c not in lookups}
        self.spaces = self.parent.cg.partial_spaces()
        self.timing["analysis"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prof_idx, hold_idx = split_holdout(len(x), s.holdout, s.seed)
        self.n_profile, self.n_holdout = len(prof_idx), len(hold_idx)

        def steps(passes: int) -> Callable[[int], None]:  # the samples of that many passes
            return running_count(progress, "profile", passes * len(prof_idx))

        x_prof, y_prof = x[prof_idx], None if y is None else y[prof_idx]

        def run(track, totals, step, rows=slice(None)):
            return profile(self.parent.proto, self.parent.cg, x_prof[rows],
                           None if y_prof is None else y_prof[rows], device=s.device,
                           positions=s.positions, seed=s.seed, progress=step, track=track,
                           totals=totals)

        # ``classes``: the order modules will be asked in, so that a chunk serves the next
        sizes = [st.gram.shape[1] for st in run([], None, None, slice(1)).consumers.values()]
        self.profiles = TrackedProfile(run, self.parent.num_classes, sizes, classes or [],
                                       s.profile_memory, steps if progress else None)
        self.x_hold = x[hold_idx]
        self.y_hold = None if y is None else y[hold_idx]
        # Fidelity is measured against the parent as it computes, not its float twin.
        runner = Runner(with_integer_ops(self.parent.proto), device=s.device)
        self.hold_logits = runner.run(self.x_hold)[0]
        # A tagger's held-out samples are its labelled steps (every step without labels).
        self.hold_steps = None
        if self.parent.per_step:
            self.hold_steps = labelled_steps(self.y_hold, self.hold_logits.shape)
            self.hold_logits = self.hold_logits[self.hold_steps]
        self.align = resolve_align(s.align, runner.device)
        # Recurrent hidden units run through GEMMs, not blocked convolutions (align.py).
        self.align_recurrent = recurrent_align(s.align, self.align)
        self.recurrent = any(c.kind == "rnn_state" for c in self.parent.cg.consumers)
        self.align_of = cluster_aligns(self.parent.cg, self.align, self.align_recurrent)
        self.hold_logodds = logodds_from_logits(self.hold_logits)
        self.timing["profiling"] = time.perf_counter() - t0
        self._scores: dict[tuple[str, int], dict[int, float]] = {}
        self._x_seq = x[prof_idx[:s.sequential_samples]]
        self._sequential: SequentialRefit | None = None
        self.shape_macs = ShapeMacs(self.parent.cg)

    def sequential_bytes(self) -> int | None:
        """What the sequential refit holds in memory, estimated: the parent's and the
        module's activations at every layer input on its samples (float32); None when a
        shape is unknown."""
        per_sample = 0
        for value, axis in {c.value.name: (c.value, c.batch_axis)
                            for c in self.parent.cg.consumers}.values():
            dims = list(value.shape or [])
            rest = [d for i, d in enumerate(dims) if i != axis]
            if not dims or not all(isinstance(d, int) for d in rest):
                return None
            per_sample += int(np.prod(rest))
        return 2 * 4 * per_sample * len(self._x_seq)

    @property
    def profile(self) -> Profile:
        """The calibration statistics (see ``tracked.py`` for which classes' grams)."""
        return self.profiles.current

    def _profile_for(self, concern: Concern) -> Profile:
        """The profile holding every gram ``concern``'s weights read."""
        return self.profiles.ensure(self.profile.needs(concern.weights))

    def scores(self, concern: Concern, criterion: str | None = None) -> dict[int, float]:
        key = (criterion or self.settings.criterion, concern.classes)
        if key not in self._scores:
            self._scores[key] = score_units(key[0], concern, self.parent.cg,
                                            self._profile_for(concern), self.settings.seed)
        return self._scores[key]

    def build(self, k: int, keep: float, criterion: str | None = None,
              compensation: str | None = None, check: bool = False) -> BuiltModule:
        """The module of class ``k`` keeping ``keep`` of each channel group."""
        k = class_index(k, "class")
        if not 0 <= k < self.parent.num_classes:
            raise OnnxDecompError(f"class {k} outside the model's classes "
                                  f"0..{self.parent.num_classes - 1}")
        fraction(keep, "keep")
        return self.build_for(class_concern(self.profile, k), keep,
                              AppendLogOddsPass(k, self.parent.num_classes), criterion,
                              compensation, check)

    def build_for(self, concern: Concern, keep: float, head: ir.passes.InPlacePass,
                  criterion: str | None = None, compensation: str | None = None,
                  check: bool = False, removed: set[int] | None = None) -> BuiltModule:
        """The model serving ``concern`` keeping ``keep`` of each channel group (or without
        the units ``removed``, when given), with ``head`` (a pass) as its output."""
        s = self.settings
        mode = compensation or s.compensation
        if removed is None:
            removed = choose_removed(self.scores(concern, criterion), self.clusters, keep,
                                     self.align, self.align_of, self.spaces)
        refit = make_refit(self._profile_for(concern), concern.weights,
                           "lstsq" if mode == "sequential" else mode, s.ridge)

        def build(rf, integer_ops: bool = True) -> onnx.ModelProto:
            return build_module(self.parent, removed, rf, head, False, integer_ops)

        if mode != "sequential" or not removed:
            proto = build(refit)
        else:
            if self._sequential is None:
                self._sequential = SequentialRefit(self.parent.proto, self.parent.cg,
                                                   self._x_seq, s.positions, s.seed, s.ridge,
                                                   s.device)
            proto = with_integer_ops(self._sequential.solve(
                removed, concern.weights, lambda rf: build(rf, integer_ops=False), refit))
        if check:
            check_emitted(proto)
        return BuiltModule(concern.classes, keep, proto, removed)

    def hold_score(self, proto: onnx.ModelProto, mask: np.ndarray | None = None) -> np.ndarray:
        """A module's first output on the held-out samples (those ``mask`` selects)."""
        x = self.x_hold if mask is None else self.x_hold[mask]
        out = Runner(proto, device=self.settings.device).run(x)[0]
        if self.hold_steps is not None:  # [n, T, .] -> the labelled steps' rows
            out = out[self.hold_steps if mask is None else self.hold_steps[mask]]
        return out

    def measure(self, module: BuiltModule, score: np.ndarray | None = None) -> BuiltModule:
        """Set the module's fidelities on the held-out samples (from ``score`` if given);
        an uncalibrated module's score is calibrated first (calibrate.py), ``score`` being
        what it gave before."""
        score = self.hold_score(module.proto) if score is None else score
        if self.settings.calibrate_score:
            score = calibrate(module, score,
                              lambda s: fit_score_map(s, self.hold_logodds, module.k))
        module.score = score
        module.fidelity = logodds_fidelity(score, self.hold_logodds, module.k)
        module.agreement = jaccard_fidelity(score, self.hold_logodds, module.k)
        return module

    def candidates(self):
        """(``candidate(k, i)`` for ``allocate``, the cache it fills): class k's module at
        the i-th keep ratio of the grid from 1.0 (the parent, exact) down, built with the
        parallel refit, measured on the held-out samples. The cache maps (k, i) to
        (Candidate, BuiltModule)."""
        ladder = KEEP_GRID[::-1]
        built: dict[tuple[int, int], tuple[Candidate, BuiltModule]] = {}
        sequential = self.settings.compensation == "sequential"

        def candidate(k: int, i: int) -> Candidate | None:
            if i >= len(ladder):
                return None
            if (k, i) not in built:
                module = self.build(k, ladder[i], compensation="lstsq" if sequential else None)
                score = self.measure(module).score
                macs = model_stats(module.proto).macs / max(self.parent.macs, 1)
                built[k, i] = (Candidate(macs, score[:, 0]), module)
            return built[k, i][0]

        return candidate, built

    def allocate(self, classes: list[int], budget: float, on_step=None,
                 candidates=None) -> dict[int, BuiltModule]:
        """Per class the module, measured, with mean module MACs <= ``budget`` (a fraction
        of the parent's), the keep ratios shared out by ``allocate``; modules are finalised
        but not yet checked. With the sequential refit, candidates are ranked with the
        parallel refit (same sizes, a fraction of the cost) and only the chosen modules are
        built sequentially. ``on_step`` goes to ``allocate``; ``candidates`` is what
        ``self.candidates()`` returned, to share its cache."""
        if not self.profiles.holds_all and len(classes) > self.profiles.capacity:
            raise OnnxDecompError(
                f"{{macs}} weighs the modules of {len(classes)} classes together; the profile "
                f"holds {self.profiles.capacity} class(es) at once in its budget "
                "({profile_memory}): use {fidelity} or {keep}, or fewer {classes}",
                options=["macs", "fidelity", "keep", "classes", "profile_memory"])
        candidate, built = candidates or self.candidates()
        chosen = allocate(candidate, classes, self.hold_logodds, budget, on_step)
        out = {}
        for k, i in chosen.items():
            module = built[k, i][1]  # measured when the descent reached it
            if self.settings.compensation == "sequential" and module.removed:
                module = self.measure(self.build(k, KEEP_GRID[::-1][i]))
            out[k] = module
        return out

    def counts(self, keep: float) -> dict[str, int]:
        """Units kept in each cluster at keep ratio ``keep``, aligned."""
        return kept_counts(self.clusters, keep, self.align, self.align_of)

    @cached_property
    def head_clusters(self) -> set[str]:
        """The clusters whose units are attention heads."""
        return {self.parent.cg.cluster(n) for n in self.parent.cg.heads} & set(
            self.clusters.values())

    def search_counts(self, keep: float) -> dict[str, int]:
        """``counts``, attention heads all kept: a keep ratio would take a large share of a
        layer's few heads at once (half of 4 at 0.5), a coarser and costlier move than the
        same share of its other units; the per-cluster steps take them one by one."""
        counts = self.counts(keep)
        sizes = Counter(self.clusters.values())
        return counts | {cl: sizes[cl] for cl in self.head_clusters}

    @cached_property
    def ladder(self) -> list[dict[str, int]]:
        """The aligned counts of every cluster at every ratio of the keep grid."""
        return [self.counts(r) for r in KEEP_GRID]

    def tune(self, k: int) -> BuiltModule:
        """The smallest module meeting the fidelity target, measured; finalised but not yet
        checked."""
        return self.tune_for(class_concern(self.profile, k),
                             AppendLogOddsPass(k, self.parent.num_classes), self.measure,
                             self.settings.fidelity)

    def tune_for(self, concern: Concern, head: ir.passes.InPlacePass,
                 measure: Callable[[BuiltModule], BuiltModule], target: float,
                 refine: bool | None = None, polish: bool | None = None) -> BuiltModule:
        """The smallest model serving ``concern`` whose ``measure``d fidelity meets
        ``target``: the keep ratio's binary search, then per-cluster steps to the next
        smaller aligned counts (``refine``), both with the parallel refit. Keep ratios that
        remove the same units (aligned counts round several ratios to one) are built and
        measured once. ``polish``: the search's module is refitted sequentially and the
        search goes on as far as the sequential refit keeps the target (polish.py).
        ``refine`` and ``polish`` override the settings (steps; ``--compensation
        sequential``)."""
        scores = self.scores(concern)
        seen: dict[frozenset[int], BuiltModule] = {}
        if polish is None:
            polish = self.settings.compensation == "sequential"

        def build(counts: dict[str, int], keep: float) -> BuiltModule:
            removed = remove_beyond(scores, self.clusters, counts, self.spaces)
            key = frozenset(removed)
            if key not in seen:
                seen[key] = measure(self.build_for(
                    concern, keep, head, compensation="lstsq" if polish else None,
                    removed=removed))
            return replace(seen[key], keep=keep)

        def macs(counts: dict[str, int]) -> float:
            removed = remove_beyond(scores, self.clusters, counts, self.spaces)
            return self.shape_macs(removed, head, lambda: model_stats(build_module(
                self.parent, removed, plain_slice, head, check=False)).macs)

        refine = self.settings.refine if refine is None else refine

        def search(goal: float) -> BuiltModule:
            best = tune_keep(lambda keep: build(self.search_counts(keep), keep),
                             lambda module: module.fidelity, goal)
            if not refine:
                return best
            refined = refine_counts(self.search_counts(best.keep), best,
                                    lambda cl, n: lower_counts(self.ladder, cl, n),
                                    lambda counts: build(counts, best.keep), macs,
                                    lambda module: module.fidelity >= goal,
                                    self.parent.macs, Counter(self.clusters.values()),
                                    frozenset(self.head_clusters))
            return refined if refined is best else replace(refined, stepped=True)

        if not polish:
            return search(target)

        def refit(module: BuiltModule) -> BuiltModule:
            if not module.removed:
                return module
            return replace(measure(self.build_for(concern, module.keep, head,
                                                  compensation="sequential",
                                                  removed=module.removed)),
                           stepped=module.stepped, polished=True)

        return polish_search(search, refit, lambda module: model_stats(module.proto).macs,
                             target)
