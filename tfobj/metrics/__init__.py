"""tfobj.metrics: evaluation metrics of SPAIR (AP, counting) and SILOT (CLEAR MOT), as numpy functions."""
from tfobj.metrics.average_precision import (
    DEFAULT_IOU_THRESHOLDS,
    average_precision,
    average_precision_per_threshold,
    unpad,
)
from tfobj.metrics.counting import count_abs_error, count_accuracy
from tfobj.metrics.mota import clear_mot, clear_mot_many

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "average_precision",
    "average_precision_per_threshold",
    "unpad",
    "count_abs_error",
    "count_accuracy",
    "clear_mot",
    "clear_mot_many",
]
