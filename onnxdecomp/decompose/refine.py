"""Between two aligned sizes: per-cluster steps after the keep ratio's search.

One keep ratio moves every cluster of coupled channels at once, and aligned counts make
those moves coarse: on AVX-512 (``--align auto`` = 16) ResNet-20's 16/32/64-channel groups
keep 25% of the MACs at keep 0.5 and 86.6% at keep 0.55, nothing between, so a module or a
union that missed the target at 0.5 kept 86.6% or the whole network. After ``tune_keep``
finds the smallest passing ratio, every cluster is tried alone at its next smaller aligned
count, the largest MACs saving first, and stays there when the fidelity still meets the
target; rounds repeat while a step is taken. Every count tried is one the alignment allows,
so the result runs as its MACs say. A step of at most ``FINE`` of a cluster's units is
one the keep grid (steps of 0.05) already resolves: it is not tried, so under ``--align 1``
only groups of fewer than 10 units take steps, and recurrent units in multiples of 4 in
layers of 40 or more tune as the keep ratio alone does. A move saving under ``MIN_SAVING``
of the parent's MACs is not tried either: at 1% MobileNetV2's expanded layers (many
clusters, each a small share) stopped at 70.2% of the MACs; at 0.3% its modules take 69.5%
at the same loss (0.27 pp against 0.28, Fashion-MNIST, default settings), 1.1 s more for the
ten (0.1% gives the same modules); ResNet-8's, ResNet-20's and the Keras CNN's steps all
save more and their modules are the same.

Requires: ``build(counts)`` returns a measured module for per-cluster kept counts;
``macs(counts)`` its MACs without refitting (cheap). Ensures: the returned module meets
the target if the passing one did, and has no more MACs than it.
"""

from __future__ import annotations

from collections.abc import Callable

MIN_SAVING = 0.003  # a move saving less than this share of the parent's MACs is not tried
FINE = 0.1  # a move dropping at most this share of a cluster's units is not tried


def lower_counts(ladder: list[dict[str, int]], cluster: str, count: int) -> int | None:
    """The largest count of ``cluster`` below ``count`` that one of the ``ladder``'s per-cluster
    counts (those of every ratio of the keep grid, aligned) holds, or None."""
    return max((c[cluster] for c in ladder if c[cluster] < count), default=None)


def refine_counts(passing: dict[str, int], best, lower: Callable[[str, int], int | None],
                  build: Callable[[dict[str, int]], object],
                  macs: Callable[[dict[str, int]], float],
                  meets: Callable[[object], bool], parent_macs: float,
                  sizes: dict[str, int], held: frozenset[str] = frozenset()):
    """The module ``best`` (built at ``passing``) with clusters stepped down one aligned
    count at a time while the target holds (see the module docstring): each round tries
    every cluster that can still go one coarse step lower (more than ``FINE`` of its
    ``sizes`` units, or any step for the ``held`` clusters, which the keep grid did not
    move), the largest MACs saving first."""
    current, tried = dict(passing), set()
    while True:
        steps = {}
        for cl, n in current.items():
            m = lower(cl, n)
            if m is not None and (n - m > FINE * sizes[cl] or cl in held) and \
                    (cl, m) not in tried:
                steps[cl] = m
        if not steps:
            return best
        base = macs(current)
        saving = {cl: (base - macs({**current, cl: m}), m) for cl, m in steps.items()}
        moved = False
        for cl in sorted(saving, key=lambda c: -saving[c][0]):
            gain, m = saving[cl]
            if gain < MIN_SAVING * parent_macs:
                break
            trial = {**current, cl: m}
            tried.add((cl, m))
            module = build(trial)
            if meets(module):
                current, best, moved = trial, module, True
        if not moved:
            return best
