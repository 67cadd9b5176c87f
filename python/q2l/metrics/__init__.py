"""Multi-label metrics: mAP under each named definition, threshold and top-k metrics."""

from .accumulator import MultilabelMetrics
from .functional import (
    DEFINITIONS,
    average_precision,
    best_f1_thresholds,
    mean_average_precision,
    threshold_metrics,
    topk_metrics,
)

__all__ = [
    "DEFINITIONS",
    "MultilabelMetrics",
    "average_precision",
    "best_f1_thresholds",
    "mean_average_precision",
    "threshold_metrics",
    "topk_metrics",
]
