"""TUSK's pure functions (`tfobj/models/tusk/tusk_math.py`) against plain numpy/python references.

The references share no code with the implementation: NMS and top-K by brute force over every pixel's clipped
window and a python sort; bilinear sampling and the Gaussian splat by loops over pixels; eqs. 7-8 transcribed
in plain python; the original code's `get_cluster_ratio` transcribed in numpy; the original's sample counts by
the rule "floor, remainder to the last", the systematic ones by a python loop over the offset's points and their
mean over a grid of offsets (exactly π·N); the GMM samples by their moments, with tolerances from their standard
errors.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.tusk.tusk_math import (assign_prototypes, gaussian_splat, local_maxima, mixing_ratios,
                                         sample_counts, sample_points, sample_prototypes, select_peaks,
                                         systematic_counts, upsample_bilinear)

H, W = 11, 14  # not square, to catch a row/col swap


# --- NMS and top-K ------------------------------------------------------------------------------------------


def brute_force_peaks(scores, kernel_size, num_keypoints):
    """Every pixel against the maximum of its clipped window; maxima by (−score, raster index), then the
    non-maxima by (−score, raster index). Returns (mask, peaks, valid)."""
    batch, height, width = scores.shape
    radius = kernel_size // 2
    mask = np.zeros(scores.shape, bool)
    peaks = np.zeros((batch, num_keypoints, 2), np.int64)
    valid = np.zeros((batch, num_keypoints), bool)
    for b in range(batch):
        maxima, others = [], []
        for i in range(height):
            for j in range(width):
                window = scores[b, max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1]
                mask[b, i, j] = scores[b, i, j] >= window.max()
                (maxima if mask[b, i, j] else others).append((-float(scores[b, i, j]), i * width + j, i, j))
        ranked = sorted(maxima)[:num_keypoints]
        num_valid = len(ranked)
        ranked += sorted(others)[:num_keypoints - num_valid]
        peaks[b] = [(i, j) for _, _, i, j in ranked]
        valid[b, :num_valid] = True
    return mask, peaks, valid


def bump_map(batch, centres, width=10.0):
    """Smooth maps with one Gaussian bump per listed centre: few local maxima for a large window."""
    rows, cols = np.mgrid[0:H, 0:W]
    maps = np.zeros((batch, H, W))
    for b in range(batch):
        for height, (r, c) in zip((1.0, 0.6), centres[b]):
            maps[b] += height * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / width)
    return maps.astype(np.float32)


@pytest.mark.parametrize("case", ["noise_3", "noise_5", "quantised_3", "bumps_13", "constant_5"])
def test_nms_and_top_k_match_brute_force(case):
    rng = np.random.default_rng(len(case))
    if case.startswith("noise"):
        scores = rng.random((3, H, W)).astype(np.float32)
    elif case.startswith("quantised"):  # plateaus and ties, resolved by raster order
        scores = (rng.integers(0, 4, (3, H, W)) / 4).astype(np.float32)
    elif case.startswith("bumps"):  # 1 or 2 maxima per image: the fill path
        scores = bump_map(3, [[(3, 4)], [(1, 1), (9, 12)], [(10, 13)]])
    else:  # every pixel is a maximum
        scores = np.full((2, H, W), 0.5, np.float32)
    kernel_size = int(case.rsplit("_", 1)[1])
    num_keypoints = 6
    mask, peaks, valid = brute_force_peaks(scores, kernel_size, num_keypoints)
    np.testing.assert_array_equal(local_maxima(scores, kernel_size).numpy(), mask)
    got_peaks, got_valid = select_peaks(scores, kernel_size, num_keypoints)
    assert got_peaks.dtype == tf.int32 and got_peaks.shape == (len(scores), num_keypoints, 2)
    np.testing.assert_array_equal(got_peaks.numpy(), peaks)
    np.testing.assert_array_equal(got_valid.numpy(), valid)
    if case.startswith("bumps"):
        np.testing.assert_array_equal(valid.sum(1), [1, 2, 1])  # the case exercises the fill path
        assert got_peaks.numpy()[0, 0].tolist() == [3, 4] and got_peaks.numpy()[2, 0].tolist() == [10, 13]


def test_fewer_maxima_than_k_fill_with_the_next_best_non_maxima():
    # A 3×3 map and a 3×3 window: every window contains the centre (0.9), the only maximum.
    scores = np.array([[[0.1, 0.2, 0.3], [0.4, 0.9, 0.5], [0.6, 0.7, 0.8]]], np.float32)
    peaks, valid = select_peaks(scores, 3, 4)
    # (1, 1), then the non-maxima by decreasing score: 0.8, 0.7, 0.6
    np.testing.assert_array_equal(peaks.numpy(), [[[1, 1], [2, 2], [2, 1], [2, 0]]])
    np.testing.assert_array_equal(valid.numpy(), [[True, False, False, False]])


def test_select_peaks_errors():
    scores = np.zeros((1, H, W), np.float32)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        select_peaks(scores, 4, 3)
    with pytest.raises(ValueError, match="num_keypoints must be at most H·W = 154"):
        select_peaks(scores, 3, H * W + 1)
    with pytest.raises(ValueError, match="num_keypoints must be a python int >= 1"):
        select_peaks(scores, 3, 0)
    with pytest.raises(ValueError, match=r"scores must have shape \[B, H, W\]"):
        select_peaks(scores[0], 3, 2)
    with pytest.raises(ValueError, match="scores must be a float tensor"):
        local_maxima(scores.astype(np.int32), 3)


# --- point sampling -----------------------------------------------------------------------------------------


def bilinear_loop(maps, points):
    """Bilinear interpolation pixel by pixel, points clamped to [0, H − 1] × [0, W − 1], float64."""
    batch, height, width, channels = maps.shape
    out = np.zeros(points.shape[:2] + (channels,))
    for b in range(batch):
        for k in range(points.shape[1]):
            row = min(max(float(points[b, k, 0]), 0.0), height - 1.0)
            col = min(max(float(points[b, k, 1]), 0.0), width - 1.0)
            for i in range(height):
                for j in range(width):
                    weight = max(0.0, 1 - abs(row - i)) * max(0.0, 1 - abs(col - j))  # the tent kernel
                    out[b, k] += weight * maps[b, i, j]
    return out


def test_bilinear_sampling_matches_loop():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, H, W, 5))
    inside = np.stack([rng.uniform(0, H - 1, (2, 6)), rng.uniform(0, W - 1, (2, 6))], -1)
    special = np.array([[[0, 0], [H - 1, W - 1], [3, 7], [H - 1, 2.5], [4.25, W - 1], [-2.0, 20.0]]] * 2)
    points = np.concatenate([inside, special], 1)  # integers, last row/col, and outside (clamped)
    got = sample_points(maps, points)
    assert got.dtype == tf.float64 and got.shape == (2, 12, 5)
    np.testing.assert_allclose(got.numpy(), bilinear_loop(maps, points), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.numpy()[:, 8], maps[:, 3, 7])  # an integer point reads its pixel exactly
    got32 = sample_points(maps.astype(np.float32), points.astype(np.float32))
    assert got32.dtype == tf.float32
    np.testing.assert_allclose(got32.numpy(), bilinear_loop(maps, points.astype(np.float32)), atol=1e-5)


def test_truncate_sampling_reads_the_truncated_pixel():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(2, H, W, 3)).astype(np.float32)
    points = np.stack([rng.uniform(0, H - 1, (2, 7)), rng.uniform(0, W - 1, (2, 7))], -1).astype(np.float32)
    points[0, 0] = [H - 1, W - 1]
    points[0, 1] = [2.9999, 0.0]
    got = sample_points(maps, points, method="truncate").numpy()
    expected = np.stack([maps[b, points[b, :, 0].astype(int), points[b, :, 1].astype(int)] for b in range(2)])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[0, 1], maps[0, 2, 0])


def test_bilinear_sampling_gradients():
    rng = np.random.default_rng(2)
    maps = tf.constant(rng.normal(size=(1, H, W, 2)))
    points = tf.constant([[[2.3, 5.6], [7.8, 0.4]]], tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([maps, points])
        value = tf.reduce_sum(sample_points(maps, points)[..., 0])
    # w.r.t. the map: the bilinear weights on the four corners, nothing elsewhere
    grad_maps = tape.gradient(value, maps).numpy()[0, :, :, 0]
    expected = np.zeros((H, W))
    expected[2, 5], expected[2, 6], expected[3, 5], expected[3, 6] = 0.7 * 0.4, 0.7 * 0.6, 0.3 * 0.4, 0.3 * 0.6
    expected[7, 0], expected[7, 1], expected[8, 0], expected[8, 1] = 0.2 * 0.6, 0.2 * 0.4, 0.8 * 0.6, 0.8 * 0.4
    np.testing.assert_allclose(grad_maps, expected, atol=1e-12)
    # w.r.t. the points: central finite differences (the function is smooth inside a cell)
    grad_points = tape.gradient(value, points).numpy()
    eps = 1e-6
    for k in range(2):
        for axis in range(2):
            step = np.zeros((1, 2, 2))
            step[0, k, axis] = eps
            numeric = (tf.reduce_sum(sample_points(maps, points + step)[..., 0]) -
                       tf.reduce_sum(sample_points(maps, points - step)[..., 0])).numpy() / (2 * eps)
            np.testing.assert_allclose(grad_points[0, k, axis], numeric, rtol=1e-6, atol=1e-8)


def test_sample_points_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        sample_points(np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 1, 2), np.float32), "nearest")
    with pytest.raises(ValueError, match=r"points must have shape \[B, K, 2\]"):
        sample_points(np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 1, 3), np.float32))
    with pytest.raises(ValueError, match="same batch size"):
        sample_points(np.zeros((2, 2, 2, 1), np.float32), np.zeros((1, 1, 2), np.float32))


# --- Gaussian splat -----------------------------------------------------------------------------------------


def splat_loop(keypoints, descriptors, confidences, height, width, variance):
    """Table 9's Gaussian Conv. + Summation, pixel by pixel with math.exp, normalised by the image sum."""
    batch, num, depth = descriptors.shape
    maps = np.zeros((batch, num, height, width))
    for b in range(batch):
        for k in range(num):
            for i in range(height):
                for j in range(width):
                    d2 = (i - keypoints[b, k, 0]) ** 2 + (j - keypoints[b, k, 1]) ** 2
                    maps[b, k, i, j] = math.exp(-0.5 * d2 / variance)
            maps[b, k] *= confidences[b, k] / maps[b, k].sum()
    per_keypoint = maps[..., None] * descriptors[:, :, None, None, :]
    return maps, per_keypoint, per_keypoint.sum(1)


