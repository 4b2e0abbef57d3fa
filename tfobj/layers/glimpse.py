"""Glimpse: a spatial transformer that cuts a fixed-size window out of an image for each box."""
from __future__ import annotations

import keras
import tensorflow as tf


def extract_glimpses(images, boxes, size):
    """Bilinear crops of `images` at `boxes`, resampled to `size`, half-pixel convention.

    Glimpse texel (i, j) is centred at `y_min·H + (i + 0.5)·(y_max − y_min)·H / size[0]` pixels (likewise x),
    the align_corners=False convention of docs/conventions.md and of the renderer, so that rendering
    a glimpse back into its box reproduces the box's content. Outside the image the value is 0.
    Gradients flow into the images and the boxes.

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
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), shape[2]
    width = tf.cast(width, tf.float32)
    num_boxes = tf.shape(boxes)[1]
    y_min, x_min, y_max, x_max = tf.unstack(boxes, axis=-1)  # each [B, K]
    # tf.image.crop_and_resize samples row y1·(H−1) + i·(y2 − y1)·(H−1)/(h − 1) (pixel-index units, centres
    # at integers); choose y1, y2 so that row i lands on our half-pixel texel centre minus 0.5.
    step_y = (y_max - y_min) * height / size[0]
    step_x = (x_max - x_min) * width / size[1]
    # crop_and_resize cuts hard to `extrapolation_value` outside [0, H−1]; padding one zero pixel on
    # every side makes samples in the half-pixel border band blend with zero bilinearly instead.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    first_y = y_min * height + 0.5 * step_y - 0.5 + 1.0  # +1: the padding
    first_x = x_min * width + 0.5 * step_x - 0.5 + 1.0
    last_y = first_y + (size[0] - 1) * step_y
    last_x = first_x + (size[1] - 1) * step_x
    crop_boxes = tf.stack([first_y / (height + 1), first_x / (width + 1),
                           last_y / (height + 1), last_x / (width + 1)], axis=-1)  # [B, K, 4], padded image
    box_indices = tf.repeat(tf.range(batch), num_boxes)
    glimpses = tf.image.crop_and_resize(
        padded, tf.reshape(crop_boxes, [-1, 4]), box_indices, size, extrapolation_value=0.0
    )  # [B*K, h, w, C]
    return tf.reshape(glimpses, tf.concat([[batch, num_boxes], size, [shape[3]]], 0))


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
