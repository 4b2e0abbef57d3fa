"""TUSK's sub-pixel keypoint localisation: a soft-argmax in a window around each score-map peak (TUSK appendix
A.1, eq. 5).

Shapes use B (batch), H, W (score map), K (keypoints). The window side is `kernel_size` (the paper's B, not the
batch), its radius r = kernel_size // 2.

After NMS and top-K (which are not differentiable), each selected peak T_k is refined to

    L_k = Σ_{c ∈ window(T_k)} c · exp(S[c] / τ) / Σ_{c ∈ window(T_k)} exp(S[c] / τ)          (eq. 5)

so that gradients reach every cell of the window, not only the peak, and the keypoint gets sub-pixel precision.

Image borders. Eq. 5 only defines S on the image, and near a border part of the window lies outside it.

* The original code (ubc-vision/TUSK@04ba610, `utils/torch_utils.py`, `SamplePointsDiff.forward`) zero-pads
  the score map by r (`torch.nn.ZeroPad2d`), divides by 0.2, exponentiates, and convolves with the window's
  offset kernels (`x_kernel`, `y_kernel`, `s_kernel`); the keypoint is the integer peak plus the weighted mean
  offset. So every out-of-image cell takes part, at its out-of-image position, with score 0: weight
  exp(0) = 1, against exp(S / 0.2) ∈ [1, e^5] for the in-image cells of its sigmoid scores. The image is in
  effect continued with the lowest possible score. Compared with using the in-image cells only, this pulls a
  keypoint near the border towards the border (a corner peak of a flat map stays at the corner, where the
  in-image cells alone give their centroid, up to r/2 pixels inwards). For scores >= 0 the keypoint cannot
  leave the image (each out-of-image cell, weight 1, is balanced by its mirror cell about the peak, weight
  >= 1); for negative scores it can.
* tfobj's default, `border="exclude"`, reads eq. 5 literally: S is only defined on the image, so the window
  is the set of image cells within r of the peak (rows and columns clipped to the image), and only those
  enter the softmax. Keypoints lie in [0, H − 1] × [0, W − 1] for any scores; the result depends only on the
  scores, not on an assumed value outside the image. Like any clipped window it is biased inwards for a broad
  score bump at the border. It differs from the original only for peaks within r of the border.
* `border="zeros"` reproduces the original code (out-of-image cells with score 0 at their own positions).

Other differences from the original code: it hard-codes τ = 0.2 (its config's `spatial_softmax.strength` is
unused; the function `spatial_softmax` that would use it is never called), and returns (x, y); here τ is an
argument and keypoints are (row, col).

Coordinates are pixel *indices*: a window whose weight is all on the peak returns the peak exactly. Add 0.5 to
get the pixel-centre coordinates of docs/conventions.md (the centre of pixel (0, 0) is (0.5, 0.5)).

Numerics: weights are exp((S[c] − m) / τ) with m the maximum score over the cells that enter the softmax, so
nothing overflows for any finite S and τ > 0 (the original does not subtract it; its S / 0.2 ≤ 5). Scores in
float16/bfloat16 are cast to float32; float64 scores are computed in float64. The window is gathered with
`tf.gather_nd`, so the cost is O(B·K·kernel_size²) and the gradient with respect to `scores` is supported on the
cells that enter the windows.
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

__all__ = ["soft_argmax"]

_BORDERS = ("exclude", "zeros")


def soft_argmax(scores, peaks, kernel_size: int, temperature, border: str = "exclude") -> tf.Tensor:
    """Refines integer score-map peaks to sub-pixel keypoints by a windowed soft-argmax (TUSK A.1, eq. 5).

    Args:
        scores: float `[B, H, W]` score map S (TUSK: sigmoid of the heatmap, in [0, 1]; any finite values
            work). Gradients flow into it.
        peaks: integer `[B, K, 2]` (row, col) of the selected peaks T (TUSK: NMS + top-K of S); each must lie
            inside the image, 0 <= row < H, 0 <= col < W. Not differentiable.
        kernel_size: odd python int >= 1, the side of the square window centred at each peak (the paper's
            B: 13 MNIST, 21 CLEVR, 27 Tetrominoes, Table 10). The window may be larger than the image.
        temperature: τ > 0, python float or scalar tensor (the original code uses 0.2). τ → 0 gives the
            window's argmax, large τ the window's centroid.
        border: what the window does where it leaves the image. `"exclude"` (default, the seed's eq. 5):
            only in-image cells enter the softmax. `"zeros"` (the original code, `SamplePointsDiff`):
            out-of-image cells enter with score 0 at their out-of-image positions. See the module docstring.

    Returns:
        `[B, K, 2]` keypoints (row, col) in pixel-index units, float32 (float64 if `scores` is float64):
        the peak plus the softmax-weighted mean offset of its window. With `border="exclude"` they lie in
        [0, H − 1] × [0, W − 1].

    Raises:
        ValueError: if `kernel_size` is not an odd positive int, `temperature` is not positive (when its value
            is known), `border` is unknown, `scores` is not a float `[B, H, W]` tensor, `peaks` not an
            integer `[B, K, 2]` tensor, the batch sizes differ, or a peak lies outside the image (when the
            values are known: always in eager mode). Inside a `tf.function` with peaks or image size only
            known at run time, a peak outside the image raises `tf.errors.InvalidArgumentError` when run.

    References:
        - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, appendix A.1, eq. (5).
        - ubc-vision/TUSK, `utils/torch_utils.py`, `SamplePointsDiff.forward` (the original code).
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise ValueError(f"kernel_size must be an odd python int >= 1; got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1 (a window centred at the peak); got {kernel_size}")
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {_BORDERS}; got {border!r}")

    scores = tf.convert_to_tensor(scores)
    if not scores.dtype.is_floating:
        raise ValueError(f"scores must be a float tensor [B, H, W]; got dtype {scores.dtype.name}")
    if scores.shape.rank != 3:
        raise ValueError(f"scores must have shape [B, H, W] (rank 3); got shape {scores.shape}")
    dtype = tf.float64 if scores.dtype == tf.float64 else tf.float32  # float32 math for 16-bit scores
    scores = tf.cast(scores, dtype)

    peaks = tf.convert_to_tensor(peaks)
    if not peaks.dtype.is_integer:
        raise ValueError(f"peaks must be an integer tensor [B, K, 2] of (row, col); got dtype {peaks.dtype.name}")
    if peaks.shape.rank != 3 or peaks.shape[2] != 2:
        raise ValueError(f"peaks must have shape [B, K, 2] of (row, col); got shape {peaks.shape}")
    if scores.shape[0] is not None and peaks.shape[0] is not None and scores.shape[0] != peaks.shape[0]:
        raise ValueError(
            f"scores and peaks must have the same batch size; got scores {scores.shape} and peaks {peaks.shape}"
        )
    peaks = tf.cast(peaks, tf.int32)
    _check_peaks_static(peaks, scores.shape[1], scores.shape[2])

    temperature = _check_temperature(temperature, dtype)

    shape = tf.shape(scores)
    height, width = shape[1], shape[2]
    if not tf.executing_eagerly():  # peaks or H, W may be unknown until run time
        limits = tf.stack([height, width])
        checks = [
            tf.debugging.assert_non_negative(peaks, message="peaks must lie inside the image; found a negative"),
            tf.debugging.assert_less(peaks, limits, message="peaks must lie inside the image, row < H, col < W"),
        ]
        with tf.control_dependencies(checks):
            peaks = tf.identity(peaks)

    radius = kernel_size // 2
    steps = tf.range(-radius, radius + 1)  # [k]
    offset_rows, offset_cols = tf.meshgrid(steps, steps, indexing="ij")  # [k, k] each
    offsets = tf.stack([offset_rows, offset_cols], axis=-1)  # [k, k, 2]
    offsets = tf.reshape(offsets, [1, 1, kernel_size**2, 2])  # [1, 1, k², 2], raster order
    cells = peaks[:, :, None, :] + offsets  # [B, K, k², 2], (row, col) of every window cell
    inside = tf.reduce_all((cells >= 0) & (cells < tf.stack([height, width])), axis=-1)  # [B, K, k²]
    clipped = tf.minimum(tf.maximum(cells, 0), tf.stack([height - 1, width - 1]))  # valid indices for the gather
    window = tf.gather_nd(scores, clipped, batch_dims=1)  # [B, K, k²]

    fill = 0.0 if border == "zeros" else -np.inf  # "exclude": weight exp(−inf) = 0, and a zero gradient
    window = tf.where(inside, window, tf.constant(fill, dtype))
    # The peak itself is always inside, so the maximum is finite; subtracting it keeps exp() <= 1 for any S / τ.
    window_max = tf.stop_gradient(tf.reduce_max(window, axis=-1, keepdims=True))  # [B, K, 1]
    weights = tf.exp((window - window_max) / temperature)  # [B, K, k²], 1 at the window's maximum
    mean_offset = tf.reduce_sum(weights[..., None] * tf.cast(offsets, dtype), axis=2)  # [B, K, 2]
    mean_offset /= tf.reduce_sum(weights, axis=2)[..., None]  # the sum is >= 1
    return tf.cast(peaks, dtype) + mean_offset  # [B, K, 2]


def _check_peaks_static(peaks: tf.Tensor, height, width) -> None:
    """ValueError for a peak outside the image, for whatever of peaks, H, W is known at trace time."""
    values = tf.get_static_value(peaks)
    if values is None or values.size == 0:
        return
    rows, cols = values[..., 0], values[..., 1]
    if values.min() < 0:
        first = values[(values < 0).any(axis=-1)][0]
        raise ValueError(f"peaks must lie inside the image (row, col >= 0); found {tuple(first.tolist())}")
    for name, coords, size in (("row", rows, height), ("col", cols, width)):
        if size is not None and coords.max() >= size:
            raise ValueError(
                f"peaks must lie inside the image (0 <= row < H = {height}, 0 <= col < W = {width}); "
                f"found {name} {coords.max()}"
            )


def _check_temperature(temperature, dtype) -> tf.Tensor:
    """τ as a scalar tensor of `dtype`; ValueError unless it is positive (checked when its value is known)."""
    if isinstance(temperature, bool):
        raise ValueError(f"temperature must be a positive number; got {temperature!r}")
    if isinstance(temperature, numbers.Real):
        if not (0.0 < float(temperature) < np.inf):  # also rejects NaN
            raise ValueError(f"temperature must be positive and finite; got {temperature}")
        return tf.constant(temperature, dtype)
    temperature = tf.convert_to_tensor(temperature)
    if temperature.shape.rank != 0:
        raise ValueError(f"temperature must be a scalar; got shape {temperature.shape}")
    static = tf.get_static_value(temperature)
    if static is not None and not (0.0 < float(static) < np.inf):
        raise ValueError(f"temperature must be positive and finite; got {float(static)}")
    return tf.cast(temperature, dtype)
