"""Classification metrics: top-1, top-5, per-class accuracy, most confused pairs."""

from __future__ import annotations

import numpy as np


def classification_report(scores: np.ndarray, y: np.ndarray, class_names: list[str] | None = None,
                          confused: int = 5) -> dict:
    """Metrics of ``scores`` [..., K] against labels ``y`` [...] (label -1 = ignore).

    Per-timestep outputs ([N, T, K] with [N, T] labels) are flattened: each labelled step
    counts once.
    """
    k = scores.shape[-1]
    s = scores.reshape(-1, k)
    lab = np.asarray(y).reshape(-1)
    mask = lab >= 0
    s, lab = s[mask], lab[mask]
    n = int(lab.size)
    pred = s.argmax(axis=1)
    top = min(5, k)
    topk = np.argpartition(-s, top - 1, axis=1)[:, :top]
    names = class_names if class_names and len(class_names) == k else [str(i) for i in range(k)]
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (lab, pred), 1)
    per_class = {}
    for c in range(k):
        total = int(conf[c].sum())
        per_class[names[c]] = None if total == 0 else round(float(conf[c, c] / total), 4)
    off = conf.copy()
    np.fill_diagonal(off, 0)
    pairs = []
    for flat in np.argsort(-off, axis=None)[:confused]:
        t, p = divmod(int(flat), k)
        if off[t, p] == 0:
            break
        pairs.append({"true": names[t], "predicted": names[p], "count": int(off[t, p])})
    return {
        "n": n,
        "top1": round(float(np.mean(pred == lab)), 6) if n else None,
        "top5": round(float(np.mean((topk == lab[:, None]).any(axis=1))), 6) if n else None,
        "per_class": per_class,
        "confused": pairs,
    }
