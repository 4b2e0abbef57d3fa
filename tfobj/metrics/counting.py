"""Object-count metrics reported by SPAIR and SILOT.

The original code (Crawford & Pineau's `auto_yolo` / `silot` repositories) reports
"Count Absolute Error" = mean |pred - true| and "count 0-1 error" = mean(|pred - true| > 0.5),
i.e. the fraction of images whose count is wrong. `count_accuracy` is 1 - that 0-1 error: for
integer counts, the fraction of images with exactly the right count.
"""
from __future__ import annotations

import numpy as np


def count_accuracy(pred_counts, true_counts) -> float:
    """Fraction of images whose predicted count is right: mean(|pred - true| <= 0.5).

    Equals 1 - the original "count 0-1 error" mean(|pred - true| > 0.5); for integer counts this is
    the fraction with `pred == true`.

    Args:
        pred_counts: Predicted numbers of objects, any shape `[...]` (e.g. `[N]` images or
            `[B, T]` video frames), non-negative.
        true_counts: True numbers of objects, the same shape.

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: if the shapes differ, the arrays are empty, or hold NaN/inf/negative values.
    """
    pred, true = _check_counts(pred_counts, true_counts)
    return float(np.mean(np.abs(pred - true) <= 0.5))


def count_abs_error(pred_counts, true_counts) -> float:
    """"Count Absolute Error": mean |pred - true|, in objects per image.

    Args:
        pred_counts: Predicted numbers of objects, any shape `[...]`, non-negative.
        true_counts: True numbers of objects, the same shape.

    Returns:
        Mean absolute count error (>= 0).

    Raises:
        ValueError: if the shapes differ, the arrays are empty, or hold NaN/inf/negative values.
    """
    pred, true = _check_counts(pred_counts, true_counts)
    return float(np.mean(np.abs(pred - true)))


def _check_counts(pred_counts, true_counts) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_counts, dtype=np.float64)
    true = np.asarray(true_counts, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(
            f"pred_counts and true_counts must have the same shape; got {pred.shape} and {true.shape}"
        )
    if pred.size == 0:
        raise ValueError(f"pred_counts and true_counts must not be empty; got shape {pred.shape}")
    for name, value in (("pred_counts", pred), ("true_counts", true)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite; got NaN or inf")
        if np.any(value < 0):
            raise ValueError(f"{name} must be non-negative counts; got minimum {value.min()}")
    return pred, true
