"""What a decomposition is asked for: the settings and their bounds."""

from __future__ import annotations

from dataclasses import dataclass

from onnxdecomp.arguments import fraction
from onnxdecomp.decompose.criteria import CRITERIA
from onnxdecomp.errors import OnnxDecompError

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
    align: int | str = "auto"  # kept channel counts are multiples of this (align.py)
    # Embedding columns save only the next layer's input columns; on CLINC150's LSTM a
    # quarter of them cost more fidelity than a quarter of its hidden units (0.87 vs 0.95)
    # for an eighth of the MACs: kept unless asked for.
    prune_embeddings: bool = False
    # After the keep ratio's search, step clusters down one coarse aligned count at a time
    # while the fidelity holds (refine.py); with the sequential refit, the search and the
    # steps run on the parallel refit and their module is refitted after (polish.py).
    refine: bool = True
    # Each module's score mapped by a * s + b fitted on the held-out samples (calibrate.py).
    calibrate_score: bool = True
    # Bytes the profile's per-class grams may take (tracked.py); None: 40% of the memory
    # available at the start. Beyond it classes are profiled a chunk at a time.
    profile_memory: int | None = None

    def check(self) -> None:
        """One-line errors for settings out of bounds, before any work is done."""
        if self.criterion not in CRITERIA:
            raise OnnxDecompError(
                f"unknown {{criterion}} {self.criterion!r}: {', '.join(CRITERIA)}",
                options=["criterion"])
        if self.compensation not in COMPENSATIONS:
            raise OnnxDecompError(
                f"unknown {{compensation}} {self.compensation!r}: {', '.join(COMPENSATIONS)}",
                options=["compensation"])
        for name in ("fidelity", "keep", "macs"):
            fraction(getattr(self, name), name)
        if self.keep is not None and self.macs is not None:
            raise OnnxDecompError("{keep} and {macs} exclude each other: give one",
                                  options=["keep", "macs"])
        if self.align != "auto" and not (str(self.align).isdigit() and int(self.align) >= 1):
            raise OnnxDecompError(f"{{align}} takes a positive integer or auto, got "
                                  f"{self.align!r}", options=["align"])
        if not 0.0 < self.holdout < 1.0:
            raise OnnxDecompError(f"holdout fraction must be in (0, 1), got {self.holdout}")

    @property
    def goal(self) -> str:
        """What the modules are asked to meet, in words."""
        if self.macs is not None:
            return f"mean MACs <= {100 * self.macs:.1f}%"
        if self.keep is not None:
            return f"fixed keep ratio {self.keep}"
        return f"fidelity >= {self.fidelity}"
