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


class CalibrateScorePass(ir.passes.InPlacePass):
    """score <- a * score + b on a module's ``score`` output.

    Requires: a graph output named ``score`` (``AppendLogOddsPass``) of a float type.
    Ensures: the output named ``score``, same shape and dtype, is a * (what it was) + b;
    nothing else changes. (1, 0) leaves the model as it is.
    """

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if self.scale == 1.0 and self.shift == 0.0:
            return ir.passes.PassResult(model, False)
        graph = model.graph
        (i, out), = [(i, v) for i, v in enumerate(graph.outputs) if v.name == SCORE]
        dtype = out.dtype.numpy()
        a = new_initializer(graph, "onnxdecomp_score_scale", np.array(self.scale, dtype))
        b = new_initializer(graph, "onnxdecomp_score_shift", np.array(self.shift, dtype))
        out.name = f"{SCORE}_uncalibrated"
        mul = ir.node("Mul", [out, a], name="onnxdecomp_score_scale")
        add = ir.node("Add", [mul.outputs[0], b], name="onnxdecomp_score_shift")
        graph.append(mul)
        graph.append(add)
        new = add.outputs[0]
        new.name, new.dtype, new.shape = SCORE, out.dtype, out.shape
        graph.outputs[i] = new
        return ir.passes.PassResult(model, True)


def calibrated(proto: onnx.ModelProto, scale: float, shift: float) -> onnx.ModelProto:
    """``proto`` with its score mapped (``CalibrateScorePass``), finalised unchecked."""
    if scale == 1.0 and shift == 0.0:
        return proto
    model = ir.serde.deserialize_model(proto)
    CalibrateScorePass(scale, shift)(model)
    return finalize(model, check=False)
