"""MNIST-Hard detection and classification accuracy of keypoints, as TUSK's `evaluate_mnist.py` computes them.

TUSK (Jin et al., NeurIPS 2022) scores its K = 9 keypoints per MNIST-Hard image with
`calc_acc` in `evaluate_mnist.py` (ubc-vision/TUSK@04ba610), following MIST's evaluation
(ubc-vision/mist `utils/torch_utils.py eval_accuracy`):

* Boxes. TUSK predicts locations only, so every predicted keypoint gets a fixed square box of side
  `box_size` = 20 pixels at 80 x 80 (`Detection_Size = 20`, "same size as in MNIST paper", i.e.
  MIST's `anchor_size` 0.25 x 80). A ground-truth (GT) digit with keypoint (x, y, radius) has the
  square box centred at (x, y) with side 2 * radius: the loader doubles the stored radius
  (`keypoints[:, 2] *= 2.0`) and `calc_acc` spans centre +- side / 2.
* Matching, per image, in the order of the GT digits: GT i takes the prediction with the highest
  IoU with it (`np.argmax`, the lowest prediction index on ties); if that IoU is strictly greater
  than `iou_threshold` = 0.5, GT i is correctly detected and the prediction is removed (its IoUs
  with all GTs are set to 0, so it cannot be taken again). This greedy is order-dependent and can
  find fewer matches than an optimal one-to-one assignment; it is kept because it is the
  original's.
* `det_acc = correct / #GT` (the original divides by `9 * #images`, which is #GT for MNIST-Hard).
* Classification: the confusion matrix `confusion[m, c]` counts the correct detections whose
  prediction has prototype m (the keypoint's cluster label) and whose GT has class c. With
  `mapping="majority"` (the original) each prototype is mapped to its most frequent class, so
  several prototypes may share a class (many-to-one); the number of correctly classified
  detections is `sum_m max_c confusion[m, c]`. With `mapping="hungarian"` prototypes and classes
  are paired one-to-one to maximise the same count (`scipy.optimize.linear_sum_assignment`);
  prototypes left without a class count as wrong. Then `cls_acc = classified / correct` and
  `acc = classified / #GT`.

Coordinates. tfobj uses (row, col) pixel coordinates with pixel (row, col) covering
[row, row + 1) x [col, col + 1), so the centre of pixel (0, 0) is (0.5, 0.5)
(docs/conventions.md); both `pred_keypoints` and `true_keypoints` are (row, col) in these units,
e.g. the `centres` and `radii` of `tfobj.data.mnist_hard` directly. The original stores (x, y) =
(col, row) normalised by the image size and compares them with (x, y) GT of undocumented reference
point. `tfobj.models.tusk.keypoints.soft_argmax` returns pixel *indices* (the peak pixel's index,
not its centre): add 0.5 before passing them here. IoUs are computed in pixels; for the square
images of the original this equals its normalised computation (it normalises x by the width but
box sides by the height).

Scope. The original evaluates only the first h5 group of its test output (the first 10,000 test
images) and visualises a few; these functions evaluate whatever they are given.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tfobj.metrics.average_precision import unpad

DETECTION_BOX_SIZE = 20.0
"""Side in pixels of the fixed box around each predicted keypoint (TUSK `evaluate_mnist.py`, at 80 x 80)."""

MAPPINGS = ("majority", "hungarian")


def match_keypoints(pred_keypoints, true_keypoints, true_radii, box_size: float = DETECTION_BOX_SIZE,
                    iou_threshold: float = 0.5, num_true=None):
    """For each GT digit, the index of the prediction that detects it, or -1 (TUSK's greedy; module doc).

    Args:
        pred_keypoints: One entry per image: predicted keypoints `[K_i, 2]` (row, col) in pixels,
            pixel centres at +0.5. A model's `[B, K, 2]` array works directly.
        true_keypoints: One entry per image: GT centres `[G_i, 2]` (row, col) in the same units,
            e.g. `mnist_hard(...)["centres"]` `[B, 9, 2]`. Or a padded array `[B, G, 2]` with
            `num_true`.
        true_radii: One entry per image: GT radii `[G_i]` > 0 in pixels (half the GT box side),
            e.g. `mnist_hard(...)["radii"]`. Padded like `true_keypoints`.
        box_size: Side in pixels (> 0) of the square box around each prediction (20 in TUSK).
        iou_threshold: In [0, 1); a GT is detected iff its best available IoU is strictly greater.
        num_true: Optional integer counts `[B]` of valid GTs when the GT arrays are padded.

    Returns:
        int64 indices into each image's predictions, -1 where the GT is not detected: an array
        `[B, G]` if `true_keypoints` is an array or tensor (padding entries -1), a list of `[G_i]`
        arrays if it is a list or tuple. Each prediction index appears at most once per image.

    Raises:
        ValueError: on mismatched numbers of images or GTs, wrong shapes, non-finite values,
            radii <= 0, `box_size` <= 0 or `iou_threshold` outside [0, 1).
    """
    preds, trues, radii = _check_keypoints(pred_keypoints, true_keypoints, true_radii, num_true)
    box_size = _check_positive(box_size, "box_size")
    iou_threshold = _check_threshold(iou_threshold)
    matches = [_match_image(p, t, r, box_size, iou_threshold) for p, t, r in zip(preds, trues, radii)]
    if not isinstance(true_keypoints, (list, tuple)):  # an array (or tensor) [B, G, 2]
        padded = np.full(np.shape(true_keypoints)[:2], -1, np.int64)
        for i, match in enumerate(matches):
            padded[i, :len(match)] = match
        return padded
    return matches


def detection_accuracy(pred_keypoints, true_keypoints, true_radii, box_size: float = DETECTION_BOX_SIZE,
                       iou_threshold: float = 0.5, num_true=None) -> float:
    """TUSK's `det_acc`: correctly detected GT digits / all GT digits (module doc).

    Arguments as in `match_keypoints`.

    Returns:
        Accuracy in [0, 1]; 1.0 if there is no GT digit at all.
    """
    matches = match_keypoints(pred_keypoints, true_keypoints, true_radii, box_size, iou_threshold, num_true)
    counts = _valid_counts(num_true, matches)
    total = int(sum(counts))
    if total == 0:
        return 1.0
    detected = sum(int(np.count_nonzero(np.asarray(m)[:c] >= 0)) for m, c in zip(matches, counts))
    return detected / total


def classification_accuracy(prototype_ids, true_labels, matches, mapping: str = "majority",
                            num_true=None, num_prototypes: int | None = None,
                            num_classes: int | None = None) -> dict:
    """TUSK's `cls_acc` and `acc`: prototype -> class mapping over the correct detections (module doc).

    Args:
        prototype_ids: One entry per image: the prototype (cluster) index >= 0 of each prediction,
            `[K_i]` integers, in the order of `pred_keypoints`. A model's `[B, K]` array works.
        true_labels: One entry per image: GT classes `[G_i]` integers >= 0, in the order of the GTs
            given to `match_keypoints` (e.g. `mnist_hard(...)["classes"]`, labels 0..9; TUSK's
            are these + 1, which changes nothing here). Or a padded array `[B, G]` with `num_true`.
        matches: The output of `match_keypoints` for the same images: per GT, the index of its
            prediction or -1.
        mapping: "majority" (the original: each prototype to its most frequent class, many-to-one)
            or "hungarian" (one-to-one, `scipy.optimize.linear_sum_assignment`).
        num_true: Optional integer counts `[B]` of valid GTs when `true_labels` is padded.
        num_prototypes: Optional number of rows M of the confusion matrix (default: largest
            prototype id + 1); must exceed every prototype id.
        num_classes: Optional number of columns C (default: largest class + 1).

    Returns:
        Dict: "cls_acc" (correctly classified / correct detections; 0.0 if nothing is detected),
        "acc" (correctly classified / GT digits; 1.0 if there are no GT digits), "det_acc"
        (correct detections / GT digits, as `detection_accuracy`), "num_true", "num_detected",
        "num_classified" (ints), "confusion" int64 `[M, C]`, "prototype_to_class" int64 `[M]` (the
        class each prototype is mapped to, the lowest on ties; -1 for prototypes without correct
        detections and for those that Hungarian leaves unpaired).

    Raises:
        ValueError: on mismatched numbers of images, GTs or predictions, non-integer or negative
            ids, a match outside its image's predictions or used twice, an unknown `mapping`, or
            `num_prototypes` / `num_classes` too small.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}; got {mapping!r}")
    labels = unpad(true_labels, num_true, "true_labels") if num_true is not None else list(true_labels)
    num_images = len(labels)
    for name, value in (("prototype_ids", prototype_ids), ("matches", matches)):
        if len(value) != num_images:
            raise ValueError(f"{name} must hold one entry per image ({num_images} in true_labels); got {len(value)}")
    protos = [_check_ids(p, f"prototype_ids[{i}]") for i, p in enumerate(prototype_ids)]
    labels = [_check_ids(g, f"true_labels[{i}]") for i, g in enumerate(labels)]
    pairs = []  # (prototype, class) of every correct detection
    for i, (proto, label, match) in enumerate(zip(protos, labels, matches)):
        match = _check_matches(match, len(label), len(proto), f"matches[{i}]")
        detected = match >= 0
        pairs.append(np.stack([proto[match[detected]], label[detected]], axis=1))
    pairs = np.concatenate([np.zeros((0, 2), np.int64)] + pairs)
    rows = _table_size(num_prototypes, protos, "num_prototypes", "prototype id")
    cols = _table_size(num_classes, labels, "num_classes", "class")
    confusion = np.zeros((rows, cols), np.int64)
    np.add.at(confusion, (pairs[:, 0], pairs[:, 1]), 1)
    if mapping == "majority":
        to_class = confusion.argmax(axis=1) if cols else np.full(rows, -1, np.int64)
        classified = int(confusion.max(axis=1, initial=0).sum())
    else:
        assigned_rows, assigned_cols = linear_sum_assignment(confusion, maximize=True)
        to_class = np.full(rows, -1, np.int64)
        to_class[assigned_rows] = assigned_cols
        classified = int(confusion[assigned_rows, assigned_cols].sum())
    to_class = np.where(confusion.sum(axis=1) > 0, to_class, -1)  # no correct detection: no class
    num_gt = int(sum(len(label) for label in labels))
    num_detected = len(pairs)
    return {
        "cls_acc": classified / num_detected if num_detected else 0.0,
        "acc": classified / num_gt if num_gt else 1.0,
        "det_acc": num_detected / num_gt if num_gt else 1.0,
        "num_true": num_gt,
        "num_detected": num_detected,
        "num_classified": classified,
        "confusion": confusion,
        "prototype_to_class": to_class.astype(np.int64),
    }


