"""How a consumer makes up for the input channels its module removed.

``lstsq`` (default): W' = argmin E||W x~ - W' x~_S||^2 = (G_SS + lambda I)^-1 G_S: W^T, the
kept columns re-solved from the profiled Gram matrix to reproduce the parent's outputs
(He et al. 2017; ThiNet), the bias column included. ``mean``: removed inputs replaced by
their mean, folded into the bias. ``none``: plain slicing. ``sequential`` uses ``lstsq`` for
what it has not solved yet (see :mod:`onnxdecomp.decompose.sequential`).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from onnxdecomp.channels import plain_slice
from onnxdecomp.decompose.profile import Profile


def make_refit(prof: Profile, weights: np.ndarray, mode: str, ridge: float):
    """``refit(node, w, rows, key)`` for the prune pass: consumer weights ``w``
    [out, columns + 1] re-solved for the kept columns ``rows``, class k and the rest weighted
    by ``weights``; ``key`` names the consumer when the node is not enough (``Consumer.key``:
    a recurrent op's state readers)."""
    if mode == "none":
        return plain_slice

    def refit(node: ir.Node, w: np.ndarray, rows: np.ndarray,
              key: str | None = None) -> np.ndarray:
        if len(rows) == w.shape[1]:
            return w  # nothing removed from this input: the parent's weights are exact
        gram = prof.gram(key or node.name, weights)
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
