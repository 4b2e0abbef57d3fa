"""Input checks every tfobj model runs on its images: statically where the shape is known (a `ValueError`
naming what was wrong and what was expected), and at run time inside the graph where it is not (an exported
SavedModel's signature leaves the batch and image sizes unknown), with the same messages."""
from __future__ import annotations

import tensorflow as tf

__all__ = ["check_not_empty", "checked_images", "checked_videos"]


def checked_images(images, model: str, channels: int = 3, multiple: int = 1) -> tf.Tensor:
    """`images` `[B, H, W, C]` as float32, checked: rank 4, float, `channels` channels, at least one image,
    H and W positive multiples of `multiple`, values finite and in [0, 1].

    Static violations raise `ValueError`; violations that only show at run time (unknown dimensions, values)
    raise `tf.errors.InvalidArgumentError` from the returned tensor's computation, before any later op runs.
    Under XLA the run-time checks are compiled out.

    Args:
        images: a tensor or array.
        model: the model's name, for the messages.
        channels: the expected number of channels.
        multiple: H and W must be multiples of this (the model's cell size).
    """
    return _checked(images, model, channels, multiple, videos=False)


def checked_videos(videos, model: str, channels: int = 3, multiple: int = 1) -> tf.Tensor:
    """`videos` `[B, T, H, W, C]` as float32, checked as `checked_images` checks images, and at least one frame."""
    return _checked(videos, model, channels, multiple, videos=True)


def _checked(x, model: str, channels: int, multiple: int, videos: bool) -> tf.Tensor:
    noun = "videos" if videos else "images"
    layout = f"[B, T, H, W, {channels}]" if videos else f"[B, H, W, {channels}]"
    spatial = ((2, "H"), (3, "W")) if videos else ((1, "H"), (2, "W"))
    x = tf.convert_to_tensor(x)
    shape = x.shape
    expected = f"expected {model} {noun} {layout} in [0, 1]"
    if shape.rank != (5 if videos else 4):
        raise ValueError(f"{noun} must have shape {layout}{'' if videos else ' (NHWC)'}; got shape {shape}; {expected}")
    if not x.dtype.is_floating:
        raise ValueError(f"{noun} must be float in [0, 1]; got dtype {x.dtype.name}; {expected}")
    if shape[-1] is not None and shape[-1] != channels:
        raise ValueError(f"{noun} must have {channels} channels; got shape {shape}; {expected}")
    if shape[0] == 0:
        raise ValueError(f"{noun} is an empty batch (0 {noun}); {expected}, B >= 1")
    if videos and shape[1] == 0:
        raise ValueError(f"videos have zero frames (T = 0); {expected}, T >= 1")
    for axis, name in spatial:
        if shape[axis] is not None and (shape[axis] == 0 or shape[axis] % multiple):
            raise ValueError(f"{noun} {name} must be a positive multiple of {multiple}; got shape {shape}")
    x = tf.cast(x, tf.float32)
    dynamic = tf.shape(x)
    checks = [tf.debugging.Assert(dynamic[0] > 0, [f"{noun} is an empty batch (0 {noun}); {expected}"])]
    if videos:
        checks.append(tf.debugging.Assert(dynamic[1] > 0, [f"videos have zero frames (T = 0); {expected}"]))
    for axis, name in spatial:
        size = dynamic[axis]
        checks.append(tf.debugging.Assert(tf.logical_and(size > 0, tf.math.floormod(size, multiple) == 0),
                                          [f"{noun} {name} must be a positive multiple of {multiple}; got {name} =",
                                           size]))
    with tf.control_dependencies(checks):
        # NaN first: a NaN fails every comparison, and would otherwise be reported as out of range.
        finite = tf.debugging.assert_all_finite(x, f"{model} {noun} contain NaN or Inf; expected values in [0, 1]")
    in_range = [
        tf.debugging.assert_greater_equal(finite, 0.0, message=f"{model} {noun} must be in [0, 1]; found a value < 0"),
        tf.debugging.assert_less_equal(finite, 1.0, message=f"{model} {noun} must be in [0, 1]; found a value > 1"),
    ]
    with tf.control_dependencies(in_range):
        return tf.identity(finite)


def check_not_empty(images, model: str = "the model's", videos: bool = False) -> None:
    """Raises the empty-batch `ValueError` of `checked_images` (`checked_videos` if `videos`) for an array (or
    tensor) of 0 images, for the paths that never call the model on it (a batched loop over no images)."""
    if hasattr(images, "shape") and len(images.shape) and images.shape[0] == 0:
        noun, layout = ("videos", "[B, T, H, W, 3]") if videos else ("images", "[B, H, W, C]")
        raise ValueError(f"{noun} is an empty batch (0 {noun}); expected {model} {noun} {layout} in [0, 1], B >= 1")