# --------------------------------------------------------------------------- matching


def _match_image(preds: np.ndarray, trues: np.ndarray, radii: np.ndarray, box_size: float,
                 threshold: float) -> np.ndarray:
    """TUSK's greedy for one image: preds `[K, 2]`, trues `[G, 2]`, radii `[G]` -> `[G]` int64."""
    iou = _square_iou(preds, box_size / 2.0, trues, radii)  # [K, G]
    match = np.full(len(trues), -1, np.int64)
    if len(preds) == 0:
        return match
    for g in range(len(trues)):
        best = int(np.argmax(iou[:, g]))
        if iou[best, g] > threshold:
            match[g] = best
            iou[best, :] = 0.0  # the prediction is used up
    return match


def _square_iou(pred_centres: np.ndarray, pred_half: float, true_centres: np.ndarray,
                true_half: np.ndarray) -> np.ndarray:
    """IoU `[K, G]` of axis-aligned squares given by centres `[K, 2]`, `[G, 2]` and half sides.

    Per axis the overlap of [c1 - h1, c1 + h1] and [c2 - h2, c2 + h2] is
    `clip(min(h1 + h2 - |c1 - c2|, 2 h1, 2 h2), 0)`, and the areas are `(2 h)^2`. This is the IoU of
    `tfobj.ops.boxes.iou_matrix` for these boxes, computed from the centre distance and the half
    sides instead of the corner coordinates, so that geometric ties are exact ties: a small GT box
    inside several prediction boxes has exactly the same IoU with each (corner differences like
    `(c + 10) - (c - 10)` round differently for different c), and `np.argmax` then takes the lowest
    prediction index, as it would in exact arithmetic.
    """
    distance = np.abs(pred_centres[:, None, :] - true_centres[None, :, :])  # [K, G, 2]
    halves = pred_half + true_half[None, :, None]  # [1, G, 1]
    smaller = 2.0 * np.minimum(pred_half, true_half)[None, :, None]  # [1, G, 1]
    sides = np.clip(np.minimum(halves - distance, smaller), 0.0, None)  # [K, G, 2]
    intersection = sides[..., 0] * sides[..., 1]  # [K, G]
    union = (2.0 * pred_half) ** 2 + (2.0 * true_half[None, :]) ** 2 - intersection
    return intersection / union  # union >= the larger area > 0