@pytest.mark.parametrize("variance", [0.05, 1.0, 6.0])
def test_gaussian_splat_matches_loop(variance):
    rng = np.random.default_rng(3)
    keypoints = np.stack([rng.uniform(0, H - 1, (2, 4)), rng.uniform(0, W - 1, (2, 4))], -1)
    keypoints[0, 0] = [4.0, 9.0]  # on a pixel
    descriptors = rng.normal(size=(2, 4, 3))
    confidences = rng.uniform(0.1, 1.0, (2, 4))
    out = gaussian_splat(keypoints, descriptors, confidences, H, W, variance)
    maps, per_keypoint, total = splat_loop(keypoints, descriptors, confidences, H, W, variance)
    assert out["per_keypoint"].shape == (2, 4, H, W, 3) and out["sum"].shape == (2, H, W, 3)
    np.testing.assert_allclose(out["maps"].numpy(), maps, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out["per_keypoint"].numpy(), per_keypoint, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out["sum"].numpy(), total, rtol=1e-10, atol=1e-13)
    # normalisation: each map sums to its keypoint's confidence
    np.testing.assert_allclose(out["maps"].numpy().sum((2, 3)), confidences, rtol=1e-12)
    # pixel-index convention: a keypoint on pixel (4, 9) is heaviest there
    assert np.unravel_index(out["maps"].numpy()[0, 0].argmax(), (H, W)) == (4, 9)
    # float32 inputs give float32, as accurate as float32 allows
    out32 = gaussian_splat(*(x.astype(np.float32) for x in (keypoints, descriptors, confidences)), H, W, variance)
    assert out32["sum"].dtype == tf.float32
    np.testing.assert_allclose(out32["sum"].numpy(), total, rtol=1e-4, atol=1e-5)


