"""LAVAE's placement (eq. 4), Bernoulli mean, f_count and Gumbel-softmax location sampler against independent
references: numpy loops pasting sprites, `scipy.signal.convolve2d`, finite differences, a brute-force local-maximum
count, and eq. (11)'s probabilities (`location_log_prob`) for the sampler's empirical frequencies."""
import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import convolve2d

from tfobj.models.lavae.lavae_math import (
    MASKED_LOGIT,
    bernoulli_mean,
    count_objects,
    logit_scale,
    place_sprites,
    place_sprites_soft,
    sample_locations_gumbel,
)
from tfobj.models.lavae.location import location_log_prob

# --- references ------------------------------------------------------------------------------------


def paste_loop(sprites, locations, num_objects, height, width):
    """Dense float64 reference: each of the first n sprites pasted into an H × W canvas, pixel by pixel, its pixel
    ((s_h − 1) // 2, (s_w − 1) // 2) on the location, pixels outside the canvas skipped."""
    batch, _, sprite_h, sprite_w, channels = sprites.shape
    canvas = np.zeros((batch, height, width, channels))
    for b in range(batch):
        for i in range(num_objects[b]):
            row, col = locations[b, i]
            for u in range(sprite_h):
                for v in range(sprite_w):
                    r, c = row - (sprite_h - 1) // 2 + u, col - (sprite_w - 1) // 2 + v
                    if 0 <= r < height and 0 <= c < width:
                        canvas[b, r, c] += sprites[b, i, u, v]
    return canvas


def scipy_soft(sprites, maps, num_objects, height, width):
    """Σ_{i<n} convolve2d(map_i, sprite_i[..., c], "same") per channel, float64."""
    batch, _, _, _, channels = sprites.shape
    canvas = np.zeros((batch, height, width, channels))
    for b in range(batch):
        for i in range(num_objects[b]):
            for c in range(channels):
                canvas[b, :, :, c] += convolve2d(maps[b, i].reshape(height, width).astype(np.float64),
                                                 sprites[b, i, :, :, c].astype(np.float64), mode="same")
    return canvas


def local_maxima_count(logits, threshold, window, max_objects):
    """Brute force: a pixel counts if no in-canvas pixel of its window is larger and it exceeds the threshold."""
    batch, height, width = logits.shape
    half = window // 2
    counts = []
    for b in range(batch):
        count = 0
        for r in range(height):
            for c in range(width):
                value = logits[b, r, c]
                neighbours = logits[b, max(r - half, 0):r + half + 1, max(c - half, 0):c + half + 1]
                if value > threshold and value >= neighbours.max():
                    count += 1
        counts.append(min(count, max_objects))
    return np.array(counts)


# --- 1. hard placement -----------------------------------------------------------------------------


@pytest.mark.parametrize("sprite_shape", [(5, 5), (4, 4), (3, 6), (1, 1)])  # odd, even, rectangular, a point
def test_place_sprites_matches_the_paste_loop_including_borders(sprite_shape):
    rng = np.random.default_rng(sum(sprite_shape))
    batch, max_objects, height, width, channels = 3, 4, 9, 11, 2
    sprites = rng.random((batch, max_objects) + sprite_shape + (channels,))
    # Locations on and beyond every border (sprites partly or wholly outside), and overlapping ones.
    locations = np.stack([rng.integers(-4, height + 4, (batch, max_objects)),
                          rng.integers(-4, width + 4, (batch, max_objects))], axis=-1).astype(np.int32)
    locations[0, :2] = [[0, 0], [height - 1, width - 1]]  # corners
    locations[1, :2] = [[4, 5], [5, 5]]  # overlapping neighbours add up
    num_objects = np.array([4, 2, 0], np.int32)
    got = place_sprites(sprites, locations, num_objects, height, width)
    assert got.dtype == tf.float64 and got.shape == (batch, height, width, channels)
    expected = paste_loop(sprites, locations, num_objects, height, width)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)  # float64 sums of ≤ 4 terms
    assert np.all(got.numpy()[2] == 0.0)  # n = 0: empty canvas
    # float32 sprites: float32 result, same values up to float32 rounding of sums of ≤ 4 terms in [0, 1].
    got32 = place_sprites(sprites.astype(np.float32), locations, num_objects, height, width)
    assert got32.dtype == tf.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sprite_size", [5, 4])
