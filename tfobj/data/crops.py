"""Random crops of Scattered MNIST images with their annotations (SPAIR's transfer experiment).

The original SPAIR code trains its transfer runs on random 48 x 48 crops of 84 x 84 Scattered MNIST
images (4 crops per image) and clips the annotations to the crop. `random_crops` does the same at
random integer offsets, with one choice made explicit: an object whose clipped box is empty (it lies
entirely outside the crop) is dropped, and the padded arrays are compacted so the kept objects come
first and `num_objects` counts only them. An object that is partly inside keeps its box clipped to the
crop (an amodal box cut at the crop border, as in the original), even where the visible part of its
ink is smaller than the clipped box.
"""
from __future__ import annotations

import numpy as np

# A clipped box thinner than this (in pixels) counts as empty: boxes built from pixel extents have
# integer edges, and float32 round-off must not turn an edge lying on the crop border into a sliver.
_EMPTY_PIXELS = 1e-3


def _check_pair(value, name: str) -> tuple[int, int]:
    try:
        pair = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{name} must be a pair of positive integers (height, width); got {value!r}") from None
    if len(pair) != 2 or min(pair) < 1 or any(int(v) != v for v in value):
        raise ValueError(f"{name} must be a pair of positive integers (height, width); got {value!r}")
    return pair


def random_crops(arrays: dict, crop_size=(48, 48), crops_per_image: int = 4, seed: int = 0) -> dict:
    """`crops_per_image` random crops of every image, with boxes re-expressed in the crop.

    Args:
        arrays: a Scattered MNIST dict: images `[N, H, W, 3]`, boxes `[N, K, 4]` normalised
            (y_min, x_min, y_max, x_max), num_objects `[N]`, classes `[N, K]`. Other keys are ignored.
        crop_size: (h, w) with h <= H and w <= W.
        crops_per_image: c >= 1.
        seed: seeds `np.random.default_rng`, which draws the integer top-left offsets
            (rows uniform in 0..H-h, then columns uniform in 0..W-w, each `[N, c]`).

    Returns:
        images float32 `[N*c, h, w, 3]` (crop j of image i at index i*c + j); boxes float32
        `[N*c, K, 4]` in the crop's normalised coordinates, clipped to it, kept objects first and
        zeros after; classes int32 `[N*c, K]` aligned with boxes (0 after); num_objects int32
        `[N*c]` (objects whose clipped box is non-empty); offsets int32 `[N*c, 2]` (top, left in
        pixels of the source image); source int32 `[N*c]` (index of the source image).
    """
    if not isinstance(arrays, dict):
        raise ValueError(f"arrays must be a dict with images, boxes, num_objects and classes; got {type(arrays)}")
    missing = [key for key in ("images", "boxes", "num_objects", "classes") if key not in arrays]
    if missing:
        raise ValueError(f"arrays is missing key(s) {missing}; expected images, boxes, num_objects and classes")
    images = np.asarray(arrays["images"])
    boxes = np.asarray(arrays["boxes"], dtype=np.float64)
    num_objects = np.asarray(arrays["num_objects"])
    classes = np.asarray(arrays["classes"])
    if images.ndim != 4:
        raise ValueError(f"images must have rank 4 [N, H, W, C]; got shape {images.shape}")
    num, height, width = images.shape[:3]
    if boxes.ndim != 3 or boxes.shape[0] != num or boxes.shape[2] != 4:
        raise ValueError(f"boxes must have shape [N={num}, K, 4]; got {boxes.shape}")
    max_objects = boxes.shape[1]
    if num_objects.shape != (num,):
        raise ValueError(f"num_objects must have shape [N={num}]; got {num_objects.shape}")
    if classes.shape != (num, max_objects):
        raise ValueError(f"classes must have shape [N={num}, K={max_objects}]; got {classes.shape}")
    if num and (num_objects.min() < 0 or num_objects.max() > max_objects):
        raise ValueError(f"num_objects must lie in [0, K={max_objects}]; got range "
                         f"[{num_objects.min()}, {num_objects.max()}]")
    crop_h, crop_w = _check_pair(crop_size, "crop_size")
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop_size {(crop_h, crop_w)} must fit in the images ({height}, {width})")
    if isinstance(crops_per_image, bool) or int(crops_per_image) != crops_per_image or crops_per_image < 1:
        raise ValueError(f"crops_per_image must be a positive integer; got {crops_per_image!r}")
    crops_per_image = int(crops_per_image)

    rng = np.random.default_rng(seed)
    tops = rng.integers(0, height - crop_h + 1, size=(num, crops_per_image))
    lefts = rng.integers(0, width - crop_w + 1, size=(num, crops_per_image))
    source = np.repeat(np.arange(num), crops_per_image)
    tops, lefts = tops.reshape(-1), lefts.reshape(-1)

    rows = np.arange(crop_h)[None, :] + tops[:, None]  # [M, h]
    cols = np.arange(crop_w)[None, :] + lefts[:, None]  # [M, w]
    out_images = images[source[:, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float32)

    # Pixel coordinates in the crop, clipped to it.
    src_boxes = boxes[source]  # [M, K, 4]
    y = np.clip(src_boxes[..., 0::2] * height - tops[:, None, None], 0, crop_h)  # y_min, y_max
    x = np.clip(src_boxes[..., 1::2] * width - lefts[:, None, None], 0, crop_w)  # x_min, x_max
    valid = np.arange(max_objects)[None, :] < num_objects[source][:, None]
    keep = valid & (y[..., 1] - y[..., 0] > _EMPTY_PIXELS) & (x[..., 1] - x[..., 0] > _EMPTY_PIXELS)
    clipped = np.stack([y[..., 0] / crop_h, x[..., 0] / crop_w, y[..., 1] / crop_h, x[..., 1] / crop_w], axis=-1)

    # Compact: a stable sort on "not kept" puts the kept objects first, in their original order.
    order = np.argsort(~keep, axis=1, kind="stable")
    keep = np.take_along_axis(keep, order, axis=1)
    clipped = np.take_along_axis(clipped, order[..., None], axis=1)
    out_classes = np.take_along_axis(classes[source], order, axis=1)
    return {
        "images": out_images,
        "boxes": np.where(keep[..., None], clipped, 0.0).astype(np.float32),
        "classes": np.where(keep, out_classes, 0).astype(np.int32),
        "num_objects": keep.sum(axis=1).astype(np.int32),
        "offsets": np.stack([tops, lefts], axis=-1).astype(np.int32),
        "source": source.astype(np.int32),
    }