def test_gaussian_splat_original_variance_is_a_sharp_splat():
    # v = 0.05 px²: on a pixel, the 4 neighbours get e^{−10} each relative to it.
    out = gaussian_splat([[[5.0, 5.0]]], [[[1.0]]], [[1.0]], H, W, 0.05)
    centre = out["maps"].numpy()[0, 0, 5, 5]
    np.testing.assert_allclose(centre, 1 / (1 + 4 * math.exp(-10) + 4 * math.exp(-20) + 4 * math.exp(-40)), rtol=1e-6)


def test_gaussian_splat_gradient_is_finite_even_far_outside_or_sharp():
    keypoints = tf.constant([[[2.3, 4.7], [-40.0, 300.0], [H - 1.0, 0.0]]])
    rng = np.random.default_rng(4)
    descriptors = tf.constant(rng.normal(size=(1, 3, 4)), tf.float32)
    weights = tf.constant(rng.normal(size=(1, H, W, 4)), tf.float32)
    for variance in (0.05, 1e-4, 3.0):
        with tf.GradientTape() as tape:
            tape.watch(keypoints)
            out = gaussian_splat(keypoints, descriptors, tf.ones([1, 3]), H, W, variance)
            loss = tf.reduce_sum(out["sum"] * weights)
        grad = tape.gradient(loss, keypoints).numpy()
        assert np.all(np.isfinite(out["maps"].numpy())) and np.all(np.isfinite(grad)), variance
        np.testing.assert_allclose(out["maps"].numpy().sum((2, 3)), 1.0, rtol=1e-5)
    # a keypoint between pixels has a non-zero gradient at the original variance
    with tf.GradientTape() as tape:
        tape.watch(keypoints)
        loss = tf.reduce_sum(gaussian_splat(keypoints, descriptors, tf.ones([1, 3]), H, W, 0.05)["maps"][0, 0, 2, 4])
    assert np.all(tape.gradient(loss, keypoints).numpy()[0, 0] != 0)


