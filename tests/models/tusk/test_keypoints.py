"""TUSK's windowed soft-argmax (appendix A.1, eq. 5) against plain numpy/python references in float64.

The references share no code with the implementation: `eq5_loop` is a double loop over the window's cells with
python's `math.exp` (log-sum-exp shifted, so it also covers tiny τ); `original_zero_pad_conv` follows the
original code's recipe (zero-pad the map, exp(S/τ), correlate with the offset kernels, read at the peak).
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.tusk.keypoints import soft_argmax

H, W = 11, 14  # not square, to catch a row/col swap
CORNERS_AND_EDGES = [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (0, 6), (5, 0), (H - 1, 9), (4, W - 1)]


def eq5_loop(scores, peaks, kernel_size, temperature, border):
    """Eq. 5 cell by cell: Σ c·exp(S[c]/τ) / Σ exp(S[c]/τ) over the window's cells, float64 (row, col).

    border "exclude": only cells inside the image; "zeros": cells outside the image count with S = 0."""
    radius = kernel_size // 2
    out = np.zeros(peaks.shape, np.float64)
    for b in range(peaks.shape[0]):
        for k in range(peaks.shape[1]):
            row0, col0 = int(peaks[b, k, 0]), int(peaks[b, k, 1])
            cells, logits = [], []
            for row in range(row0 - radius, row0 + radius + 1):
                for col in range(col0 - radius, col0 + radius + 1):
                    inside = 0 <= row < scores.shape[1] and 0 <= col < scores.shape[2]
                    if not inside and border == "exclude":
                        continue
                    cells.append((row, col))
                    logits.append(float(scores[b, row, col]) / temperature if inside else 0.0)
            top = max(logits)
            weights = [math.exp(logit - top) for logit in logits]
            total = sum(weights)
            out[b, k, 0] = sum(w * c[0] for w, c in zip(weights, cells)) / total
            out[b, k, 1] = sum(w * c[1] for w, c in zip(weights, cells)) / total
    return out


def original_zero_pad_conv(scores, peaks, kernel_size, temperature):
    """The original code's recipe (ubc-vision/TUSK `SamplePointsDiff.forward`), in numpy float64: zero-pad the
    score map by r, e = exp(S_padded/τ), correlate e with the row-offset, col-offset and ones kernels, and add
    the normalised offsets at the peak to the peak. (The original has τ = 0.2 and returns (x, y).)"""
    radius = kernel_size // 2
    padded = np.exp(np.pad(scores.astype(np.float64), ((0, 0), (radius, radius), (radius, radius))) / temperature)
    out = np.zeros(peaks.shape, np.float64)
    for b in range(peaks.shape[0]):
        for k in range(peaks.shape[1]):
            row, col = peaks[b, k]
            window = padded[b, row:row + kernel_size, col:col + kernel_size]  # padded index = image index + r
            steps = np.arange(kernel_size) - radius
            norm = window.sum()
            out[b, k] = (row + (window * steps[:, None]).sum() / norm, col + (window * steps[None, :]).sum() / norm)
    return out


def random_inputs(seed, batch=3, num_random=4):
    rng = np.random.default_rng(seed)
    scores = rng.random((batch, H, W)).astype(np.float32)
    fixed = np.array(CORNERS_AND_EDGES, np.int32)
    peaks = np.stack([
        np.concatenate([fixed, np.stack([rng.integers(0, H, num_random), rng.integers(0, W, num_random)], -1)])
        for _ in range(batch)
    ]).astype(np.int32)  # [B, K, 2], K = 12: 8 at corners/edges, 4 anywhere
    return scores, peaks


# --- eq. 5 against the numpy loop ---------------------------------------------------------------------------


@pytest.mark.parametrize("border", ["exclude", "zeros"])
@pytest.mark.parametrize("kernel_size", [1, 3, 5, 13, 27])  # 13 > H and 27 > W: windows larger than the image
@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0])
def test_matches_eq5_loop(border, kernel_size, temperature):
    scores, peaks = random_inputs(kernel_size)
    got = soft_argmax(scores, peaks, kernel_size, temperature, border=border)
    assert got.dtype == tf.float32 and got.shape == (3, 12, 2)
    expected = eq5_loop(scores, peaks, kernel_size, temperature, border)
    # float32: (S − max)/τ is within [−20, 0] and rounds at ~20·6e-8 ≈ 1e-6 relative, so weights and the mean
    # offset (at most 13 px) are good to ~1e-5 px; atol 1e-4 leaves a 10× margin.
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-4)
    if border == "exclude":
        got = got.numpy()
        assert np.all(got >= 0) and np.all(got[..., 0] <= H - 1) and np.all(got[..., 1] <= W - 1)


@pytest.mark.parametrize("kernel_size", [3, 13, 21])
def test_zeros_border_matches_original_zero_padded_convolution(kernel_size):
    scores, peaks = random_inputs(100 + kernel_size)
    got = soft_argmax(scores, peaks, kernel_size, 0.2, border="zeros").numpy()
    expected = original_zero_pad_conv(scores, peaks, kernel_size, 0.2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)  # float32 vs float64, as above
    # For scores >= 0 (TUSK's sigmoid) the zero-padded cells never pull a keypoint out of the image.
    assert np.all(got >= 0) and np.all(got[..., 0] <= H - 1) and np.all(got[..., 1] <= W - 1)


def test_borders_differ_as_documented_at_a_corner():
    peaks = np.array([[[0, 0], [H - 1, W - 1]]], np.int32)
    flat = np.zeros((1, H, W), np.float32)
    # A flat map: every window cell has weight 1. "zeros" averages the full (symmetric) window, so returns the
    # peak exactly; "exclude" averages the in-image 11×11 corner blocks of the 21×21 windows: rows 0..10 and
    # cols 0..10 -> (5, 5); rows 0..10 and cols 3..13 -> (5, 8).
    np.testing.assert_array_equal(soft_argmax(flat, peaks, 21, 0.2, border="zeros").numpy(), peaks)
    np.testing.assert_array_equal(soft_argmax(flat, peaks, 21, 0.2).numpy(), [[[5.0, 5.0], [5.0, 8.0]]])
    # Negative scores: the padded 0 now outweighs the image (e^0 vs e^−5), and "zeros" leaves the image,
    # towards the mean of the out-of-image cells of the 5×5 window; "exclude" stays on the in-image cells.
    low = flat - 1.0
    zeros = soft_argmax(low, peaks, 5, 0.2, border="zeros").numpy()
    np.testing.assert_allclose(zeros, eq5_loop(low, peaks, 5, 0.2, "zeros"), atol=1e-5)
    assert np.all(zeros[0, 0] < -0.5) and np.all(zeros[0, 1] > [H - 0.5, W - 0.5])
    np.testing.assert_array_equal(soft_argmax(low, peaks, 5, 0.2).numpy(), [[[1.0, 1.0], [H - 2.0, W - 2.0]]])


def test_interior_peaks_do_not_depend_on_border():
    # Where the window is inside the image both choices are eq. 5 itself.
    scores, _ = random_inputs(7)
    peaks = np.array([[[5, 6], [3, 3], [7, 10]]] * 3, np.int32)  # radius 3 windows fit in 11×14
    exclude = soft_argmax(scores, peaks, 7, 0.3).numpy()
    zeros = soft_argmax(scores, peaks, 7, 0.3, border="zeros").numpy()
    np.testing.assert_array_equal(exclude, zeros)
    np.testing.assert_allclose(exclude, eq5_loop(scores, peaks, 7, 0.3, "exclude"), atol=1e-4)


# --- exactness, limits, stability ---------------------------------------------------------------------------


@pytest.mark.parametrize("border", ["exclude", "zeros"])
def test_one_hot_window_returns_the_peak_exactly(border):
    peaks = np.array([CORNERS_AND_EDGES + [(5, 7)]], np.int32)
    scores = np.zeros((1, H, W), np.float32)
    scores[0, peaks[0, :, 0], peaks[0, :, 1]] = 1.0
    # τ = 1e-3: the other cells' weights are exp(−1000) = 0 in float32 (and float64), so the result is the peak
    # to the last bit (kernel 3 so that the windows of neighbouring peaks hold no other one).
    got = soft_argmax(scores, peaks, 3, 1e-3, border=border).numpy()
    np.testing.assert_array_equal(got, peaks.astype(np.float32))
    # Same with huge scores and τ = 1: exp(1e4) would overflow without the max subtraction.
    got = soft_argmax(scores * 1e4, peaks, 3, 1.0, border=border).numpy()
    np.testing.assert_array_equal(got, peaks.astype(np.float32))


@pytest.mark.parametrize("border", ["exclude", "zeros"])
def test_small_temperature_gives_the_windows_argmax(border):
    rng = np.random.default_rng(3)
    # Distinct scores in (0, 1], at least 1/(H·W) apart: with τ = 1e-4 the runner-up's weight is < e^−64.
    scores = ((rng.permuted(np.tile(np.arange(1, H * W + 1), (2, 1)), axis=1)) / (H * W)).reshape(2, H, W)
    scores = scores.astype(np.float32)
    _, peaks = random_inputs(4, batch=2)  # arbitrary cells, not local maxima
    radius = 2
    expected = np.zeros(peaks.shape, np.float32)
    for b in range(2):
        for k in range(peaks.shape[1]):
            r0, c0 = peaks[b, k]
            rows = slice(max(r0 - radius, 0), r0 + radius + 1)
            cols = slice(max(c0 - radius, 0), c0 + radius + 1)
            window = scores[b, rows, cols]
            r, c = np.unravel_index(np.argmax(window), window.shape)
            expected[b, k] = (rows.start + r, cols.start + c)
    # In-image scores are > 0, so zero-padded cells never win either.
    got = soft_argmax(scores, peaks, 2 * radius + 1, 1e-4, border=border).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # e^−64 × 168 cells × ≤ 2 px ≈ 1e-26


def test_large_scores_are_stable():
    scores, peaks = random_inputs(5)
    large = scores.astype(np.float64) * 1e6  # S/τ up to 1e8: exp() overflows without the max subtraction
    got = soft_argmax(large.astype(np.float32), peaks, 5, 0.01).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, eq5_loop(large, peaks, 5, 0.01, "exclude"), atol=1e-4)


def test_large_temperature_gives_the_window_centroid():
    scores, peaks = random_inputs(6)
    got = soft_argmax(scores, peaks, 5, 1e7).numpy()
    expected = eq5_loop(np.zeros_like(scores), peaks, 5, 1.0, "exclude")  # uniform weights: mean of the cells
    # weights exp(S/1e7) differ from 1 by < 1e-7, i.e. by float32 rounding only.
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for corner, centroid in [((0, 0), (1.0, 1.0)), ((H - 1, W - 1), (H - 2.0, W - 2.0))]:
        index = CORNERS_AND_EDGES.index(corner)
        np.testing.assert_allclose(got[:, index], np.tile(centroid, (3, 1)), atol=1e-5)  # 3×3 in-image cells


# --- gradients ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("border", ["exclude", "zeros"])
def test_gradient_matches_finite_differences_in_float64(border):
    scores, peaks = random_inputs(8, batch=2, num_random=2)
    scores = tf.constant(scores.astype(np.float64))
    rng = np.random.default_rng(9)
    cotangent = rng.normal(size=peaks.shape)  # a random linear functional of the output

    @tf.function(input_signature=[tf.TensorSpec(scores.shape, tf.float64)])  # traced once: ~600 calls below
    def objective(s):
        return tf.reduce_sum(soft_argmax(s, peaks, 5, 0.3, border=border) * cotangent)

    with tf.GradientTape() as tape:
        tape.watch(scores)
        value = objective(scores)
    assert value.dtype == tf.float64
    grad = tape.gradient(value, scores).numpy()
    assert np.all(np.isfinite(grad))

    # Gradient support = the cells of the windows (in-image cells only, clipped at the border).
    support = np.zeros(scores.shape, bool)
    for b in range(2):
        for row, col in peaks[b]:
            support[b, max(row - 2, 0):row + 3, max(col - 2, 0):col + 3] = True
    assert np.all(grad[~support] == 0)
    assert np.mean(grad[support] != 0) > 0.99

    # Central differences, h = 1e-6: the objective is smooth with second derivatives O(1/τ²·px) ≈ 100, so the
    # truncation error is ~h²·1e3 ≈ 1e-9, round-off ~ε·|f|/h ≈ 1e-16·10/1e-6 = 1e-9; atol 1e-7.
    numeric = np.zeros(scores.shape)
    base = scores.numpy()
    for index in zip(*np.nonzero(support)):
        plus, minus = base.copy(), base.copy()
        plus[index] += 1e-6
        minus[index] -= 1e-6
        numeric[index] = (objective(plus).numpy() - objective(minus).numpy()) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=0, atol=1e-7)


# --- execution modes ----------------------------------------------------------------------------------------


def test_eager_tf_function_and_xla_agree():
    signature = [tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None, None, 2], tf.int32)]

    @tf.function(input_signature=signature)
    def graph(scores, peaks):
        with tf.GradientTape() as tape:
            tape.watch(scores)
            keypoints = soft_argmax(scores, peaks, 5, 0.2)
        return keypoints, tape.gradient(keypoints, scores)

    @tf.function(jit_compile=True)
    def xla(scores, peaks):
        return soft_argmax(scores, peaks, 5, 0.2)

    for seed, batch in ((10, 1), (11, 3)):  # two batch sizes through the same concrete function
        scores, peaks = random_inputs(seed, batch=batch, num_random=1 + seed % 3)
        scores = tf.constant(scores)
        with tf.GradientTape() as tape:
            tape.watch(scores)
            eager = soft_argmax(scores, peaks, 5, 0.2)
        eager_grad = tape.gradient(eager, scores)
        keypoints, grad = graph(scores, peaks)
        # Same ops in the same order; rtol 1e-6 allows for a fused or reordered reduction.
        np.testing.assert_allclose(keypoints.numpy(), eager.numpy(), rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), eager_grad.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(xla(scores, peaks).numpy(), eager.numpy(), rtol=1e-6)
        np.testing.assert_allclose(eager.numpy(), eq5_loop(scores.numpy(), peaks, 5, 0.2, "exclude"), atol=1e-4)
    # Another image size through the same graph.
    scores = np.random.default_rng(12).random((2, 6, 9)).astype(np.float32)
    peaks = np.array([[[0, 0], [5, 8]], [[3, 4], [5, 0]]], np.int32)
    keypoints, _ = graph(scores, peaks)
    np.testing.assert_allclose(keypoints.numpy(), eq5_loop(scores, peaks, 5, 0.2, "exclude"), atol=1e-4)


def test_dtypes_and_tensor_temperature():
    scores, peaks = random_inputs(13)
    reference = soft_argmax(scores, peaks, 5, 0.5).numpy()
    for temperature in (tf.constant(0.5), tf.constant(0.5, tf.float64), np.float32(0.5)):
        np.testing.assert_allclose(soft_argmax(scores, peaks, 5, temperature).numpy(), reference, rtol=1e-6)
    got = soft_argmax(tf.constant(scores, tf.bfloat16), peaks.astype(np.int64), 5, 0.5)
    assert got.dtype == tf.float32
    # bfloat16 keeps 8 bits: scores move by up to 2^−9 ≈ 2e-3, weights by 2e-3/0.5 relative: offsets by ~1e-2 px.
    np.testing.assert_allclose(got.numpy(), reference, atol=2e-2)
    got64 = soft_argmax(scores.astype(np.float64), peaks, 5, 0.5)
    assert got64.dtype == tf.float64
    np.testing.assert_allclose(got64.numpy(), eq5_loop(scores, peaks, 5, 0.5, "exclude"), rtol=0, atol=1e-12)


# --- errors -------------------------------------------------------------------------------------------------


def test_errors():
    scores, peaks = random_inputs(14)
    for bad in (4, 0, -3, 2.0, True, "5"):
        with pytest.raises(ValueError, match="kernel_size must be"):
            soft_argmax(scores, peaks, bad, 0.2)
    for bad in (0.0, -0.2, float("nan"), float("inf"), tf.constant(0.0), False):
        with pytest.raises(ValueError, match="temperature must be"):
            soft_argmax(scores, peaks, 5, bad)
    with pytest.raises(ValueError, match="temperature must be a scalar"):
        soft_argmax(scores, peaks, 5, tf.constant([0.2]))
    with pytest.raises(ValueError, match="border must be one of"):
        soft_argmax(scores, peaks, 5, 0.2, border="reflect")
    with pytest.raises(ValueError, match=r"scores must have shape \[B, H, W\].*\(11, 14\)"):
        soft_argmax(scores[0], peaks, 5, 0.2)
    with pytest.raises(ValueError, match="scores must be a float tensor"):
        soft_argmax(scores.astype(np.int32), peaks, 5, 0.2)
    with pytest.raises(ValueError, match=r"peaks must have shape \[B, K, 2\].*\(3, 12, 3\)"):
        soft_argmax(scores, np.zeros((3, 12, 3), np.int32), 5, 0.2)
    with pytest.raises(ValueError, match=r"peaks must have shape \[B, K, 2\]"):
        soft_argmax(scores, peaks[0], 5, 0.2)
    with pytest.raises(ValueError, match="peaks must be an integer tensor"):
        soft_argmax(scores, peaks.astype(np.float32), 5, 0.2)
    with pytest.raises(ValueError, match="same batch size"):
        soft_argmax(scores, peaks[:2], 5, 0.2)
    for row, col, what in ((-1, 0, "found"), (0, -2, "found"), (H, 0, f"row {H}"), (0, W, f"col {W}")):
        bad = peaks.copy()
        bad[1, 3] = (row, col)
        with pytest.raises(ValueError, match=f"peaks must lie inside the image.*{what}"):
            soft_argmax(scores, bad, 5, 0.2)


def test_peak_outside_the_image_fails_at_run_time_in_a_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None]), tf.TensorSpec([None, None, 2], tf.int32)])
    def graph(scores, peaks):
        return soft_argmax(scores, peaks, 3, 0.2)

    scores = np.zeros((1, 4, 5), np.float32)
    # Flat map, corner peak, 3×3 window: the centroid of the 2×2 in-image cells.
    np.testing.assert_array_equal(graph(scores, [[[3, 4]]]).numpy(), [[[2.5, 3.5]]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="peaks must lie inside the image"):
        graph(scores, [[[4, 0]]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="peaks must lie inside the image"):
        graph(scores, [[[0, -1]]])
