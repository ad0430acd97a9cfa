"""Model statistics (params, MACs per layer) and classification metrics."""

from .metrics import classification_report
from .model import LayerStat, ModelStats, TensorInfo, model_stats
from .report import format_stats

__all__ = [
    "LayerStat",
    "ModelStats",
    "TensorInfo",
    "classification_report",
    "format_stats",
    "model_stats",
]
