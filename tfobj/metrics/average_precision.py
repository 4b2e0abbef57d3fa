"""Single-class average precision (AP) for object detection, as reported by SPAIR.

Implements the AP of Crawford & Pineau, "Spatially Invariant Unsupervised Object Detection with
Convolutional Neural Networks" (AAAI 2019), whose code is `mAP` / `AP` in the original
`auto_yolo/models/core.py`:

* Predictions of all images are pooled and sorted by confidence, descending, with a stable sort
  (equal confidences keep the image order, then the order in which the image's predictions were
  given).
* Matching is per image, in that order: a prediction takes the not-yet-matched ground-truth (GT)
  box of its image with the highest IoU (the first such GT on ties); it is a true positive iff that
  IoU is strictly greater than the threshold `t`, and then the GT is marked matched; otherwise it
  is a false positive.
* Precision is TP / (TP + FP) cumulatively along the sorted list, recall is TP / (number of GT
  boxes over all images). AP_t is the 11-point interpolated AP: the mean over recall levels
  r in {0, 0.1, ..., 1} of the maximum precision over points with recall >= r (0 if none).
* The reported AP is the mean of AP_t over the IoU thresholds (default 0.1, 0.2, ..., 0.9).

Recall levels are compared exactly (`10 * TP >= k * num_gt`), so a recall of exactly 7/10 reaches
level 0.7. (`np.linspace(0, 1, 11)[7]` is 0.7000000000000001 > 7/10, so a float comparison against
linspace values would miss it; the original compared in float32 under numpy-1 casting rules.)

Two quirks of the original code are available as options, off by default:

* `matching="aaai2019"`: within an image the original stopped matching as soon as all of the
  image's GTs were matched, so the image's remaining (lower-confidence) predictions were counted
  neither as TP nor as FP. Images without any GT still contribute all their predictions as FPs.
* `batch_size=32`: the original computed AP per evaluation batch of 32 consecutive images and
  averaged the batch values weighted by the number of images in each batch.

Edge cases (the original returned NaN for a batch without any prediction):

* No GT box in the evaluated set (or batch): AP = 1.0 if there is no prediction either, else 0.0.
* GT boxes but no predictions: AP = 0.0.

Boxes are normalised `(y_min, x_min, y_max, x_max)` as in `tf.image`. IoU of normalised boxes equals
the IoU of the same boxes in pixels, also for non-square images (the area scaling cancels).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfobj.ops.boxes import check_boxes, iou_matrix

DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(1, 10) / 10, 1))
"""IoU thresholds SPAIR averages AP over: (0.1, 0.2, ..., 0.9)."""

NUM_RECALL_LEVELS = 11
"""Recall levels 0, 0.1, ..., 1.0 of the 11-point interpolated AP."""

MATCHING_MODES = ("corrected", "aaai2019")


def unpad(padded, counts, name: str = "padded") -> list[np.ndarray]:
    """Splits a padded batch into a list of per-item arrays.

    Datasets store a variable number of objects per image as a padded array plus a count, e.g.
    boxes `[N, K, 4]` and `num_objects [N]`; this returns `[padded[i, :counts[i]] for i in range(N)]`.

    Args:
        padded: Array `[N, K, ...]`.
        counts: Integer array `[N]`, each in `[0, K]`: how many leading entries of row `i` are valid.
        name: Name of `padded` used in error messages.

    Returns:
        A list of `N` arrays, item `i` of shape `[counts[i], ...]`.

    Raises:
        ValueError: if `padded` has fewer than 2 dimensions, or `counts` is not integer `[N]`
            with values in `[0, K]`.
    """
    padded = np.asarray(padded)
    counts = np.asarray(counts)
    if padded.ndim < 2:
        raise ValueError(f"{name} must have shape [N, K, ...]; got {padded.shape}")
    if counts.shape != padded.shape[:1]:
        raise ValueError(f"counts for {name} must have shape [N] = {padded.shape[:1]}; got {counts.shape}")
    if counts.size and not np.issubdtype(counts.dtype, np.integer):
        if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
            raise ValueError(f"counts for {name} must be integers; got {counts}")
        counts = counts.astype(np.int64)
    if np.any(counts < 0) or np.any(counts > padded.shape[1]):
        raise ValueError(f"counts for {name} must lie in [0, K={padded.shape[1]}]; got {counts}")
    return [padded[i, : int(c)] for i, c in enumerate(counts)]


def average_precision(
    pred_boxes,
    pred_scores,
    gt_boxes,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    matching: str = "corrected",
    batch_size: int | None = None,
    num_pred=None,
    num_gt=None,
) -> float:
    """SPAIR's AP: the mean over `iou_thresholds` of the 11-point interpolated AP (module doc).

    Args:
        pred_boxes: One entry per image: predicted boxes `[P_i, 4]`, normalised
            `(y_min, x_min, y_max, x_max)`. Or a padded array `[N, K, 4]` with `num_pred`.
        pred_scores: One entry per image: confidences `[P_i]` (higher = more confident). Or a padded
            array `[N, K]` with `num_pred`.
        gt_boxes: One entry per image: ground-truth boxes `[G_i, 4]`. Or a padded array `[N, K', 4]`
            with `num_gt`.
        iou_thresholds: IoU thresholds in [0, 1]; a prediction is a TP iff IoU > threshold.
        matching: `"corrected"` (default) counts every prediction; `"aaai2019"` reproduces the
            original code, which dropped an image's predictions ranked after all its GTs were
            matched.
        batch_size: None (default) evaluates all images at once; an integer `B` reproduces the
            original's evaluation: AP of consecutive batches of `B` images, averaged weighted by
            batch size (the original used 32).
        num_pred: Optional integer counts `[N]` of valid predictions when `pred_boxes` and
            `pred_scores` are padded.
        num_gt: Optional integer counts `[N]` of valid GT boxes when `gt_boxes` is padded.

    Returns:
        AP in [0, 1].

    Raises:
        ValueError: on mismatched numbers of images or predictions, wrong shapes, NaNs, invalid
            thresholds, `matching` or `batch_size`.
    """
    per_threshold = average_precision_per_threshold(
        pred_boxes, pred_scores, gt_boxes, iou_thresholds, matching, batch_size, num_pred, num_gt
    )
    return float(np.mean(list(per_threshold.values())))


def average_precision_per_threshold(
    pred_boxes,
    pred_scores,
    gt_boxes,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    matching: str = "corrected",
    batch_size: int | None = None,
    num_pred=None,
    num_gt=None,
) -> dict[float, float]:
    """The 11-point interpolated AP at each IoU threshold; arguments as in `average_precision`.

    Returns:
        `{threshold: AP_threshold}` in the order of `iou_thresholds`; with `batch_size`, each value
        is the batch-size-weighted mean of the per-batch values.
    """
    preds, scores, gts = _check_inputs(pred_boxes, pred_scores, gt_boxes, num_pred, num_gt)
    thresholds = _check_thresholds(iou_thresholds)
    if matching not in MATCHING_MODES:
        raise ValueError(f"matching must be one of {MATCHING_MODES}; got {matching!r}")
    num_images = len(gts)
    step = _check_batch_size(batch_size, num_images)
    totals = np.zeros(len(thresholds))
    for start in range(0, num_images, step):
        batch = slice(start, start + step)
        weight = len(gts[batch])
        totals += weight * _ap_per_threshold(preds[batch], scores[batch], gts[batch], thresholds, matching)
    return {t: float(v) for t, v in zip(thresholds, totals / num_images)}


def _ap_per_threshold(preds, scores, gts, thresholds, matching) -> np.ndarray:
    """AP `[T]` of one set of images (lists of validated arrays) at each threshold."""
    num_gt = sum(len(g) for g in gts)
    num_preds = sum(len(s) for s in scores)
    if num_gt == 0:
        return np.full(len(thresholds), 1.0 if num_preds == 0 else 0.0)
    ious = [iou_matrix(p, g) for p, g in zip(preds, gts)]
    all_scores = np.concatenate([np.zeros(0)] + scores)
    global_order = np.argsort(-all_scores, kind="stable")
    values = []
    for t in thresholds:
        flags = [_match_image(iou, s, t, matching) for iou, s in zip(ious, scores)]
        is_tp = np.concatenate([np.zeros(0, bool)] + [f[0] for f in flags])[global_order]
        counted = np.concatenate([np.zeros(0, bool)] + [f[1] for f in flags])[global_order]
        values.append(_eleven_point_ap(is_tp[counted], num_gt))
    return np.asarray(values)


def _match_image(iou: np.ndarray, scores: np.ndarray, threshold: float, matching: str):
    """Greedy matching of one image's predictions in confidence order (stable).

    Args:
        iou: IoU `[P, G]` of the image's predictions with its GT boxes.
        scores: Confidences `[P]`.
        threshold: A prediction is a TP iff its best unmatched IoU > threshold.
        matching: "corrected" or "aaai2019" (see module doc).

    Returns:
        `(is_tp [P] bool, counted [P] bool)` in the given prediction order; `counted` is False only
        for predictions dropped by the "aaai2019" quirk.
    """
    num_preds, num_gt = iou.shape
    is_tp = np.zeros(num_preds, bool)
    counted = np.ones(num_preds, bool)
    unmatched = np.ones(num_gt, bool)
    order = np.argsort(-scores, kind="stable")
    for rank, p in enumerate(order):
        if num_gt == 0:
            break
        if matching == "aaai2019" and not unmatched.any():
            counted[order[rank:]] = False
            break
        candidates = np.where(unmatched, iou[p], -np.inf)
        best = int(np.argmax(candidates))
        if candidates[best] > threshold:
            is_tp[p] = True
            unmatched[best] = False
    return is_tp, counted


def _eleven_point_ap(is_tp: np.ndarray, num_gt: int) -> float:
    """11-point interpolated AP of a confidence-sorted TP/FP list `[P]` bool, with `num_gt > 0`."""
    cum_tp = np.cumsum(is_tp)
    precision = cum_tp / np.arange(1, len(is_tp) + 1)
    levels = np.arange(NUM_RECALL_LEVELS)
    # recall >= k / 10, compared exactly in integers.
    reached = (NUM_RECALL_LEVELS - 1) * cum_tp[None, :] >= levels[:, None] * num_gt
    best = np.where(reached, precision[None, :], 0.0).max(axis=1, initial=0.0)
    return float(best.mean())


def _check_inputs(pred_boxes, pred_scores, gt_boxes, num_pred, num_gt):
    """Validates and converts the per-image inputs to lists of float64 arrays."""
    if num_pred is not None:
        pred_boxes = unpad(pred_boxes, num_pred, "pred_boxes")
        pred_scores = unpad(pred_scores, num_pred, "pred_scores")
    if num_gt is not None:
        gt_boxes = unpad(gt_boxes, num_gt, "gt_boxes")
    num_images = len(gt_boxes)
    if num_images == 0:
        raise ValueError("gt_boxes must hold at least one image; got 0 images")
    for name, value in (("pred_boxes", pred_boxes), ("pred_scores", pred_scores)):
        if len(value) != num_images:
            raise ValueError(f"{name} must hold one entry per image ({num_images} in gt_boxes); got {len(value)}")
    preds = [_check_image_boxes(b, f"pred_boxes[{i}]") for i, b in enumerate(pred_boxes)]
    gts = [_check_image_boxes(b, f"gt_boxes[{i}]") for i, b in enumerate(gt_boxes)]
    scores = [_check_scores(s, len(b), f"pred_scores[{i}]") for i, (s, b) in enumerate(zip(pred_scores, preds))]
    return preds, scores, gts


def _check_image_boxes(boxes, name: str) -> np.ndarray:
    boxes = check_boxes(boxes, name)
    if boxes.ndim != 2:
        raise ValueError(f"{name} must have shape [num_boxes, 4]; got {boxes.shape}")
    return boxes


def _check_scores(scores, num_boxes: int, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (num_boxes,):
        raise ValueError(f"{name} must have shape [{num_boxes}] (one score per predicted box); got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"{name} contains NaN")
    return scores


def _check_thresholds(iou_thresholds) -> tuple[float, ...]:
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError(f"iou_thresholds must be a non-empty 1-D sequence; got shape {thresholds.shape}")
    if not np.all((thresholds >= 0) & (thresholds <= 1)):
        raise ValueError(f"iou_thresholds must lie in [0, 1]; got {iou_thresholds}")
    if np.unique(thresholds).size != thresholds.size:
        raise ValueError(f"iou_thresholds must not repeat a value; got {iou_thresholds}")
    return tuple(float(t) for t in thresholds)


def _check_batch_size(batch_size, num_images: int) -> int:
    """Returns the batch step: `num_images` for None, else the validated positive integer."""
    if batch_size is None:
        return num_images
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be None or a positive integer; got {batch_size!r}")
    return int(batch_size)
