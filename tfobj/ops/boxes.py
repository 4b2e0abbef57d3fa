"""Box conventions and IoU: the only place boxes change format (see docs/conventions.md).

tfobj boxes are normalised `(y_min, x_min, y_max, x_max)` in [0, 1], as `tf.image` uses them.
Pixel `(row, col)` covers the square `[row, row + 1) x [col, col + 1)` in pixel units, so its
centre is at `(row + 0.5, col + 0.5)`, and the box of a set of pixels whose inclusive index
extent is `row_min..row_max`, `col_min..col_max` is
`(row_min / H, col_min / W, (row_max + 1) / H, (col_max + 1) / W)`.
"""
from __future__ import annotations

import numpy as np


def check_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Returns `boxes` as a float64 array `[..., 4]`; raises ValueError if it is not one."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"{name} must have shape [..., 4] (y_min, x_min, y_max, x_max); got {boxes.shape}")
    if np.isnan(boxes).any():
        raise ValueError(f"{name} contains NaN")
    return boxes


def boxes_from_pixel_extent(row_min, col_min, row_max, col_max, height: int, width: int) -> np.ndarray:
    """Normalised boxes `[..., 4]` of pixel sets with inclusive index extents (see module doc)."""
    row_min, col_min, row_max, col_max = (np.asarray(v, dtype=np.float64) for v in (row_min, col_min, row_max, col_max))
    return np.stack([row_min / height, col_min / width, (row_max + 1) / height, (col_max + 1) / width], axis=-1)


def box_areas(boxes) -> np.ndarray:
    """Areas `[...]` of boxes `[..., 4]` (zero for empty or inverted boxes)."""
    boxes = check_boxes(boxes)
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def box_centers(boxes) -> np.ndarray:
    """Centres `[..., 2]` as `(y, x)`, in the boxes' units."""
    boxes = check_boxes(boxes)
    return 0.5 * (boxes[..., 0:2] + boxes[..., 2:4])


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every pair: `[N, 4]` x `[M, 4]` -> `[N, M]` float64.

    Two boxes that are both empty have IoU 0 (not NaN).
    """
    a = check_boxes(boxes_a, "boxes_a").reshape(-1, 4)
    b = check_boxes(boxes_b, "boxes_b").reshape(-1, 4)
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    intersection = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