def test_gaussian_splat_errors():
    kp, d, c = np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 3), np.float32), np.ones((1, 2), np.float32)
    with pytest.raises(ValueError, match="variance must be positive"):
        gaussian_splat(kp, d, c, 4, 4, 0.0)
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        gaussian_splat(kp, d, c, 0, 4)
    with pytest.raises(ValueError, match="same number of keypoints K"):
        gaussian_splat(kp, d[:, :1], c, 4, 4)
    with pytest.raises(ValueError, match=r"confidences must have shape \[B, K\]"):
        gaussian_splat(kp, d, c[..., None], 4, 4)


# --- prototype assignment -----------------------------------------------------------------------------------


def test_assign_prototypes_matches_numpy():
    rng = np.random.default_rng(5)
    descriptors = rng.normal(size=(3, 4, 8))
    prototypes = rng.normal(size=(6, 8))
    probabilities, labels = assign_prototypes(descriptors, prototypes)
    distances = np.array([[[np.mean((descriptors[b, k] - p) ** 2) for p in prototypes] for k in range(4)]
                          for b in range(3)])
    logits = -20.0 * distances
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    assert probabilities.shape == (3, 4, 6) and labels.dtype == tf.int32 and labels.shape == (3, 4)
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(labels.numpy(), distances.argmin(-1))
    np.testing.assert_array_equal(labels.numpy(), expected.argmax(-1))  # = the original's argmax of p_soft
    probabilities, _ = assign_prototypes(descriptors, prototypes, temperature=1.5)
    expected = np.exp(-1.5 * distances) / np.exp(-1.5 * distances).sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="same size d"):
        assign_prototypes(descriptors, prototypes[:, :5])
    with pytest.raises(ValueError, match="temperature must be positive"):
        assign_prototypes(descriptors, prototypes, temperature=-1.0)


# --- mixing ratios (eqs. 7-8) -------------------------------------------------------------------------------


