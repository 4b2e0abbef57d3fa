"""tfobj.metrics: evaluation metrics as numpy functions: SPAIR's AP and counting, SILOT's CLEAR MOT, LAVAE's
importance-weighted likelihood bound, TUSK's adjusted Rand index and MNIST-Hard detection / classification."""
from tfobj.metrics.average_precision import (
    DEFAULT_IOU_THRESHOLDS,
    average_precision,
    average_precision_per_threshold,
    unpad,
)
from tfobj.metrics.ari import adjusted_rand_index
from tfobj.metrics.counting import count_abs_error, count_accuracy
from tfobj.metrics.keypoint_detection import classification_accuracy, detection_accuracy, match_keypoints
from tfobj.metrics.mota import clear_mot, clear_mot_many
from tfobj.metrics.nll_bound import importance_weighted_nll

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "adjusted_rand_index",
    "classification_accuracy",
    "detection_accuracy",
    "match_keypoints",
    "importance_weighted_nll",
    "average_precision",
    "average_precision_per_threshold",
    "unpad",
    "count_abs_error",
    "count_accuracy",
    "clear_mot",
    "clear_mot_many",
]
