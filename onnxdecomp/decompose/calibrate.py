"""Score calibration: an affine map that puts a module's score back on its parent's scale.

A pruned and refitted module's log-odds s' drift from the parent's s as a whole, not only
sample by sample: the refit reproduces the consumers' outputs on calibration samples
weighted half on the module's class, and the head's s = z_k - log sum_{j != k} e^{z_j} is
not linear in what it reproduces. Measured at a fixed keep ratio (align 1, the parallel
refit), the held-out least-squares fit s ~ a s' + b gave a = 0.99..1.08 and b = -0.70..+0.25
on ResNet-20's ten modules. Argmax over modules compares scores of different modules, so a
shift of one module's scores flips decisions that the pruning itself did not.

The fit uses the held-out samples the fidelity is measured on (``Decomposer.measure``): two
parameters from hundreds of samples, an optimism of about 2 / n of the error. Samples whose
parent log-odds lie beyond +-FIDELITY_CLIP do not count (the fidelity clips them too), and
the map is kept only when it raises the fidelity.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnx_ir as ir

from onnxdecomp.decompose.fidelity import FIDELITY_CLIP, logodds_fidelity
from onnxdecomp.decompose.head import SCORE
from onnxdecomp.irutil import new_initializer
from onnxdecomp.passes.finalize import finalize

MIN_SAMPLES = 10  # fewer unsaturated held-out scores than this: no map


def fit_score_map(module_score: np.ndarray, parent_logodds: np.ndarray,
                  k: int) -> tuple[float, float]:
    """(a, b) of the least-squares fit s_k ~ a s' + b over the held-out samples whose parent
    log-odds are not saturated, or (1, 0) when that does not raise the fidelity (too few
    samples, a constant or an inverted module score)."""
    m = module_score.reshape(-1).astype(np.float64)
    s = parent_logodds[:, k].astype(np.float64)
    sel = np.abs(s) < FIDELITY_CLIP
    if sel.sum() < MIN_SAMPLES or np.ptp(m[sel]) == 0.0:
        return 1.0, 0.0
    a, b = np.polyfit(m[sel], s[sel], 1)
    if not np.isfinite([a, b]).all() or a <= 0.0:
        return 1.0, 0.0
    calibrated = a * m + b
    if logodds_fidelity(calibrated, parent_logodds, k) <= logodds_fidelity(m, parent_logodds, k):
        return 1.0, 0.0
    return float(a), float(b)


def fit_score_maps(scores: np.ndarray, parent_logodds: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per column j of ``scores`` [n, C] the map (a_j, b_j) of ``fit_score_map`` against
    ``parent_logodds[:, j]``: a union's scores, one log-odds per chosen class. For a pair,
    s_1 = -s_0 on both sides, so a_1 = a_0 and b_1 = -b_0: its decision's threshold moves."""
    maps = [fit_score_map(scores[:, j], parent_logodds, j) for j in range(scores.shape[1])]
    return np.array([m[0] for m in maps]), np.array([m[1] for m in maps])


def is_identity(scale, shift) -> bool:
    return bool(np.all(np.asarray(scale) == 1.0) and np.all(np.asarray(shift) == 0.0))


class CalibrateScorePass(ir.passes.InPlacePass):
    """output <- a * output + b on the graph output named ``output`` (a module's ``score``,
    a union's ``scores``); a and b are numbers or one per entry of the last axis.

    Requires: a graph output named ``output`` of a float type whose last axis has as many
    entries as ``scale`` and ``shift`` (when they are vectors).
    Ensures: that output, same name, shape and dtype, is a * (what it was) + b; nothing
    else changes. a = 1 and b = 0 leave the model as it is.
    """

    def __init__(self, scale, shift, output: str = SCORE) -> None:
        super().__init__()
        self.scale, self.shift, self.output = scale, shift, output

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if is_identity(self.scale, self.shift):
            return ir.passes.PassResult(model, False)
        graph = model.graph
        (i, out), = [(i, v) for i, v in enumerate(graph.outputs) if v.name == self.output]
        dtype = out.dtype.numpy()
        a = new_initializer(graph, "onnxdecomp_score_scale", np.asarray(self.scale, dtype))
        b = new_initializer(graph, "onnxdecomp_score_shift", np.asarray(self.shift, dtype))
        out.name = f"{self.output}_uncalibrated"
        mul = ir.node("Mul", [out, a], name="onnxdecomp_score_scale")
        add = ir.node("Add", [mul.outputs[0], b], name="onnxdecomp_score_shift")
        graph.append(mul)
        graph.append(add)
        new = add.outputs[0]
        new.name, new.dtype, new.shape = self.output, out.dtype, out.shape
        graph.outputs[i] = new
        return ir.passes.PassResult(model, True)


def calibrate(module, score: np.ndarray, fit: Callable[[np.ndarray], tuple],
              output: str = SCORE) -> np.ndarray:
    """Map a built module's (or union's) ``output`` by ``fit(score)``, ``score`` being its
    held-out scores, once: not when it is mapped already (``module.score_map``) nor when
    nothing was removed (it is the parent, exactly). Returns the held-out scores after."""
    if module.score_map is not None or not module.removed:
        return score
    a, b = fit(score)
    module.proto = calibrated(module.proto, a, b, output)
    module.score_map = (a, b)
    return a * score + b


def calibrated(proto: onnx.ModelProto, scale, shift, output: str = SCORE) -> onnx.ModelProto:
    """``proto`` with its ``output`` mapped (``CalibrateScorePass``), finalised unchecked."""
    if is_identity(scale, shift):
        return proto
    model = ir.serde.deserialize_model(proto)
    CalibrateScorePass(scale, shift, output)(model)
    return finalize(model, check=False)