def eqs_7_8(descriptors, prototypes, labels, exploration, about):
    """Plain python: r_m, σ_m (1 if empty), Var over m (population), α_m = r_m + exploration + Var, π = α/Σα."""
    num, depth = len(descriptors), len(descriptors[0])
    ratios, sigmas = [], []
    for m in range(len(prototypes)):
        members = [list(descriptors[n]) for n in range(num) if labels[n] == m]
        ratios.append(len(members) / num)
        if not members:
            sigmas.append(1.0)
            continue
        if about == "mean":
            centre = [sum(x[c] for x in members) / len(members) for c in range(depth)]
        else:
            centre = list(prototypes[m])
        sigmas.append(sum((x[c] - centre[c]) ** 2 for x in members for c in range(depth)) / (len(members) * depth))
    mean = sum(sigmas) / len(sigmas)
    spread = sum((s - mean) ** 2 for s in sigmas) / len(sigmas)
    alphas = [r + exploration + spread for r in ratios]
    return [a / sum(alphas) for a in alphas]


def original_get_cluster_ratio(prototypes, features):
    """numpy transcription of the original `sliced_wasserstein_loss.get_cluster_ratio` (models/loss.py)."""
    dist = ((prototypes[None] - features[:, None]) ** 2).sum(-1)
    nearest = dist.argmin(1)
    counts = np.array([(nearest == i).sum() for i in range(len(prototypes))], np.float64)
    var = np.array([((features[nearest == i] - prototypes[i]) ** 2).mean() if counts[i] else 1.0
                    for i in range(len(prototypes))])
    counts = counts + counts.sum() * (0.01 + ((var - var.mean()) ** 2).mean())
    return counts / counts.sum(), nearest


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("about", ["mean", "prototype"])
@pytest.mark.parametrize("exploration", [0.0, 0.01])
def test_mixing_ratios_match_eqs_7_8(about, exploration):
    rng = np.random.default_rng(6)
    prototypes = unit(rng.normal(size=(7, 5)))
    descriptors = unit(rng.normal(size=(4, 6, 5)))  # B = 4, K = 6: N = 24
    # labels that leave prototypes 2 and 5 empty and give prototype 6 a single descriptor
    labels = rng.choice([0, 1, 3, 4], size=(4, 6))
    labels[0, 0] = 6
    got = mixing_ratios(descriptors, prototypes, labels, exploration=exploration, variance_about=about)
    expected = eqs_7_8(descriptors.reshape(-1, 5), prototypes, labels.reshape(-1), exploration, about)
    assert got.shape == (7,) and got.dtype == tf.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert got.numpy()[2] > 0 and got.numpy()[2] == got.numpy()[5]  # empty prototypes still get the Var term


def test_mixing_ratios_options_reproduce_the_original_code():
    rng = np.random.default_rng(7)
    prototypes = unit(rng.normal(size=(10, 32)))
    descriptors = unit(prototypes[rng.integers(0, 6, 120)] + 0.3 * rng.normal(size=(120, 32)))  # 4 empty
    expected, nearest = original_get_cluster_ratio(prototypes, descriptors)
    _, labels = assign_prototypes(descriptors, prototypes)
    np.testing.assert_array_equal(labels.numpy(), nearest)
    got = mixing_ratios(descriptors, prototypes, labels, exploration=0.01, variance_about="prototype")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    seed_default = mixing_ratios(descriptors, prototypes, labels).numpy()
    assert not np.allclose(seed_default, expected)  # the options matter


