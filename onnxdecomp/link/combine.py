"""Score combiners: scores of modules from several models made comparable, no network retrained.

Each combiner maps the linked scores S [N, K] (module or union log-odds side by side, column
j from parent group g(j)) to the final scores, is fitted on labelled calibration samples,
and is written into the graph as ONNX ops. Measured on an MNIST and a Fashion-MNIST CNN
(DESIGN.md): raw argmax 49.9%, min-max 81.0%, temperature + bias 86.8%, logistic 92.4%,
router 94.5%, against 94.7% for the parents.

- ``argmax``: S as it is (log-odds are on one scale only within one parent).
- ``minmax``: (S - lo) / (hi - lo) per column over the calibration samples (CNNSplitter).
- ``temperature``: a_j S_j + b_j per column, a and b minimising the cross-entropy of
  softmax over the columns (Platt / temperature scaling, one pair per module).
- ``logistic``: multinomial logistic regression over all columns, S W + c.
- ``router``: which parent an input belongs to, P(g | S) by multinomial logistic regression
  on S, times what that parent's own scores say, q_j = sigmoid(S_j) / sum_{i in g(j)}
  sigmoid(S_i): score_j = log P(g(j) | S) + log q_j. One parent's classes never compete
  with another's on raw scores; with one group it is ``argmax``.
- ``input_router``: the router reading the input as well, P(g | x, S) by multinomial
  logistic regression on [standardised flattened x, S] (float inputs of at most
  ``MAX_INPUT_FEATURES`` features). Scores of networks trained on one data set say little
  about samples of another: on MNIST (CNTK's model) and Fashion-MNIST (ResNet-8) the score
  router sent 1.3% of the test samples to the wrong parent, the input router 0.24%.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from onnxdecomp.errors import OnnxDecompError
from onnxdecomp.irutil import axes_node, new_initializer

COMBINERS = ("auto", "router", "input_router", "logistic", "temperature", "minmax", "argmax")
ROUTERS = ("router", "input_router")  # for two parents or more
CLIP = 30.0  # |log-odds| beyond this saturate every sigmoid and softmax anyway
MAX_INPUT_FEATURES = 32768  # a 3 x 96 x 96 image; larger inputs are routed on scores only
_PREFERENCE = ("router", "input_router", "temperature", "logistic", "minmax",
               "argmax")  # order of ties


def _log_sigmoid(s: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -s)


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


@dataclass
class Combiner:
    """A fitted combiner: ``name`` and its parameters, ``apply`` in numpy, ``emit`` in ONNX."""

    name: str
    groups: np.ndarray  # [K] parent group of each column
    params: dict[str, np.ndarray] = field(default_factory=dict)

    # ---- numpy ----------------------------------------------------------------------
    def apply(self, s: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Combined scores of ``s`` [N, K] (``x``: the samples, for ``input_router``)."""
        s = np.clip(s.astype(np.float64), -CLIP, CLIP)
        p = self.params
        if self.name == "minmax":
            return (s - p["lo"]) / p["span"]
        if self.name == "temperature":
            return s * p["a"] + p["b"]
        if self.name == "logistic":
            return s @ p["w"] + p["c"]
        if self.name in ROUTERS:
            features = s if self.name == "router" else _route_features(s, x, p)
            route = features @ p["w"] + p["c"]  # [N, G] router logits
            log_route = route - _lse(route, 1)[:, None]
            return log_route[:, self.groups] + self._within(s)
        return s

    def _within(self, s: np.ndarray) -> np.ndarray:
        ls = _log_sigmoid(s)
        norm = np.stack([_lse(ls[:, self.groups == g], 1)
                         for g in range(self.groups.max() + 1)], axis=1)
        return ls - norm[:, self.groups]

    # ---- ONNX -----------------------------------------------------------------------
    def emit(self, graph: ir.Graph, s: ir.Value, opset: int,
             x_in: ir.Value | None = None) -> ir.Value:
        """Append the combiner's ops after ``s`` [N, K] (``x_in``: the graph input, which
        ``input_router`` reads); returns the combined scores."""
        dtype = s.dtype.numpy() if s.dtype is not None else np.float32
        nodes: list[ir.Node] = []

        def const(name: str, a) -> ir.Value:
            return new_initializer(graph, f"onnxdecomp_{self.name}_{name}",
                                   np.asarray(a, dtype=dtype))

        def op(kind: str, *inputs, **attrs) -> ir.Value:
            node = ir.node(kind, list(inputs), attributes=attrs,
                           name=f"onnxdecomp_{self.name}_{len(nodes)}")
            nodes.append(node)
            return node.outputs[0]

        x = s
        if self.name != "argmax":
            x = op("Clip", s, const("lo_clip", -CLIP), const("hi_clip", CLIP)) if opset >= 11 \
                else op("Clip", s, min=-CLIP, max=CLIP)
        p = self.params
        if self.name == "minmax":
            x = op("Div", op("Sub", x, const("lo", p["lo"])), const("span", p["span"]))
        elif self.name == "temperature":
            x = op("Add", op("Mul", x, const("a", p["a"])), const("b", p["b"]))
        elif self.name == "logistic":
            x = op("Gemm", x, const("w", p["w"]), const("c", p["c"]))
        elif self.name in ROUTERS:
            features = x
            if self.name == "input_router":
                flat = op("Flatten", x_in, axis=1)
                if x_in.dtype is not None and x_in.dtype.numpy() != dtype:
                    flat = op("Cast", flat, to=ir.DataType.from_numpy(dtype))
                flat = op("Div", op("Sub", flat, const("mean", p["mean"])),
                          const("std", p["std"]))
                features = op("Concat", flat, x, axis=1)
            route = op("LogSoftmax", op("Gemm", features, const("w", p["w"]),
                                        const("c", p["c"])), axis=1)
            groups = new_initializer(graph, "onnxdecomp_router_groups",
                                     self.groups.astype(np.int64))
            per_column = op("Gather", route, groups, axis=1)
            log_sig = op("Neg", op("Softplus", op("Neg", x)))  # log sigmoid(x)
            norms = []
            for g in range(int(self.groups.max()) + 1):
                cols = new_initializer(graph, f"onnxdecomp_router_cols{g}",
                                       np.flatnonzero(self.groups == g).astype(np.int64))
                part = op("Gather", log_sig, cols, axis=1)
                red = axes_node(graph, "ReduceLogSumExp", part, [1], opset,
                                f"onnxdecomp_router_norm{g}", keepdims=1)
                nodes.append(red)
                norms.append(red.outputs[0])
            norm = op("Concat", *norms, axis=1) if len(norms) > 1 else norms[0]
            within = op("Sub", log_sig, op("Gather", norm, groups, axis=1))
            x = op("Add", per_column, within)
        for node in nodes:
            graph.append(node)
        return x