# --------------------------------------------------------------------------- validation


def _check_keypoints(pred_keypoints, true_keypoints, true_radii, num_true):
    if num_true is not None:
        true_keypoints = unpad(true_keypoints, num_true, "true_keypoints")
        true_radii = unpad(true_radii, num_true, "true_radii")
    num_images = len(true_keypoints)
    for name, value in (("pred_keypoints", pred_keypoints), ("true_radii", true_radii)):
        if len(value) != num_images:
            raise ValueError(f"{name} must hold one entry per image ({num_images} in true_keypoints); "
                             f"got {len(value)}")
    preds = [_check_points(p, f"pred_keypoints[{i}]") for i, p in enumerate(pred_keypoints)]
    trues = [_check_points(t, f"true_keypoints[{i}]") for i, t in enumerate(true_keypoints)]
    radii = []
    for i, (r, t) in enumerate(zip(true_radii, trues)):
        r = np.asarray(r, dtype=np.float64)
        if r.shape != (len(t),):
            raise ValueError(f"true_radii[{i}] must have shape [{len(t)}] (one radius per GT keypoint); "
                             f"got {r.shape}")
        if not np.all(np.isfinite(r) & (r > 0)):
            raise ValueError(f"true_radii[{i}] must be finite and > 0 (half the GT box side, pixels); got {r}")
        radii.append(r)
    return preds, trues, radii