def test_mixing_ratios_errors():
    d, p = np.zeros((4, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, M\) = \[0, 2\); found 2"):
        mixing_ratios(d, p, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="labels must have the leading shape of descriptors"):
        mixing_ratios(d, p, [0, 1])
    with pytest.raises(ValueError, match="variance_about must be one of"):
        mixing_ratios(d, p, [0, 1, 1, 0], variance_about="median")
    with pytest.raises(ValueError, match="exploration must be a python float >= 0"):
        mixing_ratios(d, p, [0, 1, 1, 0], exploration=-0.1)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        mixing_ratios(d, p, [0.0, 1.0, 1.0, 0.0])


# --- GMM sampling (eq. 6, Table 7 step 2) ----------------------------------------------------------------------


def counts_rule(ratios, num_samples):
    """floor(π_m · N) for all but the last prototype, which takes the remainder (python floats = float64)."""
    counts = [math.floor(float(r) * num_samples) for r in ratios[:-1]]
    return counts + [num_samples - sum(counts)]


@pytest.mark.parametrize("num_prototypes, num_samples", [(1, 5), (3, 8), (10, 120), (48, 192), (114, 114)])
def test_sample_counts_follow_the_rule(num_prototypes, num_samples):
    rng = np.random.default_rng(num_prototypes)
    for _ in range(5):
        ratios = rng.dirichlet(np.full(num_prototypes, 0.5)).astype(np.float32)
        got = sample_counts(ratios, num_samples)
        assert got.dtype == tf.int32 and got.shape == (num_prototypes,)
        np.testing.assert_array_equal(got.numpy(), counts_rule(ratios, num_samples))
        assert got.numpy().sum() == num_samples and got.numpy().min() >= 0
    np.testing.assert_array_equal(sample_counts([0.25, 0.25, 0.5], 8).numpy(), [2, 2, 4])
    np.testing.assert_array_equal(sample_counts([0.3, 0.3, 0.4], 10).numpy(), [3, 3, 4])
    np.testing.assert_array_equal(sample_counts([0.34, 0.33, 0.33], 10).numpy(), [3, 3, 4])  # remainder to last


def test_sample_counts_errors():
    with pytest.raises(ValueError, match="ratios must sum to 1"):
        sample_counts([0.5, 0.4], 10)
    with pytest.raises(ValueError, match="ratios must be non-negative"):
        sample_counts([1.5, -0.5], 10)
    with pytest.raises(ValueError, match="num_samples must be a python int >= 1"):
        sample_counts([1.0], 0)


def systematic_rule(ratios, num_samples, offset):
    """Python: the points offset, offset + 1, ... (< N) in units of N·π; each goes to the prototype whose
    cumulative interval [C_{m-1}, C_m) holds it."""
    cumulative = np.cumsum(np.asarray(ratios, np.float64)) * num_samples
    counts = [0] * len(cumulative)
    for k in range(num_samples):
        point = offset + k
        owner = next((m for m, end in enumerate(cumulative) if point < end), len(cumulative) - 1)
        counts[owner] += 1
    return counts


@pytest.mark.parametrize("num_prototypes, num_samples", [(1, 5), (3, 8), (10, 144), (114, 48), (114, 456)])
def test_systematic_counts_follow_the_rule(num_prototypes, num_samples):
    rng = np.random.default_rng(num_prototypes + num_samples)
    for _ in range(4):
        ratios = rng.dirichlet(np.full(num_prototypes, 0.5))
        for offset in (0.0, 0.37, 0.999):
            got = systematic_counts(ratios, num_samples, offset).numpy()
            np.testing.assert_array_equal(got, systematic_rule(ratios, num_samples, offset))
            assert got.sum() == num_samples and got.min() >= 0
            assert np.all(np.abs(got - ratios * num_samples) < 1 + 1e-9)  # floor or ceil of π·N


def test_systematic_counts_are_unbiased():
    """E_u[count_m] = π_m·N for u ~ U[0, 1): the mean over a fine grid of offsets equals it within 1/grid,
    while the original's floor rule gives the last prototype the lost fractions."""
    ratios = np.random.default_rng(4).dirichlet(np.ones(7))
    grid = np.arange(1000) / 1000
    mean = np.mean([systematic_counts(ratios, 5, u).numpy() for u in grid], axis=0)
    np.testing.assert_allclose(mean, ratios * 5, atol=1.5e-3)
    floor = sample_counts(ratios, 5).numpy()
    assert floor[-1] > ratios[-1] * 5 + 1  # the original's rule: the last prototype collects what the floors lose


def test_fewer_samples_than_prototypes_spread_over_the_prototypes():
    """The quick Tetrominoes case (N = 48 descriptors, M = 114 prototypes, π near uniform): the original's rule
    gives every sample to the last prototype (the collapse measured in docs/tusk.md), the systematic rule one
    sample each to 48 prototypes, different ones for different offsets."""
    ratios = np.full(114, 1 / 114)
    np.testing.assert_array_equal(sample_counts(ratios, 48).numpy(), [0] * 113 + [48])
    first = systematic_counts(ratios, 48, 0.2).numpy()
    second = systematic_counts(ratios, 48, 0.7).numpy()
    assert first.max() == 1 and first.sum() == 48 and second.max() == 1
    assert not np.array_equal(first, second)
    prototypes = unit(np.random.default_rng(2).normal(size=(114, 8))).astype(np.float32)
    samples = sample_prototypes(prototypes, ratios.astype(np.float32), 48, seed=3, variance=1e-8).numpy()
    nearest = np.argmax(samples @ prototypes.T, axis=1)
    assert len(set(nearest.tolist())) == 48
    original = sample_prototypes(prototypes, ratios.astype(np.float32), 48, seed=3, variance=1e-8,
                                 allocation="original").numpy()
    assert set(np.argmax(original @ prototypes.T, axis=1).tolist()) == {113}


def test_systematic_counts_errors():
    with pytest.raises(ValueError, match="offset must be in \\[0, 1\\)"):
        systematic_counts([0.5, 0.5], 4, 1.0)
    with pytest.raises(ValueError, match="offset must be a scalar"):
        systematic_counts([0.5, 0.5], 4, [0.1, 0.2])
    with pytest.raises(ValueError, match="ratios must sum to 1"):
        systematic_counts([0.5, 0.4], 4, 0.5)
    with pytest.raises(ValueError, match="allocation must be one of"):
        sample_prototypes(np.eye(2, dtype=np.float32), [0.5, 0.5], 4, seed=0, allocation="floor")


def test_gmm_samples_have_the_prototypes_moments():
    # N = 20,000 samples, π = (0.5, 0.3, 0.2) -> 10,000 / 6,000 / 4,000 samples of N(p_m, 4e-4·I), d = 32.
    rng = np.random.default_rng(8)
    prototypes = unit(rng.normal(size=(3, 32)))
    variance = 4e-4
    samples = sample_prototypes(prototypes.astype(np.float32), [0.5, 0.3, 0.2], 20000, seed=11, variance=variance)
    assert samples.shape == (20000, 32) and samples.dtype == tf.float32
    samples = samples.numpy().astype(np.float64)
    start = 0
    for m, count in enumerate([10000, 6000, 4000]):
        block = samples[start:start + count]  # rows grouped by prototype, in order
        start += count
        # Mean: each coordinate's sample mean has standard error sqrt(v / n); 5 SE per coordinate bounds all
        # 96 coordinates together with probability 1 − 96·5.7e-7 ≈ 1 − 5e-5 under the model.
        standard_error = math.sqrt(variance / count)
        assert np.max(np.abs(block.mean(0) - prototypes[m])) < 5 * standard_error, m
        # Variance, pooled over the d coordinates (n·d independent squared normals): relative standard error
        # sqrt(2 / (n·d)) (0.4% for n = 4,000); tolerance 5 of those.
        pooled = ((block - block.mean(0)) ** 2).mean()
        assert abs(pooled / variance - 1) < 5 * math.sqrt(2 / (count * 32)), (m, pooled)
        # and the noise is isotropic: the largest off-diagonal correlation of 32 coordinates is O(1/sqrt(n))
        correlation = np.corrcoef(block.T)
        assert np.max(np.abs(correlation - np.eye(32))) < 5 / math.sqrt(count) + 0.02


def test_gmm_sampling_is_deterministic_and_differentiable():
    prototypes = tf.constant(unit(np.random.default_rng(9).normal(size=(4, 8))), tf.float32)
    ratios = [0.1, 0.2, 0.3, 0.4]
    first = sample_prototypes(prototypes, ratios, 30, seed=3)
    np.testing.assert_array_equal(first.numpy(), sample_prototypes(prototypes, ratios, 30, seed=3).numpy())
    compiled = tf.function(lambda p, s: sample_prototypes(p, ratios, 30, seed=s))(prototypes, tf.constant([3, 0]))
    np.testing.assert_array_equal(first.numpy(), compiled.numpy())
    assert not np.allclose(first.numpy(), sample_prototypes(prototypes, ratios, 30, seed=[3, 1]).numpy())
    with tf.GradientTape() as tape:
        tape.watch(prototypes)
        total = tf.reduce_sum(sample_prototypes(prototypes, ratios, 30, seed=3))
    # each sample is its prototype plus noise: d Σ / d p_m = count_m in every coordinate
    gradient = tf.convert_to_tensor(tape.gradient(total, prototypes)).numpy()  # counts 3, 6, 9, 12
    np.testing.assert_allclose(gradient, np.repeat([[3.0], [6], [9], [12]], 8, 1))


def test_gmm_samples_normalized_as_the_original():
    prototypes = unit(np.random.default_rng(10).normal(size=(3, 32))).astype(np.float32)
    samples = sample_prototypes(prototypes, [0.2, 0.3, 0.5], 100, seed=5, normalize=True).numpy()
    np.testing.assert_allclose(np.linalg.norm(samples, axis=1), 1.0, rtol=1e-6)
    # still next to their prototype: ‖ε‖ ≈ 0.02·sqrt(32) ≈ 0.11, so cosine ≈ 1 − 0.11²/2 ≈ 0.994
    owners = np.repeat([0, 1, 2], [20, 30, 50])
    assert np.min(np.sum(samples * prototypes[owners], axis=1)) > 0.98
    with pytest.raises(ValueError, match="same M"):
        sample_prototypes(prototypes, [0.5, 0.5], 10, seed=0)
    with pytest.raises(ValueError, match="variance must be positive"):
        sample_prototypes(prototypes, [0.2, 0.3, 0.5], 10, seed=0, variance=0.0)
    with pytest.raises(ValueError, match="seed must be an int"):
        sample_prototypes(prototypes, [0.2, 0.3, 0.5], 10, seed=1.5)


# --- U-Net upsampling ---------------------------------------------------------------------------------------


def interpolation_matrix(size, align_corners):
    """[2·size, size]: row i holds the bilinear weights of output pixel i."""
    matrix = np.zeros((2 * size, size))
    for i in range(2 * size):
        if align_corners:  # PyTorch Upsample(align_corners=True): i·(n − 1)/(2n − 1)
            source = i * (size - 1) / (2 * size - 1) if size > 1 else 0.0
        else:  # half-pixel centres: (i + 0.5)/2 − 0.5, clamped
            source = min(max((i + 0.5) / 2 - 0.5, 0.0), size - 1.0)
        low = int(math.floor(source))
        high = min(low + 1, size - 1)
        matrix[i, low] += 1 - (source - low)
        matrix[i, high] += source - low
    return matrix


@pytest.mark.parametrize("align_corners", [False, True])
def test_upsample_matches_interpolation_matrices(align_corners):
    x = np.random.default_rng(11).normal(size=(2, 3, 5, 4)).astype(np.float32)
    got = upsample_bilinear(x, align_corners).numpy()
    rows, cols = interpolation_matrix(3, align_corners), interpolation_matrix(5, align_corners)
    expected = np.einsum("ih,bhwc,jw->bijc", rows, x.astype(np.float64), cols)
    assert got.shape == (2, 6, 10, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    other = upsample_bilinear(x, not align_corners).numpy()
    assert np.max(np.abs(other - got)) > 0.05  # the two conventions differ


def test_sample_counts_and_prototypes_take_a_run_time_count():
    """Inside a training step whose batch size is only known at run time, N = B·K is a scalar tensor: the
    counts follow the same rule and the samples are those of the python-int call with the same seed."""
    ratios = tf.constant([0.25, 0.35, 0.4])
    prototypes = tf.constant(np.random.default_rng(3).normal(size=(3, 4)), tf.float32)
    counts = tf.function(lambda n: sample_counts(ratios, n),
                         input_signature=[tf.TensorSpec([], tf.int32)]).get_concrete_function()
    for n in (1, 7, 10):
        np.testing.assert_array_equal(counts(tf.constant(n)).numpy(), counts_rule(ratios.numpy(), n))
    samples = tf.function(lambda n: sample_prototypes(prototypes, ratios, n, seed=5),
                          input_signature=[tf.TensorSpec([], tf.int32)])
    np.testing.assert_allclose(samples(tf.constant(9)).numpy(), sample_prototypes(prototypes, ratios, 9, 5).numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        sample_counts(ratios, tf.constant(0))
    with pytest.raises(ValueError, match="num_samples must be a python int >= 1 or a scalar integer tensor"):
        sample_counts(ratios, tf.constant([3]))