def test_hard_placement_is_scipy_same_convolution_with_the_one_hot(sprite_size):
    """The centring convention equals the textbook "same" discrete convolution (eq. 4's ⊛), for odd and even s."""
    rng = np.random.default_rng(sprite_size)
    height, width = 8, 10
    sprites = rng.random((1, 3, sprite_size, sprite_size, 1))
    locations = np.array([[[0, 9], [3, 4], [7, 0]]], np.int32)
    maps = np.zeros((1, 3, height * width))
    for i, (r, c) in enumerate(locations[0]):
        maps[0, i, r * width + c] = 1.0
    got = place_sprites(sprites, locations, np.array([3]), height, width).numpy()
    np.testing.assert_allclose(got, scipy_soft(sprites, maps, [3], height, width), rtol=0, atol=1e-12)


def test_entries_after_n_are_never_read():
    rng = np.random.default_rng(1)
    sprites = rng.random((2, 3, 3, 3, 1)).astype(np.float32)
    locations = rng.integers(0, 6, (2, 3, 2)).astype(np.int32)
    num_objects = np.array([1, 2], np.int32)
    maps = rng.dirichlet(np.ones(36), size=(2, 3)).astype(np.float32)
    base_hard = place_sprites(sprites, locations, num_objects, 6, 6).numpy()
    base_soft = place_sprites_soft(sprites, maps, num_objects, 6, 6).numpy()
    after = np.arange(3)[None, :] >= num_objects[:, None]  # [B, M]
    sprites[after] = np.nan
    locations[after] = [10**9, -(10**9)]
    maps[after] = np.nan
    np.testing.assert_array_equal(place_sprites(sprites, locations, num_objects, 6, 6).numpy(), base_hard)
    np.testing.assert_array_equal(place_sprites_soft(sprites, maps, num_objects, 6, 6).numpy(), base_soft)


def test_hard_gradient_is_the_canvas_gradient_where_each_pixel_landed():
    rng = np.random.default_rng(2)
    height, width = 6, 7
    sprites = tf.Variable(rng.random((2, 3, 3, 3, 2)))
    locations = np.array([[[0, 0], [3, 3], [5, 6]], [[2, 2], [2, 3], [40, 40]]], np.int32)
    num_objects = np.array([3, 2], np.int32)
    weights = rng.normal(size=(2, height, width, 2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * place_sprites(sprites, locations, num_objects, height, width))
    grad = tape.gradient(loss, sprites).numpy()
    expected = np.zeros(grad.shape)
    for b in range(2):
        for i in range(num_objects[b]):  # objects after n: gradient 0
            for u in range(3):
                for v in range(3):
                    r, c = locations[b, i, 0] - 1 + u, locations[b, i, 1] - 1 + v
                    if 0 <= r < height and 0 <= c < width:  # dropped pixels: gradient 0
                        expected[b, i, u, v] = weights[b, r, c]
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-12)


