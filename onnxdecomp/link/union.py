"""Union linking: one pruned network for a subset of a parent's classes.

The subset is profiled as one concern (``criteria.subset_concern``): its classes' samples
weigh equally in the ranking and the least-squares refit, their logits are the output, and
the head keeps only their rows (``SelectClassesPass``). A subset is an easier task than each
of its classes against all others, so the union is no bigger than the subset needs: the keep
ratio is tuned, as for modules, to the smallest whose fidelity on held-out calibration
samples of the subset meets the target, the fidelity being the worst over the subset's
classes of the share of the parent's subset log-odds variance reproduced: every class of a
union is held to the target its own module is held to.

The mean over the classes was the rule before, and let a union of many classes hide one
class's drift: on ResNet-20 (CIFAR-10) the union of all 10 classes met a mean of 0.99 at
keep 0.8 (mean 0.979 on another draw of calibration data, its worst class 0.961) and lost
0.56 pp; with the worst class held to 0.99 it kept 0.9 (95.5% of the MACs) and lost none
(-0.06 pp). Since a one-vector group keeps half vectors (``decompose.align``) that union is
the parent itself (benchmarks/README.md, sub-task reuse).

A union of two classes takes the per-group aligned steps that modules take
(``decompose.refine``; not when the decomposition was run with ``--no-refine``); larger
unions do not, unless asked (``UnionBuilder(dec, refine=True)``, ``link --refine``). A module
and a pair are each scored by one log-odds, whose fidelity is the decision's; a union of
three or more classes is judged by the decisions among all of them, which the worst class's
fidelity bounds loosely: refined, ResNet-20's unions of 3 to 9 classes (CIFAR-10) lost
0.22 to 0.61 pp on average (unrefined <= 0.14 pp; the gate is 0.5) for 6 to 11 points fewer
MACs, at fidelity >= 0.99 every one; its pairs went from 88.3% to 74.8% of the MACs at
0.35 pp (0.19), ResNet-8's from 78.2% to 47.3% at 0.17 pp (0.01), LeNet-5's from 39.2% to
31.9% at 0.13 pp (0.12).

A pair that takes the steps is also refitted sequentially once the search is done, and the
search goes on as far as the sequential refit keeps the target (``decompose.polish``): one
union is built per link, so its few seconds more are worth it (ResNet-8 pairs: 2.5 -> 5.5 s
each). ResNet-8's pairs went from 47.3% to 39.7% of the MACs at 0.17 pp (0.17), LeNet-5's
from 31.9% to 28.8% at 0.11 pp (0.13). With ``--compensation sequential`` every union is.
"""

from __future__ import annotations

import numpy as np

from onnxdecomp.decompose import BuiltModule, Decomposer
from onnxdecomp.decompose.calibrate import calibrate, fit_score_maps
from onnxdecomp.decompose.criteria import subset_concern
from onnxdecomp.decompose.fidelity import logodds_fidelity
from onnxdecomp.decompose.head import logodds_from_logits
from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.link.select_classes import SCORES, SelectClassesPass

# A pair is refitted sequentially by default only while the refit's activation caches stay
# under this (ResNet-20 on 32x32 images, 700 samples: 1.05 GB; the process peaked at 1.9 GB).
POLISH_BYTES = 2 * 1024**3


class UnionBuilder:
    """Sub-task models over subsets of one parent's classes, from one profile of it."""

    def __init__(self, dec: Decomposer, refine: bool | None = None) -> None:
        self.dec = dec
        self.refine = refine  # None: pairs only, as the decomposition's settings allow

    def refines(self, classes: tuple[int, ...]) -> bool:
        """Whether the union of ``classes`` takes the per-group aligned steps."""
        if self.refine is not None:
            return self.refine
        return len(classes) == 2 and self.dec.settings.refine

    def polishes(self, classes: tuple[int, ...]) -> bool:
        """Whether the union is refitted sequentially after the search (``polish``): every
        union under ``--compensation sequential``; with the least-squares refit, a pair that
        takes the steps (one union is built per link, so its seconds are worth it) when the
        refit's caches fit ``POLISH_BYTES``. Never a tagger's: the sequential refit weighs
        whole samples by their class."""
        comp = self.dec.settings.compensation
        if self.dec.parent.per_step:
            return False
        if comp == "sequential":
            return True
        if comp != "lstsq" or len(classes) != 2 or not self.refines(classes):
            return False
        held = self.dec.sequential_bytes()  # by default only where its caches are small
        return held is not None and held <= POLISH_BYTES

    def held_out(self, classes: tuple[int, ...]) -> np.ndarray:
        """Held-out samples of the subset: by label where labels are known, else by the
        parent's decision."""
        dec = self.dec
        labels = dec.y_hold
        if labels is not None and dec.hold_steps is not None:  # a tagger: its labelled steps
            labels = labels[dec.hold_steps]  # (the rows of hold_logits)
        owner = labels if labels is not None else dec.hold_logits.argmax(axis=1)
        mask = np.isin(owner, classes)
        if not mask.any():
            raise OnnxDecompError(
                f"no held-out calibration sample of classes {list(classes)}: give more "
                "calibration data")
        return mask

    def build(self, classes: tuple[int, ...], keep: float, check: bool = False) -> BuiltModule:
        dec = self.dec
        head = SelectClassesPass(list(classes), dec.parent.num_classes)
        return dec.build_for(subset_concern(dec.profile, classes), keep, head, check=check)

    def measure(self, module: BuiltModule) -> BuiltModule:
        """Set the union's fidelity and decision agreement with the parent restricted to the
        subset, on the subset's held-out samples; an uncalibrated union's scores are mapped
        first, one map per class (``calibrate.fit_score_maps``)."""
        dec, classes = self.dec, list(module.classes)
        mask = self.held_out(module.classes)
        score = (dec.hold_score(module.proto)[mask] if dec.hold_steps is not None
                 else dec.hold_score(module.proto, mask))
        parent = logodds_from_logits(dec.hold_logits[mask][:, classes])
        if dec.settings.calibrate_score:
            score = calibrate(module, score, lambda s: fit_score_maps(s, parent), SCORES)
        module.fidelity = float(np.min([logodds_fidelity(score[:, j], parent, j)
                                        for j in range(len(classes))]))
        module.agreement = float(np.mean(score.argmax(axis=1) == parent.argmax(axis=1)))
        return module

    def tune(self, classes: tuple[int, ...], fidelity: float) -> BuiltModule:
        """The smallest union meeting ``fidelity``, measured; finalised but not yet checked."""
        self.held_out(classes)  # fail before any build when the subset has no samples
        dec = self.dec
        head = SelectClassesPass(list(classes), dec.parent.num_classes)
        return dec.tune_for(subset_concern(dec.profile, classes), head, self.measure, fidelity,
                            refine=self.refines(classes), polish=self.polishes(classes))
