"""TUSK's building-block math as pure functions: peak selection (NMS + top-K), point sampling, the Gaussian
splat of the sparse reconstruction, prototype assignment, and the prototype GMM's mixing ratios and samples.

Implements: Table 9 ("Keypoints Sampling": NMS, Top-K, Bilinear Sampling; "Sparse Reconstruction": Gaussian
Conv., Summation), appendix A.2 eqs. (6)-(8) and Table 7 steps 1-2 of Jin et al., "TUSK: Task-Agnostic
Unsupervised Keypoints", NeurIPS 2022. The soft-argmax (A.1, eq. 5) is
`tfobj.models.tusk.keypoints.soft_argmax`, the sliced Wasserstein loss (Table 7 step 3) is in
`sliced_wasserstein.py`.

Dimension letters (docs/conventions.md): B batch, H, W image, K keypoints, d descriptor size (32 in TUSK),
M prototypes, N points of a flattened set (TUSK: the B·K descriptors of a batch, and as many GMM samples).

Coordinates. Keypoints are (row, col) in pixel-*index* units, as `soft_argmax` returns them: (i, j) is the
position of pixel (i, j) itself, so sampling at integer (i, j) reads pixel (i, j) exactly and the Gaussian of a
keypoint at (i, j) peaks on pixel (i, j). This is the original code's convention (its grids are
`torch.arange(H)`, `torch.arange(W)`); add 0.5 for the pixel-centre coordinates of docs/conventions.md.

Where the seed and the original code (ubc-vision/TUSK@04ba610) differ, the seed is the default and the
original an option, named in each function's docstring:

* `sample_points(..., method="truncate")`: the original's descriptors read F at the keypoint truncated to
  integers (`utils/torch_utils.py`, `sample_features`); Table 9 says bilinear sampling (default).
* `mixing_ratios(..., exploration=0.01)`: the original's `get_cluster_ratio` (`models/loss.py`) adds 0.01 to
  every α_m; eq. (7) does not (default 0).
* `mixing_ratios(..., variance_about="prototype")`: the original's σ_m is the mean squared deviation of the
  assigned descriptors from the prototype p_m; the seed's "variance of D_m" is taken about D_m's own mean
  (default). See the function's docstring.
* `sample_prototypes(..., normalize=True)`: the original projects every GMM sample back onto the unit sphere;
  eq. (6) and Table 7 do not (default False).
* `sample_prototypes(..., allocation="original")`: the original gives prototype m floor(π_m N) samples and the
  last prototype the remainder (`sample_counts`); Table 7's "π_m × N samples" rounded without bias is the
  default (`systematic_counts`).

Dtypes: float16/bfloat16 inputs are computed in float32; float64 inputs stay float64 (for references).
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from tfobj.models.tusk.sliced_wasserstein import _stateless_seed

__all__ = [
    "assign_prototypes",
    "gaussian_splat",
    "local_maxima",
    "mixing_ratios",
    "sample_counts",
    "sample_points",
    "sample_prototypes",
    "select_peaks",
    "systematic_counts",
    "upsample_bilinear",
]

SAMPLING_METHODS = ("bilinear", "truncate")
VARIANCE_CENTRES = ("mean", "prototype")
SAMPLE_ALLOCATIONS = ("systematic", "original")


# === Peaks: NMS and top-K (Table 9, "NMS", "Top-K") ==============================================================


def local_maxima(scores, kernel_size: int) -> tf.Tensor:
    """The non-maximum-suppression mask of TUSK's encoder: S[i, j] is kept where it equals the maximum of S over
    the B×B window centred at (i, j) (stride 1; the window is clipped to the image).

    As the original code (`SamplePointsDiff.forward`: `MaxPool2d(B, stride=1, padding=B // 2)`, whose padding
    never wins the max, then `maxpool == S`). Every pixel of a plateau that is the maximum of its windows is a
    maximum; the filtered map of Table 9, S̃, is `where(mask, S, 0)`.

    Args:
        scores: float `[B, H, W]` score map S.
        kernel_size: odd python int >= 1, the window side (the paper's B, Table 10 "Softmax Kernel Size").

    Returns:
        bool `[B, H, W]`, True at the local maxima.

    Raises:
        ValueError: if `kernel_size` is not an odd positive int or `scores` is not a float `[B, H, W]` tensor.
    """
    _check_kernel_size(kernel_size)
    scores = _as_float("scores", scores, 3, "[B, H, W]")
    pooled = tf.nn.max_pool2d(scores[..., None], ksize=kernel_size, strides=1, padding="SAME")  # [B, H, W, 1]
    return tf.equal(pooled[..., 0], scores)  # max-pool returns one of the inputs exactly: exact equality is right


def select_peaks(scores, kernel_size: int, num_keypoints: int) -> tuple[tf.Tensor, tf.Tensor]:
    """NMS then top-K: the K highest local maxima of S (Table 9, "NMS(S) → S̃", "Top-K(S̃) → P").

    Ranking: the local maxima (`local_maxima`) by decreasing score, then, if fewer than K maxima exist, the
    remaining slots take the *non-maxima* by decreasing score; ties go to the lower raster index (row·W + col).
    The original code (`torch.topk` on S̃ = S at maxima, 0 elsewhere) ranks maxima the same way but fills missing
    slots with zeros of S̃ at unspecified positions; for scores > 0 (TUSK's sigmoid) this ranking is the
    original's with its ties among the zeros broken deterministically (by S, then by index). Filled slots are
    flagged by `valid = False`; they are usually neighbours of the strongest peaks.

    Args:
        scores: float `[B, H, W]` score map S (finite).
        kernel_size: odd python int >= 1, the NMS window side B.
        num_keypoints: python int K, 1 <= K <= H·W.

    Returns:
        (peaks, valid): int32 `[B, K, 2]` (row, col) pixel indices, and bool `[B, K]`, True where the slot holds
        a local maximum. Valid slots come first and are sorted by decreasing score. Not differentiable.

    Raises:
        ValueError: if `kernel_size` is not an odd positive int, `num_keypoints` is not a positive int or exceeds
            H·W (when H, W are static), or `scores` is not a float `[B, H, W]` tensor.
    """
    if isinstance(num_keypoints, bool) or not isinstance(num_keypoints, numbers.Integral) or num_keypoints < 1:
        raise ValueError(f"num_keypoints must be a python int >= 1; got {num_keypoints!r}")
    maxima = local_maxima(scores, kernel_size)  # [B, H, W]; also checks the arguments
    scores = _as_float("scores", scores, 3, "[B, H, W]")
    height, width = scores.shape[1], scores.shape[2]
    if height is not None and width is not None and num_keypoints > height * width:
        raise ValueError(
            f"num_keypoints must be at most H·W = {height * width} (a {height}×{width} score map); "
            f"got {num_keypoints}"
        )
    shape = tf.shape(scores)
    batch, width_t = shape[0], shape[2]
    flat = tf.reshape(scores, [batch, -1])  # [B, H·W], raster order
    flat_maxima = tf.reshape(maxima, [batch, -1])  # [B, H·W]
    lowest = tf.constant(-np.inf, flat.dtype)
    # top_k puts equal values in increasing index order (documented), so both lists are deterministic.
    _, maxima_index = tf.math.top_k(tf.where(flat_maxima, flat, lowest), k=num_keypoints)  # [B, K]
    _, others_index = tf.math.top_k(tf.where(flat_maxima, lowest, flat), k=num_keypoints)  # [B, K]
    num_maxima = tf.reduce_sum(tf.cast(flat_maxima, tf.int32), axis=1, keepdims=True)  # [B, 1]
    slots = tf.range(num_keypoints)[None, :]  # [1, K]
    valid = slots < num_maxima  # [B, K]
    fill = tf.gather(others_index, tf.maximum(slots - num_maxima, 0), batch_dims=1)  # [B, K]
    index = tf.where(valid, maxima_index, fill)  # [B, K]
    peaks = tf.stack([index // width_t, index % width_t], axis=-1)  # [B, K, 2]
    return peaks, valid


# === Point sampling (Table 9, "Bilinear Sampling(F, L) → D") ======================================================


def sample_points(maps, points, method: str = "bilinear") -> tf.Tensor:
    """Reads `maps` at sub-pixel (row, col) points.

    `"bilinear"` (default; Table 9's "Bilinear Sampling"): the bilinear interpolation of the four pixels
    around the point; a point is clamped to [0, H − 1] × [0, W − 1] first (the border pixels continue outward;
    the gradient with respect to a coordinate outside that range is 0). Differentiable in `maps` and `points`.
    `"truncate"` (the original code's `sample_features`: `keypoint.long()`): the pixel at the coordinates
    truncated towards zero (clamped to the image); differentiable in `maps` only.

    The original computes keypoint confidences by the bilinear interpolation of S with weights that vanish
    when a coordinate is an exact integer (its ceil equals its floor); this function has no such hole.

    Args:
        maps: float `[B, H, W, C]`.
        points: float `[B, K, 2]` (row, col) in pixel-index units (see the module docstring).
        method: `"bilinear"` or `"truncate"`.

    Returns:
        `[B, K, C]`, float32 (float64 if `maps` or `points` is float64).

    Raises:
        ValueError: if `method` is unknown, `maps` is not a float `[B, H, W, C]` tensor, `points` is not a float
            `[B, K, 2]` tensor, or their batch sizes differ (when static).
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"method must be one of {SAMPLING_METHODS}; got {method!r}")
    maps = _as_float("maps", maps, 4, "[B, H, W, C]")
    points = _as_float("points", points, 3, "[B, K, 2]")
    if points.shape[2] is not None and points.shape[2] != 2:
        raise ValueError(f"points must have shape [B, K, 2] of (row, col); got shape {points.shape}")
    _check_batch("maps", maps, "points", points)
    dtype = _common_dtype(maps, points)
    maps, points = tf.cast(maps, dtype), tf.cast(points, dtype)
    shape = tf.shape(maps)
    last = tf.stack([shape[1] - 1, shape[2] - 1])  # [2], the last row and column
    if method == "truncate":
        index = tf.minimum(tf.maximum(tf.cast(points, tf.int32), 0), last)  # [B, K, 2]; cast truncates toward 0
        return tf.gather_nd(maps, index, batch_dims=1)  # [B, K, C]
    clamped = tf.clip_by_value(points, tf.zeros([], dtype), tf.cast(last, dtype))  # [B, K, 2]
    low = tf.floor(clamped)
    fraction = clamped - low  # [B, K, 2], in [0, 1)
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, last)  # [B, K, 2]; at the last row/col the fraction is 0
    row0, col0 = low[..., 0], low[..., 1]
    row1, col1 = high[..., 0], high[..., 1]

    def tap(rows, cols):
        return tf.gather_nd(maps, tf.stack([rows, cols], axis=-1), batch_dims=1)  # [B, K, C]

    frow, fcol = fraction[..., 0:1], fraction[..., 1:2]  # [B, K, 1] each
    top = tap(row0, col0) * (1 - fcol) + tap(row0, col1) * fcol
    bottom = tap(row1, col0) * (1 - fcol) + tap(row1, col1) * fcol
    return top * (1 - frow) + bottom * frow  # [B, K, C]


# === Sparse reconstruction (Table 9, "Gaussian Conv.(L, D) → R", "Summation(R) → F̃") ============================


def gaussian_splat(keypoints, descriptors, confidences, height, width, variance=0.05) -> dict:
    """Places each keypoint's descriptor on the image as a normalised Gaussian (Table 9, Sparse Reconstruction).

    For keypoint k at L_k = (row, col) the map is

        G_k[i, j] = c_k · exp(−½‖(i, j) − L_k‖² / v) / Σ_{i', j'} exp(−½‖(i', j') − L_k‖² / v)

    over the pixel-index grid (i, j) ∈ [0, H) × [0, W) (the keypoints' own units), with c_k the keypoint's
    confidence; R_k = d_k ⊗ G_k and F̃ = Σ_k R_k. The normalisation to sum 1 over the image and the factor
    c_k are the original code's (`GaussianRecon(norm=True)` times the confidence, `models/network.py`); the seed
    names the step "Gaussian Conv." without details. With the original variance 0.05 px² (σ ≈ 0.22 px) the
    map is a sharp sub-pixel splat: a keypoint on a pixel puts ≈ 1 − 4e^{−10} of its mass there.

    Numerics: the Gaussian is separable, so G_k is the outer product of a softmax over the rows and one over
    the columns (exactly the normalised 2-D Gaussian); the softmaxes keep it finite for any keypoint, even far
    outside the image or for a tiny variance, and its gradient with respect to the keypoints finite.
    "sum" is computed from G and the descriptors directly (an einsum), so inside a `tf.function` that only
    uses it the `[B, K, H, W, d]` tensor "per_keypoint" is never materialised.

    Args:
        keypoints: float `[B, K, 2]` (row, col), pixel-index units. Differentiable.
        descriptors: float `[B, K, d]`. Differentiable.
        confidences: float `[B, K]`, e.g. the encoder's "scores". Differentiable.
        height, width: H, W of the output, python ints >= 1 (or scalar int tensors).
        variance: v > 0 in px², python float or scalar tensor (original: 0.05; not in the seed).

    Returns:
        dict, float32 (float64 if any input is float64):
          "maps" `[B, K, H, W]`: G_k, each summing to c_k over the image;
          "per_keypoint" `[B, K, H, W, d]`: R_k = d_k ⊗ G_k (input of the alpha-blending decoder);
          "sum" `[B, H, W, d]`: F̃ = Σ_k R_k (input of the plain decoder).

    Raises:
        ValueError: if a tensor is not float or has the wrong shape, K or the batch sizes differ (when static),
            `height`/`width` is not a positive int, or `variance` is not positive (when known).
    """
    keypoints = _as_float("keypoints", keypoints, 3, "[B, K, 2]")
    descriptors = _as_float("descriptors", descriptors, 3, "[B, K, d]")
    confidences = _as_float("confidences", confidences, 2, "[B, K]")
    if keypoints.shape[2] is not None and keypoints.shape[2] != 2:
        raise ValueError(f"keypoints must have shape [B, K, 2] of (row, col); got shape {keypoints.shape}")
    for name, value in (("descriptors", descriptors), ("confidences", confidences)):
        _check_batch("keypoints", keypoints, name, value)
        if keypoints.shape[1] is not None and value.shape[1] is not None and keypoints.shape[1] != value.shape[1]:
            raise ValueError(
                f"keypoints and {name} must have the same number of keypoints K; got {keypoints.shape} and "
                f"{value.shape}"
            )
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or (isinstance(value, numbers.Real) and
                                       (not isinstance(value, numbers.Integral) or value < 1)):
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    dtype = _common_dtype(keypoints, descriptors, confidences)
    keypoints, descriptors, confidences = (tf.cast(x, dtype) for x in (keypoints, descriptors, confidences))
    variance = _positive_scalar("variance", variance, dtype)

    rows = tf.range(tf.cast(height, tf.int32), dtype=tf.int32)  # [H]
    cols = tf.range(tf.cast(width, tf.int32), dtype=tf.int32)  # [W]
    row_logits = -0.5 * tf.square(tf.cast(rows, dtype) - keypoints[..., 0:1]) / variance  # [B, K, H]
    col_logits = -0.5 * tf.square(tf.cast(cols, dtype) - keypoints[..., 1:2]) / variance  # [B, K, W]
    row_weights = tf.nn.softmax(row_logits, axis=-1)  # [B, K, H], sums to 1
    col_weights = tf.nn.softmax(col_logits, axis=-1)  # [B, K, W]
    maps = row_weights[..., :, None] * col_weights[..., None, :] * confidences[..., None, None]  # [B, K, H, W]
    per_keypoint = maps[..., None] * descriptors[:, :, None, None, :]  # [B, K, H, W, d]
    total = tf.einsum("bkhw,bkd->bhwd", maps, descriptors)  # [B, H, W, d]
    return {"maps": maps, "per_keypoint": per_keypoint, "sum": total}


# === Prototypes (A.2; the original's assignment) ===================================================================


def assign_prototypes(descriptors, prototypes, temperature=20.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft and hard assignment of descriptors to prototypes, as the original code (`models/network.py`).

    dist_m = mean over the d channels of (x − p_m)²; the soft assignment is softmin(temperature · dist) over the
    M prototypes (the original's hard-coded 20); the hard label is the nearest prototype (smallest ℓ2 distance,
    Table 7 step 1), which is the argmax of the soft assignment. The cluster loss of the feature step is
    −mean log probabilities[label].

    Args:
        descriptors: float `[..., d]` (TUSK: `[B, K, d]` unit descriptors). Differentiable.
        prototypes: float `[M, d]` (TUSK: unit prototypes). Differentiable.
        temperature: > 0, python float or scalar tensor. Default 20 (original code; not in the seed).

    Returns:
        (probabilities, labels): float `[..., M]` summing to 1 over M (float32, float64 for float64 inputs), and
        int32 `[...]` in [0, M).

    Raises:
        ValueError: if a tensor is not float, `prototypes` is not rank 2, `descriptors` has rank < 1, d differs
            (when static), or `temperature` is not positive (when known).
    """
    descriptors = _as_float("descriptors", descriptors, None, "[..., d]")
    prototypes = _as_float("prototypes", prototypes, 2, "[M, d]")
    _check_depth(descriptors, prototypes)
    dtype = _common_dtype(descriptors, prototypes)
    descriptors, prototypes = tf.cast(descriptors, dtype), tf.cast(prototypes, dtype)
    temperature = _positive_scalar("temperature", temperature, dtype)
    distances = tf.reduce_mean(tf.square(descriptors[..., None, :] - prototypes), axis=-1)  # [..., M]
    probabilities = tf.nn.softmax(-temperature * distances, axis=-1)  # [..., M]
    labels = tf.argmin(distances, axis=-1, output_type=tf.int32)  # [...]
    return probabilities, labels


def mixing_ratios(descriptors, prototypes, labels, exploration=0.0, variance_about: str = "mean") -> tf.Tensor:
    """The prototype GMM's mixture weights π (appendix A.2, eqs. 7-8; Table 7 step 1).

        r_m = |D_m| / N,   α_m = r_m + exploration + Var({σ_1, …, σ_M}),   π_m = α_m / Σ_m' α_m'

    with D_m the descriptors labelled m, σ_m their variance (σ_m = 1 for a prototype without descriptors, as the
    seed says), and Var the population variance over the M prototypes (the original's `torch.mean` of squared
    deviations). σ_m is the mean over the d channels of the population variance of D_m, i.e.
    mean over D_m and channels of (x − centre_m)², with

    * `variance_about="mean"` (default, the seed's "variance of D_m"): centre_m the mean of D_m;
    * `variance_about="prototype"` (the original `get_cluster_ratio`): centre_m = p_m, the prototype.

    The seed does not say how the variance of a set of d-vectors becomes one number; the mean over channels
    (rather than, e.g., the trace of the covariance, d times larger) is the original's scale, and it sets
    how much the empty prototypes' σ_m = 1 weighs in Var({σ_m}).

    `exploration=0.0` is eq. 7; the original code adds 0.01 (its `count + N·(0.01 + Var)` normalised is
    `r_m + 0.01 + Var`): `exploration=0.01`. The result carries gradients (into the descriptors and, with
    `variance_about="prototype"`, the prototypes) but TUSK only uses it through the integer `sample_counts`.

    Args:
        descriptors: float `[..., d]`, flattened to N = (product of the leading sizes) >= 1 points.
        prototypes: float `[M, d]`.
        labels: int `[...]` (the leading shape of `descriptors`), each in [0, M): e.g. `assign_prototypes`'s.
        exploration: python float >= 0 added to every α_m.
        variance_about: `"mean"` or `"prototype"`.

    Returns:
        `[M]` π, non-negative, summing to 1; float32 (float64 for float64 inputs).

    Raises:
        ValueError: if a tensor has the wrong dtype or shape, N is 0, a label is outside [0, M) (when known),
            `exploration` is negative, or `variance_about` is unknown.
    """
    if variance_about not in VARIANCE_CENTRES:
        raise ValueError(f"variance_about must be one of {VARIANCE_CENTRES}; got {variance_about!r}")
    if isinstance(exploration, bool) or not isinstance(exploration, numbers.Real) or not 0 <= exploration < np.inf:
        raise ValueError(f"exploration must be a python float >= 0; got {exploration!r}")
    descriptors = _as_float("descriptors", descriptors, None, "[..., d]")
    prototypes = _as_float("prototypes", prototypes, 2, "[M, d]")
    _check_depth(descriptors, prototypes)
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise ValueError(f"labels must be an integer tensor; got dtype {labels.dtype.name}")
    if labels.shape.rank != descriptors.shape.rank - 1 or not labels.shape.is_compatible_with(descriptors.shape[:-1]):
        raise ValueError(
            f"labels must have the leading shape of descriptors, {descriptors.shape[:-1]}; got {labels.shape}"
        )
    if descriptors.shape[:-1].num_elements() == 0:
        raise ValueError(f"descriptors must hold at least one point; got shape {descriptors.shape}")
    dtype = _common_dtype(descriptors, prototypes)
    depth = tf.shape(descriptors)[-1]
    points = tf.reshape(tf.cast(descriptors, dtype), [-1, depth])  # [N, d]
    prototypes = tf.cast(prototypes, dtype)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])  # [N]
    num_prototypes = tf.shape(prototypes)[0]
    labels = _check_labels(labels, prototypes.shape[0], num_prototypes)

    counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, dtype), labels, num_prototypes)  # [M]
    safe_counts = tf.maximum(counts, 1.0)  # empty prototypes: their σ is replaced below
    if variance_about == "mean":
        centres = tf.math.unsorted_segment_sum(points, labels, num_prototypes) / safe_counts[:, None]  # [M, d]
    else:
        centres = prototypes
    # Two passes (centre, then squared deviations): no cancellation as in E[x²] − E[x]².
    squared = tf.reduce_mean(tf.square(points - tf.gather(centres, labels)), axis=-1)  # [N]
    sigma = tf.math.unsorted_segment_sum(squared, labels, num_prototypes) / safe_counts  # [M]
    sigma = tf.where(counts > 0, sigma, tf.ones_like(sigma))  # σ_m = 1 for empty prototypes (seed)
    spread = tf.reduce_mean(tf.square(sigma - tf.reduce_mean(sigma)))  # Var({σ_m}), population
    alpha = counts / tf.cast(tf.shape(points)[0], dtype) + tf.constant(exploration, dtype) + spread  # [M], eq. 7
    return alpha / tf.reduce_sum(alpha)  # eq. 8; Σ α >= Σ r = 1 > 0


def sample_counts(ratios, num_samples: int) -> tf.Tensor:
    """How many GMM samples each prototype gets by the original code's rule (`get_sampled_prototypes`).

    count_m = floor(π_m · N) for m < M − 1, and the last prototype takes the remainder N − Σ_{m<M−1} count_m,
    so the counts sum to N exactly. The floors are taken in float64. (Should float rounding of π make the
    floors of the first prototypes add up to more than N, they are cut back in order so that none is
    negative; for π summing to 1 this does not happen in practice.) Not differentiable.

    The rule is biased towards the last prototype: every floor loses up to one sample and the last one
    collects them all. When N < M and π is near uniform (every π_m · N < 1), the last prototype gets all N
    samples and the sliced Wasserstein loss moves it alone (the collapse docs/tusk.md measured). Table 7's
    "π_m × N samples" rounded without that bias is `systematic_counts`, the default of `sample_prototypes`.

    Args:
        ratios: float `[M]` π, non-negative, summing to 1 (e.g. `mixing_ratios`).
        num_samples: N >= 1, a python int or a scalar integer tensor (TUSK: B·K, the number of descriptors; a
            tensor inside a training step whose batch size is only known at run time).

    Returns:
        int32 `[M]`, non-negative, summing to N.

    Raises:
        ValueError: if `num_samples` is not a positive int, `ratios` is not a float `[M]` tensor with M >= 1,
            or (when its values are known) has a negative entry or does not sum to 1 within 1e-3.
    """
    num_samples = positive_count("num_samples", num_samples)
    ratios = _checked_ratios(ratios)
    floors = tf.cast(tf.floor(tf.cast(ratios, tf.float64) * tf.cast(num_samples, tf.float64)), tf.int32)  # [M]
    ends = tf.minimum(tf.cumsum(floors), num_samples)  # [M], where each prototype's block ends
    return _counts_from_ends(ends, num_samples)


def systematic_counts(ratios, num_samples: int, offset) -> tf.Tensor:
    """Table 7's "π_m × N samples" of each prototype, rounded without bias (systematic sampling).

    With C_m = N · Σ_{j<=m} π_j (C_0 = 0) and one offset u in [0, 1), the N points u, u + 1, …, u + N − 1
    go to the prototype whose interval [C_{m−1}, C_m) holds them:

        count_m = ceil(C_m − u) − ceil(C_{m−1} − u),

    so every count_m is floor(π_m N) or ceil(π_m N), the counts sum to N, and for u ~ U[0, 1) the expected
    count is exactly π_m N (E ceil(a − u) = a). It is the standard low-variance way to draw N samples of a
    mixture with weights π (eq. 6): as N independent draws of the component would, in expectation, but
    without their spread. Unlike the original's floor rule (`sample_counts`), no prototype is favoured: with
    N < M and uniform π, the N samples go to N prototypes spread along [0, M) by u. Not differentiable.

    Args:
        ratios: float `[M]` π, non-negative, summing to 1.
        num_samples: N >= 1, a python int or a scalar integer tensor.
        offset: u, a python float or scalar tensor in [0, 1) (`sample_prototypes` draws it from its seed).

    Returns:
        int32 `[M]`, non-negative, summing to N, each within 1 of π_m N.

    Raises:
        ValueError: as `sample_counts`, and if `offset` is known and outside [0, 1).
    """
    num_samples = positive_count("num_samples", num_samples)
    ratios = _checked_ratios(ratios)
    offset = tf.cast(offset, tf.float64)
    if offset.shape.rank != 0:
        raise ValueError(f"offset must be a scalar in [0, 1); got shape {offset.shape}")
    static = tf.get_static_value(offset)
    if static is not None and not 0 <= float(static) < 1:
        raise ValueError(f"offset must be in [0, 1); got {float(static)!r}")
    cumulative = tf.cumsum(tf.cast(ratios, tf.float64)) * tf.cast(num_samples, tf.float64)  # [M], C_m
    ends = tf.clip_by_value(tf.cast(tf.math.ceil(cumulative - offset), tf.int32), 0, num_samples)  # [M]
    return _counts_from_ends(ends, num_samples)


def _counts_from_ends(ends, num_samples) -> tf.Tensor:
    """Counts of M consecutive blocks from their ends `[M]` (non-decreasing, <= N); the last block ends at N."""
    ends = tf.concat([ends[:-1], tf.reshape(num_samples, [1])], axis=0)  # the last block ends at N: the remainder
    starts = tf.concat([[0], ends[:-1]], axis=0)  # [M]
    return ends - starts  # [M]


def _checked_ratios(ratios) -> tf.Tensor:
    """`ratios` as a float `[M]` tensor, M >= 1, non-negative and summing to 1 when known."""
    ratios = _as_float("ratios", ratios, 1, "[M]")
    if ratios.shape[0] == 0:
        raise ValueError("ratios must hold at least one prototype (M >= 1); got shape [0]")
    static = tf.get_static_value(ratios)
    if static is not None:
        if np.any(~(static >= 0)):
            raise ValueError(f"ratios must be non-negative; got {static.tolist()}")
        if abs(float(np.sum(static, dtype=np.float64)) - 1.0) > 1e-3:
            raise ValueError(f"ratios must sum to 1 (within 1e-3); they sum to {float(np.sum(static)):.6g}")
    elif not tf.executing_eagerly():
        check = tf.debugging.assert_non_negative(ratios, message="ratios must be non-negative")
        with tf.control_dependencies([check]):
            ratios = tf.identity(ratios)
    return ratios


def sample_prototypes(prototypes, ratios, num_samples: int, seed, variance=4e-4, normalize: bool = False,
                      allocation: str = "systematic") -> tf.Tensor:
    """N samples of the prototype GMM, Σ_m π_m N(p_m, variance·I) (appendix A.2, eq. 6; Table 7 step 2).

    Prototype m contributes count_m samples p_m + ε, ε ~ N(0, variance·I), as Table 7 ("append π_m × N
    samples"): with `allocation="systematic"` (default) count_m is π_m N rounded without bias
    (`systematic_counts`, its offset drawn from `seed`); with `allocation="original"` the original code's
    floor rule, the remainder to the last prototype (`sample_counts`; it gives every sample to the last
    prototype when all π_m N < 1). The rows are grouped by prototype, in prototype order: rows
    [Σ_{m'<m} count_m', Σ_{m'<=m} count_m') belong to p_m (the order does not matter to the sliced Wasserstein
    loss). `normalize=True` projects each sample onto the unit sphere as the original code does
    (ubc-vision/TUSK `models/loss.py`, `get_sampled_prototypes`); eq. 6 does not (default False). Gradients
    flow into `prototypes` (each sample is its prototype plus noise), not into `ratios`.

    Args:
        prototypes: float `[M, d]` (TUSK: the unit prototypes).
        ratios: float `[M]` mixture weights π (`mixing_ratios`).
        num_samples: N >= 1, a python int or a scalar integer tensor (TUSK: B·K).
        seed: python int, or an integer tensor of shape [] or [2] (e.g. `[seed, step]`), for TensorFlow's
            stateless RNG: the same samples for the same seed, eagerly and in a `tf.function`.
        variance: Σ's diagonal, > 0 (Table 10: 4e-4 for every dataset, the original's noise std 1/50).
        normalize: project the samples onto the unit sphere (original code).
        allocation: `"systematic"` or `"original"`, how the N samples are shared among the prototypes.

    Returns:
        `[N, d]` samples, float32 (float64 for float64 prototypes).

    Raises:
        ValueError: for the cases of `sample_counts`, if `prototypes` is not a float `[M, d]` tensor with the M
            of `ratios`, `variance` is not positive, `seed` is not an int or an integer `[]`/`[2]` tensor, or
            `allocation` is unknown.
    """
    if allocation not in SAMPLE_ALLOCATIONS:
        raise ValueError(f"allocation must be one of {SAMPLE_ALLOCATIONS}; got {allocation!r}")
    prototypes = _as_float("prototypes", prototypes, 2, "[M, d]")
    seed = _stateless_seed(seed)
    if allocation == "systematic":
        # The offset from a seed derived from `seed`: the noise below keeps `seed` itself.
        offset = tf.random.stateless_uniform([], seed=tf.random.experimental.stateless_fold_in(seed, 1),
                                             dtype=tf.float64)
        counts = systematic_counts(ratios, num_samples, offset)  # [M]
    else:
        counts = sample_counts(ratios, num_samples)  # [M]
    if prototypes.shape[0] is not None and counts.shape[0] is not None and prototypes.shape[0] != counts.shape[0]:
        raise ValueError(
            f"prototypes and ratios must have the same M; got prototypes {prototypes.shape} and ratios "
            f"{tf.convert_to_tensor(ratios).shape}"
        )
    dtype = tf.float64 if prototypes.dtype == tf.float64 else tf.float32
    prototypes = tf.cast(prototypes, dtype)
    variance = _positive_scalar("variance", variance, dtype)
    components = tf.repeat(tf.range(tf.shape(prototypes)[0]), counts)  # [N], prototype index of every sample
    num_samples = positive_count("num_samples", num_samples)
    components = tf.reshape(components, [num_samples])  # the static N (when it is a python int)
    noise = tf.random.stateless_normal([num_samples, tf.shape(prototypes)[1]], seed=seed, dtype=dtype)  # [N, d]
    samples = tf.gather(prototypes, components) + tf.sqrt(variance) * noise  # [N, d]
    if normalize:
        samples = samples / tf.norm(samples, axis=1, keepdims=True)  # a Gaussian sample is 0 with probability 0
    return samples


# === U-Net upsampling =============================================================================================


def upsample_bilinear(images, align_corners: bool = False) -> tf.Tensor:
    """Doubles H and W by bilinear interpolation, the U-Net's upsampling.

    `align_corners=False` (default) is `tf.image.resize(..., "bilinear")` — what
    `keras.layers.UpSampling2D(interpolation="bilinear")` runs on the TensorFlow backend — with half-pixel
    centres: output pixel i reads input coordinate (i + 0.5)/2 − 0.5, clamped to [0, n − 1], so the output is
    the input's continuous image resampled on a twice finer grid covering the same extent. `align_corners=True`
    is PyTorch's `Upsample(scale_factor=2, mode="bilinear", align_corners=True)` of the original U-Net (and
    TF1's `resize_bilinear(align_corners=True)`): output pixel i reads input coordinate i·(n − 1)/(2n − 1), so
    the first and last pixel centres coincide and the grid is stretched by (2n − 1)/(2n − 2) relative to the
    skip connection it is concatenated with (a position-dependent misalignment of up to ¼ input pixel at the
    borders). Both are fixed linear maps of two taps per axis; for a network trained from scratch the choice
    is not expected to matter (not measured); it matters to reproduce the original's outputs from its weights.

    Args:
        images: float `[B, h, w, C]`.
        align_corners: see above.

    Returns:
        `[B, 2h, 2w, C]` in the dtype of `images`.

    Raises:
        ValueError: if `images` is not a float rank-4 tensor.
    """
    images = _as_float("images", images, 4, "[B, h, w, C]")
    shape = tf.shape(images)
    size = tf.stack([2 * shape[1], 2 * shape[2]])
    if align_corners:
        resized = tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=True, half_pixel_centers=False)
    else:
        resized = tf.image.resize(images, size, method="bilinear")
    return tf.cast(resized, images.dtype)  # both ops return float32 for 16-bit inputs


# === Argument checks ===============================================================================================


def _as_float(name: str, x, rank, expected: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a float tensor {expected}; got dtype {x.dtype.name}")
    if rank is None:
        if x.shape.rank is None or x.shape.rank < 1:
            raise ValueError(f"{name} must have shape {expected} (rank >= 1); got shape {x.shape}")
    elif x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {expected} (rank {rank}); got shape {x.shape}")
    return x


def _common_dtype(*tensors) -> tf.DType:
    """float64 if any input is float64, else float32 (16-bit inputs are computed in float32)."""
    return tf.float64 if any(t.dtype == tf.float64 for t in tensors) else tf.float32


def _check_batch(name_a, a, name_b, b) -> None:
    if a.shape[0] is not None and b.shape[0] is not None and a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size B; got {a.shape} and {b.shape}")


def _check_depth(descriptors, prototypes) -> None:
    if descriptors.shape[-1] is not None and prototypes.shape[1] is not None and \
            descriptors.shape[-1] != prototypes.shape[1]:
        raise ValueError(
            f"descriptors and prototypes must have the same size d; got descriptors {descriptors.shape} and "
            f"prototypes {prototypes.shape}"
        )


def positive_count(name: str, value):
    """A count argument N >= 1: a python int (checked, returned as is) or a scalar integer tensor (returned as
    int32; a `ValueError` when its value is known and < 1, a run-time assertion in graphs otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a python int >= 1 or a scalar integer tensor; got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"{name} must be a python int >= 1 or a scalar integer tensor; got {value!r}")
        return int(value)
    if isinstance(value, (float, np.floating)) or not hasattr(value, "dtype"):
        raise ValueError(f"{name} must be a python int >= 1 or a scalar integer tensor; got {value!r}")
    value = tf.convert_to_tensor(value)
    if not value.dtype.is_integer or value.shape.rank != 0:
        raise ValueError(f"{name} must be a python int >= 1 or a scalar integer tensor; got {value.dtype.name} "
                         f"{value.shape}")
    static = tf.get_static_value(value)
    if static is not None:
        if static < 1:
            raise ValueError(f"{name} must be >= 1; got {int(static)}")
        return int(static)
    value = tf.cast(value, tf.int32)
    if not tf.executing_eagerly():
        check = tf.debugging.assert_positive(value, message=f"{name} must be >= 1")
        with tf.control_dependencies([check]):
            value = tf.identity(value)
    return value


def _check_kernel_size(kernel_size) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise ValueError(f"kernel_size must be an odd python int >= 1; got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1 (a window centred at the pixel); got {kernel_size}")


def _check_labels(labels, static_m, num_prototypes) -> tf.Tensor:
    """ValueError for labels outside [0, M) when known; a run-time assertion in graphs otherwise."""
    values = tf.get_static_value(labels)
    if values is not None and static_m is not None and values.size:
        if values.min() < 0 or values.max() >= static_m:
            bad = values[(values < 0) | (values >= static_m)][0]
            raise ValueError(f"labels must lie in [0, M) = [0, {static_m}); found {int(bad)}")
        return labels
    if not tf.executing_eagerly():
        checks = [
            tf.debugging.assert_non_negative(labels, message="labels must lie in [0, M); found a negative"),
            tf.debugging.assert_less(labels, num_prototypes, message="labels must lie in [0, M)"),
        ]
        with tf.control_dependencies(checks):
            labels = tf.identity(labels)
    return labels


def _positive_scalar(name: str, value, dtype) -> tf.Tensor:
    """A positive finite scalar as a tensor of `dtype`; ValueError when its value is known and is not."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    if isinstance(value, numbers.Real):
        if not 0.0 < float(value) < np.inf:  # also rejects NaN
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
        return tf.constant(value, dtype)  # a python float at the math's precision (no float32 round trip)
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0:
        raise ValueError(f"{name} must be a scalar; got shape {value.shape}")
    static = tf.get_static_value(value)
    if static is not None and not (0.0 < float(static) < np.inf):  # also rejects NaN
        raise ValueError(f"{name} must be positive and finite; got {static!r}")
    return tf.cast(value, dtype)