def _check_points(points, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1 and points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape [num_keypoints, 2] (row, col); got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} must be finite (row, col) pixel coordinates; got NaN or inf")
    return points


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0 (pixels)")
    return float(value)


def _check_threshold(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < 1:
        raise ValueError(f"iou_threshold={value!r} must be a number in [0, 1) (a match needs IoU > threshold)")
    return float(value)


def _valid_counts(num_true, matches) -> list[int]:
    if num_true is not None:
        return [int(c) for c in np.asarray(num_true)]
    return [len(m) for m in matches]


def _check_ids(ids, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim == 1 and ids.size == 0:
        ids = ids.astype(np.int64)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer ids; got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        if not (np.issubdtype(ids.dtype, np.floating) and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids))):
            raise ValueError(f"{name} must hold integer ids; got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name} must hold ids >= 0; got {ids.min()}")
    return ids


def _check_matches(match, num_true: int, num_pred: int, name: str) -> np.ndarray:
    """`[num_true]` int64 prediction indices (or -1) of one image, validated."""
    match = np.asarray(match)
    if match.ndim != 1 or (match.size and not np.issubdtype(match.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array (prediction index per GT, -1 if not detected); "
                         f"got {match.dtype} {match.shape}")
    match = match.astype(np.int64)
    # padded output of match_keypoints carries -1 beyond the valid GTs
    if len(match) < num_true or np.any(match[num_true:] != -1):
        raise ValueError(f"{name} must hold one entry per GT ({num_true}, plus only -1 as padding); got {match}")
    match = match[:num_true]
    if match.size and (match.min() < -1 or match.max() >= num_pred):
        raise ValueError(f"{name} must hold prediction indices in [0, {num_pred}) or -1; got {match}")
    used = match[match >= 0]
    if np.unique(used).size != used.size:
        raise ValueError(f"{name} uses a prediction twice ({used.tolist()}); matches must be one-to-one, as "
                         f"returned by match_keypoints")
    return match


def _table_size(requested, arrays, arg_name: str, what: str) -> int:
    largest = max((int(a.max()) for a in arrays if a.size), default=-1)
    if requested is None:
        return largest + 1
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) or requested < 0:
        raise ValueError(f"{arg_name}={requested!r} must be None or an integer >= 0")
    if requested <= largest:
        raise ValueError(f"{arg_name}={requested} is too small: found {what} {largest}")
    return int(requested)


__all__ = ["DETECTION_BOX_SIZE", "classification_accuracy", "detection_accuracy", "match_keypoints"]