# ---- fitting ------------------------------------------------------------------------


def _softmax_xent(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(z) against y, and its gradient in z."""
    p = np.exp(z - _lse(z, 1)[:, None])
    loss = float(np.mean(_lse(z, 1) - z[np.arange(len(y)), y]))
    p[np.arange(len(y)), y] -= 1.0
    return loss, p / len(y)


def _fit_temperature(s: np.ndarray, y: np.ndarray) -> dict:
    from scipy.optimize import minimize

    k = s.shape[1]

    def f(theta: np.ndarray):
        a, b = theta[:k], theta[k:]
        loss, g = _softmax_xent(s * a + b, y)
        reg = 1e-4 * float(np.sum((a - 1) ** 2))
        return loss + reg, np.concatenate([(g * s).sum(0) + 2e-4 * (a - 1), g.sum(0)])

    theta = minimize(f, np.concatenate([np.ones(k), np.zeros(k)]), jac=True,
                     method="L-BFGS-B").x
    return {"a": theta[:k], "b": theta[k:]}


def _fit_logistic(s: np.ndarray, target: np.ndarray, classes: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=2000)
    lr.fit(s, target)
    w, c = np.zeros((s.shape[1], classes)), np.full(classes, -1e4)
    w[:, lr.classes_] = lr.coef_.T if len(lr.classes_) > 2 else np.stack(
        [-lr.coef_[0] / 2, lr.coef_[0] / 2], axis=1)
    c[lr.classes_] = lr.intercept_ if len(lr.classes_) > 2 else [-lr.intercept_[0] / 2,
                                                                  lr.intercept_[0] / 2]
    return {"w": w, "c": c}


def _route_features(s: np.ndarray, x: np.ndarray, p: dict) -> np.ndarray:
    """[standardised flattened x, clipped s]: what ``input_router`` reads."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.concatenate([(flat - p["mean"]) / p["std"], s], axis=1)


def routes_input(x: np.ndarray | None) -> bool:
    """Whether ``input_router`` can read samples ``x``: float, not too many features."""
    return x is not None and np.issubdtype(x.dtype, np.floating) and \
        int(np.prod(x.shape[1:])) <= MAX_INPUT_FEATURES


def fit(name: str, s: np.ndarray, y: np.ndarray, groups: np.ndarray,
        x: np.ndarray | None = None) -> Combiner:
    """Combiner ``name`` fitted on scores ``s`` [n, K] and column labels ``y`` [n]
    (``x``: the samples, for ``input_router``)."""
    s = np.clip(s.astype(np.float64), -CLIP, CLIP)
    k = s.shape[1]
    if name == "minmax":
        lo, hi = s.min(axis=0), s.max(axis=0)
        return Combiner(name, groups, {"lo": lo, "span": np.maximum(hi - lo, 1e-6)})
    if name == "temperature":
        return Combiner(name, groups, _fit_temperature(s, y))
    if name == "logistic":
        return Combiner(name, groups, _fit_logistic(s, y, k))
    if name == "router":
        n_groups = int(groups.max()) + 1
        return Combiner(name, groups, _fit_logistic(s, groups[y], n_groups))
    if name == "input_router":
        flat = x.reshape(len(x), -1).astype(np.float64)
        p = {"mean": flat.mean(axis=0), "std": flat.std(axis=0) + 1e-3 * (
            float(flat.std()) + 1e-12)}  # a constant pixel must not divide by zero
        p |= _fit_logistic(_route_features(s, x, p), groups[y], int(groups.max()) + 1)
        return Combiner(name, groups, p)
    return Combiner("argmax", groups)


@dataclass
class Choice:
    """The combiner chosen, every candidate's held-out accuracy on calibration data, and on
    how many held-out samples."""

    combiner: Combiner
    held_out: dict[str, float]
    samples: int = 0

    @property
    def notes(self) -> list[str]:
        return few_held_out("the combiner was chosen", self.samples)


# Below this many held-out samples a combiner's choice, or a union's fidelity, is a coin
# toss (replace with --limit 5: 2 held out, minmax chosen at 100%, 65% on the test set).
MIN_HELD_OUT = 30


def few_held_out(what: str, n: int) -> list[str]:
    """A note when ``what`` rests on fewer than ``MIN_HELD_OUT`` held-out samples."""
    if n >= MIN_HELD_OUT:
        return []
    return [f"{what} on {n} held-out calibration sample{'s' if n != 1 else ''}: too few to "
            "tell; give more calibration data (--limit; 30% of it is held out)"]


def choose(name: str, s: np.ndarray, y: np.ndarray, groups: np.ndarray,
           seed: int = 0, holdout: float = 0.3, x: np.ndarray | None = None,
           columns: list[str] | None = None) -> Choice:
    """Fit ``name`` on all samples, or (``auto``) pick the candidate with the best accuracy
    on a held-out part, then refit it on all. Every candidate's held-out accuracy is
    reported either way (the routers only when there are two groups or more, the input
    router only for samples ``x`` it can read). Every column needs labelled samples
    (``columns`` names them in the error): a combiner never learns to choose one without."""
    from sklearn.model_selection import train_test_split

    keep = y >= 0
    s, y = s[keep], y[keep]
    missing = np.flatnonzero(np.bincount(y, minlength=s.shape[1]) == 0)
    if len(missing):
        names = [columns[i] if columns else str(i) for i in missing]
        raise OnnxDecompError(
            f"no labelled calibration sample of column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}: a combiner fitted "
            "without them would never choose them; give data with every linked class (or "
            "none: scores are then combined raw)", options=["calibrate"])
    x = x[keep] if x is not None else None
    if name == "input_router" and not routes_input(x):
        raise OnnxDecompError(
            "the input router reads float samples of at most "
            f"{MAX_INPUT_FEATURES} features; choose another {{combiner}}", options=["combiner"])
    candidates = [c for c in _PREFERENCE if (c not in ROUTERS or groups.max() > 0)
                  and (c != "input_router" or routes_input(x))]
    counts = np.bincount(y, minlength=s.shape[1])
    strat = y if counts[counts > 0].min() >= 2 else None
    tr, te = train_test_split(np.arange(len(y)), test_size=holdout, random_state=seed,
                              stratify=strat)
    held = {}
    xs = x if x is not None else np.zeros((len(y), 0), np.float32)
    for c in candidates:
        pred = fit(c, s[tr], y[tr], groups, xs[tr]).apply(s[te], xs[te]).argmax(axis=1)
        held[c] = round(float(np.mean(pred == y[te])), 4)
    chosen = max(candidates, key=lambda c: held[c]) if name == "auto" else name
    return Choice(fit(chosen, s, y, groups, x), held, len(te))
