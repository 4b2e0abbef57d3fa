"""Glimpse: a spatial transformer that cuts a fixed-size window out of an image for each box."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.ops.xla import in_xla_context


def extract_glimpses(images, boxes, size):
    """Bilinear crops of `images` at `boxes`, resampled to `size`, half-pixel convention.

    Glimpse texel (i, j) is centred at `y_min·H + (i + 0.5)·(y_max − y_min)·H / size[0]` pixels (likewise x),
    the align_corners=False convention of docs/conventions.md and of the renderer, so that rendering
    a glimpse back into its box reproduces the box's content. Outside the image the value is 0 (the
    image is bilinearly blended with zeros across its border). Gradients flow into the images and the
    boxes.

    Two implementations of the same sampling: `tf.image.crop_and_resize` on the zero-padded image, with the
    boxes rewritten into its align-corners convention (the default: one fused op and its fused gradients instead
    of four gathers and their scatter-adds; docs/spair.md and docs/silot.md, Speed), and four gathers
    (`_gather_glimpses`), used when traced for XLA, which has no kernel for crop_and_resize. Tests hold the
    default to a numpy loop (values) and the two paths to each other (values and gradients). One difference:
    where a sample point falls exactly on a pixel row or column, crop_and_resize's box gradient along that axis
    is 0 (its two taps coincide) while the gathers give a one-sided derivative; both are valid at that kink of
    the bilinear blend, and random boxes never land there. A non-finite box gives a NaN glimpse (crop_and_resize
    itself refuses such boxes, so they are swapped for a finite one and the crop replaced by NaN; the gathers give
    NaN, or zeros for some infinite boxes), so a diverging run still reaches the NaN check of `fit` rather than
    an op error.

    Args:
        images: float `[B, H, W, C]`.
        boxes: float `[B, K, 4]` normalised (y_min, x_min, y_max, x_max).
        size: (h, w) of the glimpses.

    Returns:
        float32 `[B, K, h, w, C]`.
    """
    images = tf.cast(images, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    if in_xla_context():
        return _gather_glimpses(images, boxes, size)
    return _crop_and_resize_glimpses(images, boxes, size)


def _texel_centres(low, high, extent, count):
    """Padded-frame pixel coordinates (one zero pixel of padding) of the first and last texel centres of
    `count` texels between the normalised `low` and `high`: `(low + (i + 0.5)(high − low)/count)·extent + 0.5`
    for i = 0 and i = count − 1, each shaped like `low`."""
    extent = tf.cast(extent, tf.float32)
    first = (low + 0.5 / count * (high - low)) * extent + 0.5
    last = (low + (count - 0.5) / count * (high - low)) * extent + 0.5
    return first, last


def _crop_and_resize_glimpses(images, boxes, size):
    """`extract_glimpses` by `tf.image.crop_and_resize` on the image padded with one zero pixel per side.

    crop_and_resize samples crop row i of a box (y1, y2) at y1·(P − 1) + i·(y2 − y1)·(P − 1)/(h − 1) in a
    P-pixel-high image (the box's centre for h = 1) and returns 0 outside [0, P − 1]; with P = H + 2 and
    y1, y2 the first and last texel centres over P − 1 this is the half-pixel sampling above. Where the
    gather path clips a coordinate to the padded frame it reads the zero padding, and crop_and_resize's
    extrapolation value is that same 0.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])  # [B, H+2, W+2, C]
    y_min, x_min, y_max, x_max = tf.unstack(boxes, axis=-1)  # each [B, K]
    # For a single texel (h = 1) first = last = the box's centre, where crop_and_resize samples one row.
    y_first, y_last = _texel_centres(y_min, y_max, height, size[0])
    x_first, x_last = _texel_centres(x_min, x_max, width, size[1])
    rows, cols = tf.cast(height + 1, tf.float32), tf.cast(width + 1, tf.float32)  # P − 1 of the padded frame
    crop_boxes = tf.reshape(tf.stack([y_first / rows, x_first / cols, y_last / rows, x_last / cols], -1), [-1, 4])
    finite = tf.reduce_all(tf.math.is_finite(crop_boxes), axis=-1)  # [B·K]
    crop_boxes = tf.where(finite[:, None], crop_boxes, tf.zeros_like(crop_boxes))
    num_boxes = tf.shape(boxes)[1]
    box_indices = tf.range(batch * num_boxes) // num_boxes  # [B·K]: image b for boxes b·K … b·K + K − 1
    crops = tf.image.crop_and_resize(padded, crop_boxes, box_indices, size, extrapolation_value=0.0)
    crops = tf.where(finite[:, None, None, None], crops, tf.constant(float("nan")))
    return tf.reshape(crops, tf.concat([[batch, num_boxes], tf.shape(crops)[1:]], 0))  # [B, K, h, w, C]


def _gather_glimpses(images, boxes, size):
    """`extract_glimpses` by four gathers of the zero-padded image (static shapes; compiles with XLA)."""
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    # One zero pixel on every side: taps that leave the image read zeros, and coordinates are clipped
    # to the padded frame (beyond it the image is zero, so clipping changes nothing but the gradient,
    # which is zero there anyway).
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])  # [B, H+2, W+2, C]
    y_min, x_min, y_max, x_max = (boxes[..., i, None] for i in range(4))  # each [B, K, 1]

    def coordinates(low, high, extent, count):
        """Padded-frame pixel-index coordinates of the texel centres: [B, K, count] float."""
        extent = tf.cast(extent, tf.float32)
        texel = (tf.range(count, dtype=tf.float32) + 0.5) / count
        centres = (low + texel * (high - low)) * extent - 0.5 + 1.0  # +1: the padding
        return tf.clip_by_value(centres, 0.0, extent + 1.0)

    ys = coordinates(y_min, y_max, height, size[0])  # [B, K, h]
    xs = coordinates(x_min, x_max, width, size[1])  # [B, K, w]
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = (ys - y0)[..., :, None, None], (xs - x0)[..., None, :, None]  # [B, K, h, 1, 1], [B, K, 1, w, 1]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1, x1 = tf.minimum(y0 + 1, height + 1), tf.minimum(x0 + 1, width + 1)
    flat = tf.reshape(padded, [-1, channels])  # [B*(H+2)*(W+2), C]
    image_offset = tf.range(batch)[:, None, None, None] * (height + 2) * (width + 2)  # [B, 1, 1, 1]

    def tap(rows, cols):
        index = image_offset + rows[..., :, None] * (width + 2) + cols[..., None, :]  # [B, K, h, w]
        return tf.gather(flat, index)  # [B, K, h, w, C]

    top = tap(y0, x0) * (1 - wx) + tap(y0, x1) * wx
    bottom = tap(y1, x0) * (1 - wx) + tap(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


@keras.saving.register_keras_serializable(package="tfobj")
class Glimpse(keras.layers.Layer):
    """Keras wrapper of `extract_glimpses` (SPAIR and SILOT object encoders).

    Args:
        size: (h, w) of the glimpses.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]`; boxes: float `[B, K, 4]` normalised.

    Returns:
        `[B, K, h, w, C]` in the layer's compute dtype.
    """

    def __init__(self, size=(14, 14), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, images, boxes):
        return tf.cast(extract_glimpses(images, boxes, self.size), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size)
        return config