def test_placement_in_tf_function_with_unknown_shapes_and_under_xla():
    rng = np.random.default_rng(3)
    sprites = rng.random((2, 3, 5, 5, 1)).astype(np.float32)
    locations = rng.integers(-2, 10, (2, 3, 2)).astype(np.int32)
    num_objects = np.array([3, 1], np.int32)
    maps = rng.dirichlet(np.ones(8 * 9), size=(2, 3)).astype(np.float32)
    hard_expected = paste_loop(sprites, locations, num_objects, 8, 9)
    soft_expected = scipy_soft(sprites, maps, num_objects, 8, 9)
    for jit_compile in (False, True):
        hard = tf.function(place_sprites, jit_compile=jit_compile, input_signature=[
            tf.TensorSpec([None] * 5), tf.TensorSpec([None, None, 2], tf.int32), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
        soft = tf.function(place_sprites_soft, jit_compile=jit_compile, input_signature=[
            tf.TensorSpec([None] * 5), tf.TensorSpec([None, None, None]), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
        for rows in (slice(0, 1), slice(0, 2)):  # two batch sizes, one trace
            np.testing.assert_allclose(hard(sprites[rows], locations[rows], num_objects[rows], 8, 9).numpy(),
                                       hard_expected[rows], rtol=0, atol=1e-6)
            np.testing.assert_allclose(soft(sprites[rows], maps[rows], num_objects[rows], 8, 9).numpy(),
                                       soft_expected[rows], rtol=0, atol=1e-6)


# --- 2. relaxed placement --------------------------------------------------------------------------


@pytest.mark.parametrize("sprite_shape", [(5, 5), (4, 4), (2, 5)])
def test_soft_placement_matches_scipy_convolve2d(sprite_shape):
    rng = np.random.default_rng(10 + sum(sprite_shape))
    batch, max_objects, height, width, channels = 2, 3, 7, 8, 3
    sprites = rng.random((batch, max_objects) + sprite_shape + (channels,))
    maps = rng.dirichlet(np.full(height * width, 0.3), size=(batch, max_objects))  # spread soft one-hots
    num_objects = np.array([3, 2], np.int32)
    got = place_sprites_soft(sprites, maps, num_objects, height, width)
    assert got.dtype == tf.float64 and got.shape == (batch, height, width, channels)
    np.testing.assert_allclose(got.numpy(), scipy_soft(sprites, maps, num_objects, height, width), rtol=0,
                               atol=1e-12)
    got32 = place_sprites_soft(sprites.astype(np.float32), maps.astype(np.float32), num_objects, height, width)
    assert got32.dtype == tf.float32
    np.testing.assert_allclose(got32.numpy(), scipy_soft(sprites, maps, num_objects, height, width), rtol=0,
                               atol=1e-5)


def test_soft_placement_with_one_hot_maps_is_the_hard_placement():
    rng = np.random.default_rng(4)
    height, width = 9, 9
    sprites = rng.random((2, 4, 5, 5, 1)).astype(np.float32)
    locations = rng.integers(0, 9, (2, 4, 2)).astype(np.int32)  # in the canvas: representable as one-hots
    maps = np.zeros((2, 4, height * width), np.float32)
    for b, i in itertools.product(range(2), range(4)):
        maps[b, i, locations[b, i, 0] * width + locations[b, i, 1]] = 1.0
    num_objects = np.array([4, 3], np.int32)
    np.testing.assert_allclose(place_sprites_soft(sprites, maps, num_objects, height, width).numpy(),
                               place_sprites(sprites, locations, num_objects, height, width).numpy(), rtol=0,
                               atol=1e-6)


def test_soft_placement_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    sprites = tf.constant(rng.random((1, 2, 3, 4, 1)))
    maps = tf.constant(rng.dirichlet(np.ones(5 * 6), size=(1, 2)))
    weights = tf.constant(rng.normal(size=(1, 5, 6, 1)))
    num_objects = np.array([2], np.int32)

    def loss(sprites, maps):
        return tf.reduce_sum(weights * place_sprites_soft(sprites, maps, num_objects, 5, 6))

    theoretical, numerical = tf.test.compute_gradient(loss, [sprites, maps])
    for t, n in zip(theoretical, numerical):
        # float64, bilinear in (sprites, maps): central differences are exact up to round-off ~1e-10.
        np.testing.assert_allclose(t, n, rtol=0, atol=1e-8)
        assert np.abs(t).max() > 0.1


# --- 3. Bernoulli mean -----------------------------------------------------------------------------


def test_bernoulli_mean_values_and_gradient():
    canvas = tf.Variable(np.array([-0.5, 0.0, 1e-9, 0.3, 1.0 - 1e-9, 1.0, 1.7]))
    with tf.GradientTape() as tape:
        mean = bernoulli_mean(canvas, epsilon=1e-6)
    eps = 1e-6
    expected = eps + (1 - 2 * eps) * np.clip(canvas.numpy(), 0, 1)
    np.testing.assert_allclose(mean.numpy(), expected, rtol=0, atol=1e-15)
    assert mean.numpy().min() >= eps and mean.numpy().max() <= 1 - eps + 1e-15  # float64 rounding of ε + (1 − 2ε)
    grad = tape.gradient(mean, canvas).numpy()
    # Inside [0, 1] (also at a sprite value ~0 and ~1) the gradient is 1 − 2ε; outside (overlaps) it is 0.
    np.testing.assert_allclose(grad[[2, 3, 4]], 1 - 2 * eps, rtol=1e-12)
    assert grad[0] == 0.0 and grad[6] == 0.0
    # float32: ε survives in log(1 − mean) and log(mean).
    mean32 = bernoulli_mean(np.array([0.0, 1.0, 2.0], np.float32)).numpy()
    assert mean32.dtype == np.float32 and np.all(np.isfinite(np.log(mean32))) and np.all(np.isfinite(np.log1p(-mean32)))
    np.testing.assert_allclose(np.log(mean32[0]), math.log(1e-6), rtol=1e-6)


# --- 4. f_count ------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [3, 5, 1])
def test_count_objects_matches_brute_force(window):
    rng = np.random.default_rng(window)
    batch, height, width, gamma = 12, 10, 13, 1.5
    logits = rng.normal(0.0, 2.0, (batch, height, width))
    for b in range(batch):  # peaks (some adjacent, some on the border) above and below 4γ = 6
        for _ in range(b):
            r, c = rng.integers(0, height), rng.integers(0, width)
            logits[b, r, c] += rng.uniform(3.0, 12.0)
    logits = logits.astype(np.float32)
    for max_objects in (10, 3):
        got = count_objects(logits[..., None], gamma, max_objects, window=window)
        assert got.dtype == tf.int32 and got.shape == (batch,)
        expected = local_maxima_count(logits, 4 * gamma, window, max_objects)
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(count_objects(logits, gamma, max_objects, window=window).numpy(), expected)
    assert len(set(expected)) >= 3  # the rows differ


def test_count_objects_rules():
    gamma = 1.0  # threshold 4
    logits = np.zeros((5, 6, 6), np.float32)
    logits[0, 2, 2], logits[0, 2, 3] = 9.0, 8.0  # a blurred peak: one object (3 × 3 suppresses the neighbour)
    logits[1, 0, 0], logits[1, 5, 5] = 5.0, 5.0  # maxima on the border count
    logits[2, 1, 1], logits[2, 1, 2] = 7.0, 7.0  # an exact plateau: both count (documented)
    logits[3, 3, 3] = 4.0  # not strictly above 4γ
    logits[4] = np.nan  # NaN logits never count
    np.testing.assert_array_equal(count_objects(logits, gamma, 10).numpy(), [1, 2, 2, 0, 0])
    # γ as a tensor (the model's variable); the threshold scales with it.
    np.testing.assert_array_equal(count_objects(logits, tf.constant(2.0), 10).numpy(), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(count_objects(logits, gamma, 0).numpy(), [0] * 5)


def test_logit_scale_follows_log_d():
    assert logit_scale(64 * 64) == pytest.approx(4.0, rel=1e-12)  # the paper's γ on its own canvas
    assert logit_scale(24 * 24) == pytest.approx(4.0 * math.log(576) / math.log(4096), rel=1e-12)
    assert logit_scale(128 * 128) == pytest.approx(4.0 * 14 / 12, rel=1e-12)  # log 2^14 / log 2^12
    assert logit_scale(100, gamma=2.0, reference_num_locations=10) == pytest.approx(4.0, rel=1e-12)


# --- 5. Gumbel-softmax sampling without replacement ------------------------------------------------


def test_hard_draws_follow_eq_11():
    """Empirical frequencies of every ordered sequence of n = 3 of D = 4 locations against exp(location_log_prob)."""
    num_locations, n, num_draws = 4, 3, 20_000
    logits = np.array([1.5, -0.5, 0.3, -1.2], np.float32)
    _, indices = sample_locations_gumbel(np.tile(logits, (num_draws, 1)), np.full(num_draws, n, np.int32), 0.5,
                                         seed=keras.random.SeedGenerator(7), max_objects=n)
    indices = indices.numpy()
    sequences = list(itertools.permutations(range(num_locations), n))
    index = {s: k for k, s in enumerate(sequences)}
    counts = np.bincount([index[tuple(d)] for d in indices], minlength=len(sequences))  # KeyError on a repeat
    probs = np.exp(location_log_prob(np.tile(logits, (len(sequences), 1)), np.array(sequences, np.int32),
                                     np.full(len(sequences), n, np.int32)).numpy().astype(np.float64))
    # Binomial z-scores of the 24 counts (expected counts 60..5000): a correct sampler exceeds |z| = 4.5 in any
    # cell with probability ≤ 24·6.8e-6 ≈ 2e-4 (normal approximation); the seed makes the test deterministic.
    z = (counts - num_draws * probs) / np.sqrt(num_draws * probs * (1 - probs))
    assert np.max(np.abs(z)) < 4.5, z
    # And the first draw alone is softmax(logits): the strongest, largest-sample check.
    first = np.bincount(indices[:, 0], minlength=num_locations) / num_draws
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(first, softmax, atol=4.5 * np.sqrt(0.25 / num_draws))


def test_samples_are_distinct_and_soft_one_hots_are_consistent():
    rng = np.random.default_rng(6)
    batch, num_locations, max_objects = 64, 6, 8  # M > D: padding steps after every location is drawn
    logits = rng.normal(0.0, 3.0, (batch, num_locations)).astype(np.float32)
    logits[:8, 0] = 200.0  # one dominant location: still drawn only once
    num_objects = rng.integers(0, num_locations + 1, batch).astype(np.int32)
    num_objects[:4] = num_locations  # every location: a permutation
    soft, indices = sample_locations_gumbel(logits, num_objects, 0.7, seed=3, max_objects=max_objects)
    soft, indices = soft.numpy(), indices.numpy()
    assert soft.shape == (batch, max_objects, num_locations) and soft.dtype == np.float32
    assert indices.shape == (batch, max_objects) and indices.dtype == np.int32
    for b in range(batch):
        n = num_objects[b]
        assert len(set(indices[b, :n])) == n and np.all((indices[b, :n] >= 0) & (indices[b, :n] < num_locations))
        np.testing.assert_allclose(soft[b, :n].sum(axis=1), 1.0, atol=1e-6)
        assert np.all(soft[b, n:] == 0.0) and np.all(indices[b, n:] == 0)  # padding convention
        # The relaxed sample's mode is the hard draw, and drawn locations carry (numerically) no mass later.
        np.testing.assert_array_equal(soft[b, :n].argmax(axis=1), indices[b, :n])
        for i in range(n):
            assert np.all(soft[b, i, indices[b, :i]] == 0.0)
    assert all(sorted(indices[b, :num_locations]) == list(range(num_locations)) for b in range(4))
    assert np.all(indices[:8, 0] == 0)


def test_soft_one_hots_approach_one_hots_as_temperature_falls():
    rng = np.random.default_rng(8)
    logits = rng.normal(0.0, 2.0, (256, 20)).astype(np.float32)
    num_objects = np.full(256, 4, np.int32)
    previous_max, first_indices = None, None
    for temperature in (2.0, 0.5, 0.1, 0.02, 1e-4):
        # An int seed gives the same Gumbel noise every call: only τ changes.
        soft, indices = sample_locations_gumbel(logits, num_objects, temperature, seed=11, max_objects=4)
        soft, indices = soft.numpy(), indices.numpy()
        first_indices = indices if first_indices is None else first_indices
        np.testing.assert_array_equal(indices, first_indices)  # the hard draws do not depend on τ
        largest = soft.max(axis=2)
        if previous_max is not None:  # softmax(x / τ)'s largest entry never decreases as τ falls
            assert np.all(largest >= previous_max - 1e-6)
        previous_max = largest
    one_hots = np.eye(20)[first_indices]
    # At τ = 1e-4 a step is one-hot unless its two largest perturbed logits are within ~1e-3: rare.
    assert np.mean(np.abs(soft - one_hots).sum(axis=2) < 1e-3) > 0.99


def test_straight_through_is_one_hot_with_the_relaxed_gradient():
    rng = np.random.default_rng(9)
    logits = tf.Variable(rng.normal(0.0, 1.0, (4, 7)).astype(np.float32))
    num_objects = np.array([3, 2, 0, 3], np.int32)
    weights = rng.normal(size=(4, 3, 7)).astype(np.float32)
    results = {}
    for hard in (False, True):
        with tf.GradientTape() as tape:
            soft, indices = sample_locations_gumbel(logits, num_objects, 0.5, seed=5, hard=hard, max_objects=3)
            loss = tf.reduce_sum(weights * soft)
        results[hard] = (soft.numpy(), indices.numpy(), tape.gradient(loss, logits).numpy())
    soft_hard, indices, grad_hard = results[True]
    expected = np.eye(7)[indices] * (np.arange(3)[None, :] < num_objects[:, None])[..., None]
    np.testing.assert_array_equal(soft_hard, expected)
    np.testing.assert_array_equal(indices, results[False][1])
    np.testing.assert_allclose(grad_hard, results[False][2], rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(grad_hard)) and np.abs(grad_hard[:2]).max() > 0
    assert np.all(grad_hard[2] == 0.0)  # n = 0: nothing drawn


def test_seeds_graph_modes_and_xla():
    logits = np.random.default_rng(12).normal(size=(3, 9)).astype(np.float32)
    num_objects = np.array([2, 3, 1], np.int32)
    generator = keras.random.SeedGenerator(1)
    a = sample_locations_gumbel(logits, num_objects, 0.5, seed=generator, max_objects=3)[0].numpy()
    b = sample_locations_gumbel(logits, num_objects, 0.5, seed=generator, max_objects=3)[0].numpy()
    assert not np.array_equal(a, b)  # a SeedGenerator advances

    def sample(logits, num_objects, temperature):
        return sample_locations_gumbel(logits, num_objects, temperature, seed=4, max_objects=3)

    eager = sample(logits, num_objects, 0.5)
    graph = tf.function(sample)(logits, num_objects, tf.constant(0.5))
    np.testing.assert_array_equal(graph[1].numpy(), eager[1].numpy())  # int seed: the same stateless noise
    np.testing.assert_allclose(graph[0].numpy(), eager[0].numpy(), atol=1e-7)
    # XLA's stateless generator is another algorithm (other noise): check the same invariants instead.
    compiled = tf.function(sample, jit_compile=True)
    soft, indices = (t.numpy() for t in compiled(logits, num_objects, tf.constant(0.5)))
    np.testing.assert_array_equal(compiled(logits, num_objects, tf.constant(0.5))[1].numpy(), indices)
    for row, n in enumerate(num_objects):
        assert len(set(indices[row, :n])) == n and np.all(indices[row, n:] == 0)
        np.testing.assert_allclose(soft[row, :n].sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(soft[row, :n].argmax(axis=1), indices[row, :n])


def test_masked_value_is_low_enough():
    # The masked logit plus the largest possible Gumbel noise (−log(−log(1 − 2^-24)) ≈ 16.6) stays below any
    # realistic logit minus the smallest noise (−log(−log(tiny)) ≈ −4.5): a drawn location is never redrawn.
    assert MASKED_LOGIT + 17.0 < -1e3 - 5.0


# --- 6. errors -------------------------------------------------------------------------------------


def test_errors():
    sprites = np.zeros((2, 3, 3, 3, 1), np.float32)
    locations = np.zeros((2, 3, 2), np.int32)
    n = np.array([1, 2], np.int32)
    cases = [
        (lambda: place_sprites(sprites[0], locations, n, 5, 5), r"sprites must have shape \[B, M, s_h, s_w, C\]"),
        (lambda: place_sprites(sprites.astype(np.int32), locations, n, 5, 5), "sprites must be a float tensor"),
        (lambda: place_sprites(sprites, locations.astype(np.float32), n, 5, 5), "locations must be an integer"),
        (lambda: place_sprites(sprites, np.zeros((2, 3, 3), np.int32), n, 5, 5),
         r"locations must have shape \[B, M, 2\].*\(2, 3, 3\)"),
        (lambda: place_sprites(sprites, np.zeros((2, 4, 2), np.int32), n, 5, 5), "same number of objects M"),
        (lambda: place_sprites(sprites, np.zeros((1, 3, 2), np.int32), n, 5, 5), "same batch size"),
        (lambda: place_sprites(sprites, locations, np.array([1, 4], np.int32), 5, 5),
         r"num_objects must be in \[0, M = 3\]; got num_objects\[1\] = 4"),
        (lambda: place_sprites(sprites, locations, n, 0, 5), "height must be an integer >= 1; got 0"),
        (lambda: place_sprites(sprites, locations, n, 5, 2.0), "width must be an integer >= 1; got 2.0"),
        (lambda: place_sprites_soft(sprites, np.zeros((2, 3, 24), np.float32), n, 5, 5),
         r"D = height·width = 5·5 = 25; got shape \(2, 3, 24\)"),
        (lambda: bernoulli_mean(np.zeros(3, np.int32)), "canvas must be a float tensor"),
        (lambda: bernoulli_mean(np.zeros(3), epsilon=0.5), r"epsilon must be a float in \(0, 0.5\)"),
        (lambda: count_objects(np.zeros((2, 4, 4, 2), np.float32), 4.0, 10), r"\[B, H, W, 1\] or \[B, H, W\]"),
        (lambda: count_objects(np.zeros((2, 4, 4), np.float32), 0.0, 10), "gamma must be > 0"),
        (lambda: count_objects(np.zeros((2, 4, 4), np.float32), 4.0, -1), "max_objects must be an integer M >= 0"),
        (lambda: count_objects(np.zeros((2, 4, 4), np.float32), 4.0, 10, window=4), "window must be an odd"),
        (lambda: logit_scale(1), "num_locations must be an integer >= 2"),
        (lambda: logit_scale(4096, gamma=-1.0), "gamma must be a number > 0"),
        (lambda: sample_locations_gumbel(np.zeros((2, 5), np.float32), n, 0.0), "temperature must be > 0"),
        (lambda: sample_locations_gumbel(np.zeros(5, np.float32), n, 1.0), r"logits must have shape \[B, D\]"),
        (lambda: sample_locations_gumbel(np.zeros((2, 5), np.float32), n, 1.0, max_objects=1),
         r"num_objects must be in \[0, min\(M, D\) = min\(1, 5\)\]; got num_objects\[1\] = 2"),
        (lambda: sample_locations_gumbel(np.zeros((2, 1), np.float32), n, 1.0),
         r"min\(M, D\) = min\(10, 1\).*num_objects\[1\] = 2"),
        (lambda: sample_locations_gumbel(np.zeros((3, 5), np.float32), n, 1.0), "same batch size"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
