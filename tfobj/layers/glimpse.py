"""Glimpse: a spatial transformer that cuts a fixed-size window out of an image for each box."""
from __future__ import annotations

import keras
import tensorflow as tf


def extract_glimpses(images, boxes, size):
    """Bilinear crops of `images` at `boxes`, resampled to `size`, half-pixel convention.

    Glimpse texel (i, j) is centred at `y_min·H + (i + 0.5)·(y_max − y_min)·H / size[0]` pixels (likewise x),
    the align_corners=False convention of docs/conventions.md and of the renderer, so that rendering
    a glimpse back into its box reproduces the box's content. Outside the image the value is 0 (the
    image is bilinearly blended with zeros across its border). Gradients flow into the images and the
    boxes. Implemented with gathers (no `tf.image.crop_and_resize`), so it also compiles with XLA.

    Args:
        images: float `[B, H, W, C]`.
        boxes: float `[B, K, 4]` normalised (y_min, x_min, y_max, x_max).
        size: (h, w) of the glimpses.

    Returns:
        float32 `[B, K, h, w, C]`.
    """
    images = tf.cast(images, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
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
