"""render_sprites against a plain-numpy transcription of SPAIR's Algorithm 1 with the original
kernel's edge convention, plus properties, gradients, tf.function / XLA, mixed precision and input
validation."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.rendering import RenderSprites, render_sprites
from tfobj.rendering.render_sprites import _pixel_range, _sprite_coordinate

# ----------------------------------------------------------------------------- reference
# Written from the rule (module docstring / auto_yolo render_sprites_ops.cc), not from the TF code:
#   u = (y_c - y_min*H) / ((y_max - y_min)*H) * h - 0.5 (texel i centred at u = i), likewise v;
#   CONTAINS iff -1 < u < h and -1 < v < w (strict);
#   bilinear with per-tap validity: alpha / gamma taps outside the grid read 0, colour taps bg[y, x].


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_sprite_coords(box, y, x, height, width, h, w):
    y_min, x_min, y_max, x_max = box
    u = ((y + 0.5) - y_min * height) / ((y_max - y_min) * height) * h - 0.5
    v = ((x + 0.5) - x_min * width) / ((x_max - x_min) * width) * w - 0.5
    return u, v


def reference_contains(box, y, x, height, width, h, w) -> bool:
    """CONTAINS(b, (y, x)): the pixel centre is within half a texel of the box (-1 < u < h, -1 < v < w).
    Non-finite, empty and inverted boxes contain nothing (tfobj's API; the original never has them)."""
    y_min, x_min, y_max, x_max = box
    if not np.all(np.isfinite(box)) or y_max <= y_min or x_max <= x_min:
        return False
    u, v = reference_sprite_coords(box, y, x, height, width, h, w)
    return -1.0 < u < h and -1.0 < v < w


def reference_interpolate(box, value_map, y, x, height, width, pad) -> np.ndarray:
    """INTERPOLATE(b, v, (y, x)): bilinear read at (u, v); each of the four taps that falls outside
    the texel grid reads `pad` instead (0 for alpha and gamma, the background pixel for colour)."""
    h, w = value_map.shape[:2]
    u, v = reference_sprite_coords(box, y, x, height, width, h, w)
    i0, j0 = math.floor(u), math.floor(v)
    a, b = u - i0, v - j0
    total = 0.0
    for i, wi in ((i0, 1 - a), (i0 + 1, a)):
        for j, wj in ((j0, 1 - b), (j0 + 1, b)):
            tap = value_map[i, j] if (0 <= i < h and 0 <= j < w) else pad
            total = total + wi * wj * tap
    return total


def reference_render(background, appearance, alpha, boxes, z_pres, z_depth, importance="seed") -> np.ndarray:
    """Algorithm 1, line by line, in float64, looping over images, pixels and objects. importance "seed":
    gamma = alpha z_pres sigmoid(-z_depth) (supplement); "original": max(alpha z_pres 4 sigmoid(clip(z_depth, +-10)), 0.01)
    per texel (auto_yolo yolo_air.py)."""
    background, appearance, alpha, boxes, z_pres, z_depth = (
        np.asarray(a, np.float64) for a in (background, appearance, alpha, boxes, z_pres, z_depth)
    )
    num_images, height, width, _ = background.shape
    num_objects, h, w = appearance.shape[1:4]
    out = background.copy()
    for n in range(num_images):
        alpha_tilde = [alpha[n, k] * z_pres[n, k] for k in range(num_objects)]
        if importance == "seed":
            gamma = [alpha[n, k] * z_pres[n, k] * _sigmoid(-z_depth[n, k]) for k in range(num_objects)]
        else:
            depth = 4 * _sigmoid(np.clip(z_depth[n], -10, 10))
            gamma = [np.maximum(alpha[n, k] * z_pres[n, k] * depth[k], 0.01) for k in range(num_objects)]
        for y in range(height):
            for x in range(width):
                bg = background[n, y, x]
                n_writes, weighted_sum, normalizer = 0, 0.0, 0.0
                for k in range(num_objects):
                    if reference_contains(boxes[n, k], y, x, height, width, h, w):
                        a = reference_interpolate(boxes[n, k], alpha_tilde[k], y, x, height, width, pad=0.0)
                        g = reference_interpolate(boxes[n, k], gamma[k], y, x, height, width, pad=0.0)
                        o = reference_interpolate(boxes[n, k], appearance[n, k], y, x, height, width, pad=bg)
                        o = a * o + (1 - a) * bg
                        n_writes += 1
                        weighted_sum = weighted_sum + g * o
                        normalizer = normalizer + g
                # The contract: an empty normaliser leaves the background.
                if n_writes > 0 and np.all(normalizer != 0):
                    out[n, y, x] = weighted_sum / normalizer
    return out


# ----------------------------------------------------------------------------- inputs

BOX_KINDS = ("inside", "inside", "partial", "outside", "tiny_hit", "tiny", "huge", "degenerate", "zero")


def _far_from_pixel_centres(values_px) -> bool:
    """True if no value (in pixels) is within 1e-3 px of a pixel centre."""
    frac = np.abs((np.asarray(values_px) - 0.5) - np.round(np.asarray(values_px) - 0.5))
    return bool(np.all(frac > 1e-3))


def _fringe_edges_px(box, height, width, sprite_h, sprite_w):
    """The CONTAINS limits (u = -1, u = h, v = -1, v = w) in pixels: the box grown by half a texel."""
    top, left, bottom, right = box * np.array([height, width, height, width])
    half_h, half_w = (bottom - top) / (2 * sprite_h), (right - left) / (2 * sprite_w)
    return np.array([top - half_h, left - half_w, bottom + half_h, right + half_w])


def _random_box(rng, kind, height, width, sprite_h, sprite_w):
    while True:
        if kind == "inside":
            size = rng.uniform(0.15, 0.55, 2)
            lo = rng.uniform(0, 1 - size)
            box = np.array([lo[0], lo[1], lo[0] + size[0], lo[1] + size[1]])
        elif kind == "partial":  # straddles the image border
            size = rng.uniform(0.2, 0.6, 2)
            lo = rng.uniform(-size + 0.05, 1 - 0.05)
            box = np.array([lo[0], lo[1], lo[0] + size[0], lo[1] + size[1]])
        elif kind == "outside":
            size = rng.uniform(0.1, 0.4, 2)
            lo = rng.choice([-1.0, 1.0], 2) * rng.uniform(1.05, 1.5, 2)
            lo = np.where(lo < 0, lo - size, lo - 0.0)
            box = np.array([lo[0], rng.uniform(0, 0.5), lo[0] + size[0], rng.uniform(0.6, 1.0)])
            if rng.random() < 0.5:
                box = box[[1, 0, 3, 2]]
        elif kind == "tiny_hit":  # smaller than a pixel, around one pixel centre
            r, c = rng.integers(0, height), rng.integers(0, width)
            half = rng.uniform(0.1, 0.45, 2)
            centre = np.array([r + 0.5, c + 0.5]) + rng.uniform(-0.05, 0.05, 2)
            box = np.array([(centre[0] - half[0]) / height, (centre[1] - half[1]) / width,
                            (centre[0] + half[0]) / height, (centre[1] + half[1]) / width])
        elif kind == "tiny":  # smaller than a pixel, anywhere (usually contains no pixel centre)
            lo = rng.uniform(0, 1, 2)
            size = rng.uniform(0.1, 0.9, 2) / np.array([height, width])
            box = np.array([lo[0], lo[1], lo[0] + size[0], lo[1] + size[1]])
        elif kind == "huge":  # larger than the image
            box = np.array([rng.uniform(-0.4, -0.05), rng.uniform(-0.4, -0.05), rng.uniform(1.05, 1.4), rng.uniform(1.05, 1.4)])
        elif kind == "degenerate":  # inverted
            size = rng.uniform(0.1, 0.3, 2)
            lo = rng.uniform(0.2, 0.7, 2)
            box = np.array([lo[0] + size[0], lo[1], lo[0], lo[1] + size[1]])
            if rng.random() < 0.5:
                box = box[[1, 0, 3, 2]]
        elif kind == "zero":  # padding slot
            return np.zeros(4)
        else:
            raise AssertionError(kind)
        # Keep the CONTAINS limits (u = -1, u = h) away from pixel centres, so float32 and float64
        # agree on CONTAINS and +-eps finite differences do not cross them (alpha' -> 0 there, so a
        # crossing would only be a kink, but avoiding it keeps the checks clean).
        box32 = box.astype(np.float32).astype(np.float64)
        if _far_from_pixel_centres(_fringe_edges_px(box32, height, width, sprite_h, sprite_w)):
            return box


def random_inputs(seed, batch, height, width, channels, num_objects, sprite_h, sprite_w, dtype=np.float32):
    rng = np.random.default_rng(seed)
    background = rng.random((batch, height, width, channels))
    appearance = rng.random((batch, num_objects, sprite_h, sprite_w, channels))
    alpha = rng.random((batch, num_objects, sprite_h, sprite_w, 1))
    alpha[alpha < 0.15] = 0.0  # fully transparent texels
    alpha[alpha > 0.85] = 1.0  # opaque texels
    kinds = [BOX_KINDS[(n * 3 + k) % len(BOX_KINDS)] for n in range(batch) for k in range(num_objects)]
    boxes = np.array([_random_box(rng, kind, height, width, max(sprite_h, 1), max(sprite_w, 1)) for kind in kinds])
    boxes = boxes.reshape(batch, num_objects, 4)
    z_pres = rng.choice([0.0, 1.0, 0.3, 0.7], size=(batch, num_objects), p=[0.2, 0.4, 0.2, 0.2])
    z_pres[np.array([kind == "zero" for kind in kinds], bool).reshape(batch, num_objects)] = 0.0
    z_depth = rng.normal(0.0, 2.0, (batch, num_objects))
    # Make the float32 inputs exact so the float64 reference sees the same numbers.
    return [np.asarray(a, dtype) for a in (background, appearance, alpha, boxes, z_pres, z_depth)]


CASES = {
    # name: (seed, B, H, W, C, K, h, w)
    "rgb_batch3_nonsquare": (0, 3, 20, 28, 3, 6, 5, 7),
    "gray_single": (1, 1, 16, 16, 1, 9, 4, 4),
    "rgb_many_overlaps": (2, 2, 12, 12, 3, 12, 6, 3),
    "sprite_1x1_and_1xw": (3, 2, 10, 14, 3, 9, 1, 3),
    "no_objects": (4, 2, 9, 11, 3, 0, 4, 4),
    "big_sprites": (5, 1, 24, 18, 2, 9, 30, 20),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference_float32(case):
    inputs = random_inputs(*CASES[case])
    expected = reference_render(*inputs)
    got = render_sprites(*inputs)
    assert got.dtype == tf.float32 and got.shape == inputs[0].shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", ["rgb_batch3_nonsquare", "gray_single", "rgb_many_overlaps", "no_objects"])
def test_original_importance_matches_numpy_reference(case):
    inputs = random_inputs(*CASES[case])
    expected = reference_render(*inputs, importance="original")
    np.testing.assert_allclose(render_sprites(*inputs, importance="original").numpy(), expected, rtol=0, atol=1e-5)
    if case != "no_objects":  # the two importances really differ on these inputs
        assert np.abs(expected - reference_render(*inputs)).max() > 0.05


def test_original_importance_absent_object_pulls_towards_background():
    """The original code's floor: an absent object (z_pres = 0) still writes the background with
    importance 0.01, diluting an opaque present object it overlaps; the seed's importance does not."""
    background = np.zeros((1, 4, 4, 1), np.float32)
    sprites = np.ones((1, 2, 2, 2, 1), np.float32)
    boxes = np.array([[[0, 0, 1, 1], [0, 0, 1, 1]]], np.float32)
    z_pres, z_depth = np.array([[1.0, 0.0]], np.float32), np.zeros((1, 2), np.float32)
    seed = render_sprites(background, sprites, sprites, boxes, z_pres, z_depth).numpy()
    original = render_sprites(background, sprites, sprites, boxes, z_pres, z_depth, importance="original").numpy()
    np.testing.assert_allclose(seed[0, 1:3, 1:3], 1.0)  # interior pixels: fully the present object
    np.testing.assert_allclose(original[0, 1:3, 1:3], 2.0 / 2.01, rtol=1e-6)  # gamma 4*0.5 vs floor 0.01


@pytest.mark.parametrize("case", ["rgb_batch3_nonsquare", "rgb_many_overlaps"])
def test_matches_numpy_reference_float64(case):
    inputs = random_inputs(*CASES[case], dtype=np.float64)
    got = render_sprites(*inputs)
    assert got.dtype == tf.float64
    np.testing.assert_allclose(got.numpy(), reference_render(*inputs), rtol=0, atol=1e-12)


def test_reference_inputs_exercise_every_case():
    """Guards the test data itself: the random inputs really contain the promised situations."""
    background, appearance, alpha, boxes, z_pres, z_depth = random_inputs(*CASES["rgb_batch3_nonsquare"], dtype=np.float64)
    _, height, width, _ = background.shape
    h, w = appearance.shape[2:4]
    px = boxes * np.array([height, width, height, width])
    box_h, box_w = px[..., 2] - px[..., 0], px[..., 3] - px[..., 1]
    assert np.any((box_h > 0) & (box_h < 1) & (box_w > 0) & (box_w < 1))  # tiny
    assert np.any((boxes[..., 0] < 0) & (boxes[..., 2] > 1))  # larger than the image
    assert np.any(boxes[..., 2] < 0) or np.any(boxes[..., 0] > 1) or np.any(boxes[..., 3] < 0) or np.any(boxes[..., 1] > 1)
    assert np.any((box_h < 0) | (box_w < 0))  # degenerate
    assert np.any((z_pres > 0) & (z_pres < 1)) and np.any(z_pres == 0)
    coverage = np.zeros((boxes.shape[0], height, width), int)
    fringe_pairs = 0  # (object, pixel) pairs outside the box but within the half-texel fringe
    for n in range(boxes.shape[0]):
        for k in range(boxes.shape[1]):
            for y in range(height):
                for x in range(width):
                    if reference_contains(boxes[n, k], y, x, height, width, h, w):
                        coverage[n, y, x] += 1
                        u, v = reference_sprite_coords(boxes[n, k], y, x, height, width, h, w)
                        fringe_pairs += u < -0.5 or u > h - 0.5 or v < -0.5 or v > w - 0.5
    assert coverage.max() >= 3  # overlaps
    assert np.any(coverage == 0)  # uncovered pixels
    assert fringe_pairs >= 10


# ----------------------------------------------------------------------------- properties


def test_all_absent_is_background_exactly_with_finite_gradients():
    inputs = [tf.constant(a) for a in random_inputs(*CASES["rgb_batch3_nonsquare"])]
    inputs[4] = tf.zeros_like(inputs[4])  # z_pres = 0 everywhere
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = render_sprites(*inputs)
        loss = tf.reduce_sum(out * tf.random.stateless_uniform(out.shape, seed=[1, 2]))
    assert np.array_equal(out.numpy(), inputs[0].numpy())
    grads = tape.gradient(loss, inputs)
    for name, grad in zip(["background", "appearance", "alpha", "boxes", "z_pres", "z_depth"], grads):
        assert grad is not None, name
        assert np.all(np.isfinite(grad.numpy())), name


def _brute_force_range(start, end, sprite_size, image_size):
    """Pixels r in [0, image_size) with -1 < u(r) < sprite_size, u evaluated per pixel by the same
    `_sprite_coordinate` the renderer uses per (object, pixel) pair."""
    rows = tf.range(image_size, dtype=tf.float32)[None, :]
    u = _sprite_coordinate(rows, start[:, None], (end - start)[:, None], sprite_size).numpy()
    return (u > -1.0) & (u < sprite_size)


def test_pixel_range_is_exact_at_the_fringe_boundaries():
    """The per-object pixel range equals {r : -1 < u(r) < n} with strict inequalities: a pixel whose
    centre is exactly half a texel outside the box edge (u = -1 or u = n) is not contained, one an ulp
    closer is. Also random boxes whose limits fall within a few ulps of pixel centres, and boxes far
    smaller than a pixel (where the closed form and the per-pixel test round differently)."""
    image = 16
    # Exact case (powers of two): box rows [4.5, 8.5) px, sprite n = 2 -> half a texel = 1 px, so
    # u(3) = -1 and u(9) = 2 exactly: rows 4..8.
    lo, count = _pixel_range(tf.constant([4.5]), tf.constant([8.5]), 2.0, float(image), tf.constant([True]))
    assert (int(lo[0]), int(count[0])) == (4, 5)
    down, up = np.nextafter(np.float32(4.5), np.float32(0)), np.nextafter(np.float32(8.5), np.float32(99))
    lo, count = _pixel_range(tf.constant([down]), tf.constant([up]), 2.0, float(image), tf.constant([True]))
    assert (int(lo[0]), int(count[0])) == (3, 7)  # u(3) and u(9) now just inside (-1, 2)

    rng = np.random.default_rng(5)
    starts, ends, sizes = [], [], []
    for n in (1, 2, 3, 5, 14):
        for _ in range(300):
            size = rng.choice([rng.uniform(0.1, 20.0), rng.uniform(1e-7, 1e-3), float(rng.integers(1, 9))])
            # Put a limit (u = -1 or u = n) on, or a few ulps off, a pixel centre.
            centre = rng.integers(-2, image + 2) + 0.5
            limit_offset = size / (2 * n)
            start = centre + limit_offset if rng.random() < 0.5 else centre - size - limit_offset
            start = np.float32(start)
            for _ in range(rng.integers(-3, 4)):
                start = np.nextafter(start, np.float32(np.inf if rng.random() < 0.5 else -np.inf))
            starts.append(start)
            ends.append(np.float32(start + np.float32(size)))
            sizes.append(n)
    starts, ends, sizes = np.array(starts, np.float32), np.array(ends, np.float32), np.array(sizes)
    for n in np.unique(sizes):
        sel = sizes == n
        start, end = tf.constant(starts[sel]), tf.constant(ends[sel])
        lo, count = (t.numpy() for t in _pixel_range(start, end, float(n), float(image), tf.ones_like(start, tf.bool)))
        expected = _brute_force_range(start, end, float(n), image)
        got = (np.arange(image)[None, :] >= lo[:, None]) & (np.arange(image)[None, :] < (lo + count)[:, None])
        np.testing.assert_array_equal(got, expected, err_msg=f"n = {n}")
        assert expected.any(axis=1).mean() > 0.5  # most cases touch the image
    # Invalid boxes get empty ranges whatever their coordinates.
    lo, count = _pixel_range(tf.constant([2.0, np.nan]), tf.constant([6.0, 3.0]), 2.0, 16.0, tf.constant([False, False]))
    assert list(count.numpy()) == [0, 0]


@pytest.mark.parametrize("sprite_hw", [(6, 10), (3, 5), (4, 7)])
def test_opaque_object_interior_reproduces_resized_appearance(sprite_hw):
    """alpha = 1, z_pres = 1, box on whole pixels: pixels whose bilinear taps all lie in the texel grid
    (0 <= u <= h - 1, 0 <= v <= w - 1) show the sprite resized with tf.image.resize(bilinear,
    half-pixel centres) - the identity when the sizes match; pixels outside the half-texel fringe
    (u <= -1 or u >= h, likewise v) are the background exactly; the band between is partly transparent."""
    height, width, channels = 20, 28, 3
    rows, cols = (4, 10), (9, 19)  # rows 4..9, cols 9..18 inclusive: a 6 x 10 pixel box
    h, w = sprite_hw
    rng = np.random.default_rng(7)
    background = rng.random((1, height, width, channels)).astype(np.float32)
    appearance = rng.random((1, 1) + sprite_hw + (channels,)).astype(np.float32)
    alpha = np.ones((1, 1) + sprite_hw + (1,), np.float32)
    boxes = np.array([[[rows[0] / height, cols[0] / width, rows[1] / height, cols[1] / width]]], np.float32)
    out = render_sprites(background, appearance, alpha, boxes, np.ones((1, 1), np.float32), np.full((1, 1), 0.3, np.float32)).numpy()
    box_px = (rows[1] - rows[0], cols[1] - cols[0])
    resized = np.zeros((height, width, channels), np.float32)
    resized[rows[0]:rows[1], cols[0]:cols[1]] = tf.image.resize(appearance[0], box_px, method="bilinear", antialias=False).numpy()[0]
    if sprite_hw == box_px:
        np.testing.assert_allclose(resized[rows[0]:rows[1], cols[0]:cols[1]], appearance[0, 0], atol=1e-6)
    u = ((np.arange(height) + 0.5) - rows[0]) / box_px[0] * h - 0.5
    v = ((np.arange(width) + 0.5) - cols[0]) / box_px[1] * w - 0.5
    interior = ((u >= 0) & (u <= h - 1))[:, None] & ((v >= 0) & (v <= w - 1))[None, :]
    contained = ((u > -1) & (u < h))[:, None] & ((v > -1) & (v < w))[None, :]
    assert interior.sum() >= 4 * 8
    np.testing.assert_allclose(out[0][interior], resized[interior], atol=1e-5)
    np.testing.assert_array_equal(out[0][~contained], background[0][~contained])
    band = contained & ~interior
    assert band.any() == (sprite_hw != box_px)  # matching sizes: no pixel centre lies in the band
    # alpha' < 1 exactly in the band: there (only) the pixel depends on the background.
    other = render_sprites(1.0 - background, appearance, alpha, boxes, np.ones((1, 1), np.float32),
                           np.full((1, 1), 0.3, np.float32)).numpy()
    np.testing.assert_allclose(other[0][interior], out[0][interior], atol=1e-6)
    assert np.all(np.abs(other[0][band] - out[0][band]).max(axis=-1) > 1e-3)


def _coverage_1d(u, n):
    """Sum of the in-grid bilinear weights along one axis: 1 inside [0, n-1], fading linearly to 0 at
    u = -1 and u = n (the zero-padded read of an all-ones map)."""
    return np.clip(np.minimum(1.0 + u, n - u), 0.0, 1.0)


def test_opaque_white_sprite_fades_over_the_half_texel_band():
    """White opaque sprite on black: alpha' = W (the in-grid weight) and the colour read is W (white
    taps, black padding), so the pixel is alpha' o' = W^2 with W = Wu * Wv - 1 well inside the box,
    1/4 on a pixel centre lying on the box edge (W = 1/2), 0 half a texel outside."""
    height, width, h, w = 16, 16, 2, 3  # half a texel: 1.5 px vertically, ~1.4 px horizontally
    top, left, box_h, box_w = 3.5, 2.25, 6.0, 8.5  # row 3's centre is on the top edge (u = -1/2)
    boxes = np.array([[[top / height, left / width, (top + box_h) / height, (left + box_w) / width]]], np.float32)
    out = render_sprites(np.zeros((1, height, width, 1), np.float32), np.ones((1, 1, h, w, 1), np.float32),
                         np.ones((1, 1, h, w, 1), np.float32), boxes, np.ones((1, 1), np.float32),
                         np.zeros((1, 1), np.float32)).numpy()[0, :, :, 0]
    u = ((np.arange(height) + 0.5) - top) / box_h * h - 0.5
    v = ((np.arange(width) + 0.5) - left) / box_w * w - 0.5
    coverage = _coverage_1d(u, h)[:, None] * _coverage_1d(v, w)[None, :]
    np.testing.assert_allclose(out, coverage ** 2, atol=1e-6)
    assert u[3] == -0.5 and out[3, 5] == pytest.approx(0.25)
    fringe = (coverage > 0) & (coverage < 1)
    assert fringe.sum() >= 20 and np.all((out[fringe] > 0) & (out[fringe] < 1))
    assert np.all(out[coverage == 1] == 1.0)
    # Rows 2 and 10 are drawn (faintly) although their centres are outside the box; rows 1 and 11 are not.
    assert out[2].max() > 0 and out[10].max() > 0 and out[1].max() == 0 and out[11].max() == 0


def test_depth_ordering_lower_depth_dominates_more_as_depths_separate():
    """Two fully overlapping opaque objects (red and blue): the pixel is the convex combination
    with weights sigmoid(-z_depth); the object with lower depth takes over as the gap grows.
    (Checked on the box's interior 2 x 2 pixels, 0 <= u <= 1, where alpha' = 1.)"""
    background = np.zeros((1, 8, 8, 3), np.float32)
    appearance = np.zeros((1, 2, 2, 2, 3), np.float32)
    appearance[0, 0, ..., 0] = 1.0  # red
    appearance[0, 1, ..., 2] = 1.0  # blue
    alpha = np.ones((1, 2, 2, 2, 1), np.float32)
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]] * 2], np.float32)
    z_pres = np.ones((1, 2), np.float32)
    red_share = []
    for gap in [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]:
        z_depth = np.array([[-gap / 2, gap / 2]], np.float32)  # red in front
        out = render_sprites(background, appearance, alpha, boxes, z_pres, z_depth).numpy()[0, 3:5, 3:5]
        red_expected = _sigmoid(gap / 2) / (_sigmoid(gap / 2) + _sigmoid(-gap / 2))
        np.testing.assert_allclose(out[..., 0], red_expected, atol=1e-6)
        np.testing.assert_allclose(out[..., 0] + out[..., 2], 1.0, atol=1e-6)
        red_share.append(out[0, 0, 0])
    assert red_share[0] == pytest.approx(0.5)
    assert np.all(np.diff(red_share) > 0) and red_share[-1] > 0.98


def test_box_size_gradient_resists_shrinking():
    """The reason for the edge convention. Target: an opaque white 8 x 8 px square on black. A white
    opaque sprite (4 x 4 texels) in a box centred on it, 8 px wide and `box_h` px tall, reconstructs it
    with a squared error. With the box too small (7 px) the loss decreases as the box grows (d loss /
    d box_h < 0), also confirmed by a finite difference; too large (10 px), it decreases as the box
    shrinks. (The optimum is near 9 px, a quarter texel per side more than the object: the band renders
    W^2, see the test above.) With hard box edges and edge-clamped interpolation this gradient was
    exactly 0 (a uniform sprite renders the same colour at every covered pixel and which pixels are
    covered is piecewise constant), so nothing in the reconstruction resisted the KL pulling SPAIR's
    boxes small."""
    size, h = 16, 4
    target = np.zeros((1, size, size, 1))
    target[0, 4:12, 4:12] = 1.0
    sprite = np.ones((1, 1, h, h, 1))

    def loss_fn(box_h):
        box_h = tf.convert_to_tensor(box_h, tf.float64)
        boxes = tf.reshape(tf.stack([8.0 - box_h / 2, tf.constant(4.0, tf.float64), 8.0 + box_h / 2,
                                     tf.constant(12.0, tf.float64)]) / size, [1, 1, 4])
        out = render_sprites(tf.zeros((1, size, size, 1), tf.float64), sprite, sprite, boxes,
                             tf.ones((1, 1), tf.float64), tf.zeros((1, 1), tf.float64))
        return tf.reduce_sum(tf.square(out - target))

    for box_h, sign in [(7.0, -1.0), (7.6, -1.0), (8.0, -1.0), (10.0, 1.0)]:
        variable = tf.Variable(box_h, dtype=tf.float64)
        with tf.GradientTape() as tape:
            loss = loss_fn(variable)
        grad = float(tape.gradient(loss, variable))
        eps = 1e-6
        numeric = (float(loss_fn(box_h + eps)) - float(loss_fn(box_h - eps))) / (2 * eps)
        assert grad == pytest.approx(numeric, rel=1e-6), box_h
        assert sign * grad > 1.0, (box_h, grad)  # not a rounding-level effect: the loss is O(10)


# ----------------------------------------------------------------------------- gradients

ARG_NAMES = ["background", "appearance", "alpha", "boxes", "z_pres", "z_depth"]


def test_gradients_finite_for_every_input_including_empty_normalizer():
    inputs = random_inputs(*CASES["rgb_batch3_nonsquare"])
    inputs[2][0, :2] = 0.0  # objects whose alpha is zero everywhere: covered pixels with normalizer 0
    inputs = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = render_sprites(*inputs)
        loss = tf.reduce_sum(tf.square(out - 0.5))
    assert np.all(np.isfinite(out.numpy()))
    grads = tape.gradient(loss, inputs)
    for name, grad in zip(ARG_NAMES, grads):
        assert grad is not None, name
        grad = tf.convert_to_tensor(grad).numpy()
        assert np.all(np.isfinite(grad)), name
        assert np.any(grad != 0), name  # the gradient really flows to every input


def test_finite_differences_float64():
    """Central differences on a smooth point (no CONTAINS limit - box edge +- half a texel - within
    1e-3 px of a pixel centre, so the set of covered pixels does not change over +-eps; the checked box
    gradients include the fade across the half-texel band). Everything is float64 inside, so eps = 1e-6
    leaves an O(eps^2) truncation error and ~1e-10 round-off: a 1e-6 tolerance is generous."""
    inputs = random_inputs(*CASES["rgb_many_overlaps"], dtype=np.float64)
    weights = np.random.default_rng(11).random(inputs[0].shape)

    def loss(args):
        return float(np.sum(render_sprites(*args).numpy() * weights))

    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = tf.reduce_sum(render_sprites(*tensors) * weights)
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, tensors)]

    # Entries to check: every box coordinate and the z's of present, visible objects, plus alpha and
    # appearance texels of one of them, and a background pixel under it.
    boxes, z_pres = inputs[3], inputs[4]
    visible = [(n, k) for n in range(boxes.shape[0]) for k in range(boxes.shape[1])
               if z_pres[n, k] > 0 and np.all(boxes[n, k, 2:] - boxes[n, k, :2] > 0.1)
               and np.all(boxes[n, k, :2] < 0.9) and np.all(boxes[n, k, 2:] > 0.1)]
    assert len(visible) >= 3
    n, k = visible[0]
    checks = [(3, (n2, k2, i)) for n2, k2 in visible for i in range(4)]
    checks += [(4, (n, k)), (5, (n, k)), (2, (n, k, 1, 1, 0)), (2, (n, k, 0, 2, 0)), (1, (n, k, 1, 1, 2))]
    row = int(np.clip(np.mean(boxes[n, k, [0, 2]]), 0, 0.99) * inputs[0].shape[1])
    col = int(np.clip(np.mean(boxes[n, k, [1, 3]]), 0, 0.99) * inputs[0].shape[2])
    checks.append((0, (n, row, col, 1)))
    eps = 1e-6
    nonzero = 0
    for arg, index in checks:
        plus = [a.copy() for a in inputs]
        minus = [a.copy() for a in inputs]
        plus[arg][index] += eps
        minus[arg][index] -= eps
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        assert grads[arg][index] == pytest.approx(numeric, rel=1e-6, abs=1e-6), (ARG_NAMES[arg], index)
        nonzero += abs(numeric) > 1e-3
    assert nonzero >= len(checks) // 2  # the checks are not vacuous


# ----------------------------------------------------------------------------- graph modes


def test_tf_function_with_unknown_shapes():
    specs = [tf.TensorSpec([None] * rank, tf.float32) for rank in (4, 5, 5, 3, 2, 2)]
    fn = tf.function(render_sprites, input_signature=specs)
    for case in ["rgb_batch3_nonsquare", "gray_single", "no_objects"]:
        inputs = random_inputs(*CASES[case])
        np.testing.assert_allclose(fn(*inputs).numpy(), render_sprites(*inputs).numpy(), atol=1e-6)
    # Unknown K and B = 0.
    empty = random_inputs(0, 0, 6, 5, 3, 4, 3, 3)
    assert fn(*empty).shape == (0, 6, 5, 3)
    assert render_sprites(*empty).shape == (0, 6, 5, 3)


def _value_and_grads(*args, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch(args)
        out = render_sprites(*args, **kwargs)
        loss = tf.reduce_sum(tf.square(out - 0.5))
    return out, [tf.convert_to_tensor(g) for g in tape.gradient(loss, args)]


def _assert_same_values_and_grads(got, expected):
    np.testing.assert_allclose(got[0].numpy(), expected[0].numpy(), atol=1e-5)
    for name, g_got, g in zip(ARG_NAMES, got[1], expected[1]):
        # Sums over many pairs in a different order: float32 round-off relative to the largest entry.
        np.testing.assert_allclose(g_got.numpy(), g.numpy(), atol=1e-4 * max(1.0, np.abs(g.numpy()).max()), err_msg=name)


@pytest.mark.parametrize("case, importance", [("gray_single", "seed"), ("rgb_batch3_nonsquare", "seed"),
                                              ("rgb_many_overlaps", "original")])
def test_jit_compile_forward_and_gradient(case, importance):
    """Under jit_compile (static pair windows; no bound: the whole image) the renderer gives the values
    and gradients of the ragged pair path, on boxes of every kind (outside, huge, inverted, NaN-free).
    `method="pairs"`: the default "auto" would compile the dense path here (the window is the image)."""
    inputs = [tf.constant(a) for a in random_inputs(*CASES[case])]
    xla = tf.function(lambda *a: _value_and_grads(*a, importance=importance, method="pairs"), jit_compile=True)
    _assert_same_values_and_grads(xla(*inputs), _value_and_grads(*inputs, importance=importance, method="pairs"))


def _bounded_inputs(seed, max_box_px):
    """Boxes computed inside the function from a variable (so XLA cannot treat their values as
    constants), sizes up to `max_box_px` pixels on a 24x36 image, some near the image border."""
    rng = np.random.default_rng(seed)
    batch, height, width, num_objects = 2, 24, 36, 7
    background = rng.random((batch, height, width, 3)).astype(np.float32)
    appearance = rng.random((batch, num_objects, 5, 4, 3)).astype(np.float32)
    alpha = rng.random((batch, num_objects, 5, 4, 1)).astype(np.float32)
    size = rng.uniform(0.3, 1.0, (batch, num_objects, 2)) * max_box_px / np.array([height, width])
    size[0, 0] = max_box_px / np.array([height, width])  # a box of exactly the bound
    centre = rng.uniform(-0.1, 1.1, (batch, num_objects, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    z_pres = rng.choice([0.0, 1.0, 0.6], (batch, num_objects)).astype(np.float32)
    z_depth = rng.normal(0, 2, (batch, num_objects)).astype(np.float32)
    return background, appearance, alpha, boxes, z_pres, z_depth


def test_jit_compile_with_box_bound_matches_ragged_path_and_compiles_once():
    """SPAIR's case: boxes computed in the graph, a static bound on their size. One XLA program serves
    every box configuration (new boxes change no shape), and each gives the ragged path's result."""
    max_box = (10.0, 10.0)
    shift = tf.Variable(tf.zeros([2, 7, 4]))

    @tf.function(jit_compile=True)
    def render_xla(background, appearance, alpha, boxes, z_pres, z_depth):
        return _value_and_grads(background, appearance, alpha, boxes + shift, z_pres, z_depth, max_box_size=max_box)

    for seed in range(3):
        inputs = [tf.constant(a) for a in _bounded_inputs(seed, max_box[0])]
        translation = tf.random.stateless_uniform([2, 7, 2], [seed, 1], -0.05, 0.05)
        shift.assign(tf.concat([translation, translation], -1))  # moves the boxes, keeps their sizes
        shifted = list(inputs)
        shifted[3] = inputs[3] + shift
        _assert_same_values_and_grads(render_xla(*inputs), _value_and_grads(*shifted))
    assert render_xla.experimental_get_tracing_count() == 1


def test_jit_compile_cuts_boxes_larger_than_the_bound_to_their_window():
    """A box above max_box_size keeps only the first rows/columns of its pixel rectangle under XLA."""
    background = np.zeros((1, 24, 24, 1), np.float32)
    sprite = np.ones((1, 1, 2, 2, 1), np.float32)
    boxes = np.array([[[0.0, 0.0, 1.0, 1.0]]], np.float32)  # 24 px; window floor(6 * 1.5) + 2 = 11
    ones = np.ones((1, 1), np.float32)
    out = tf.function(lambda *a: render_sprites(*a, max_box_size=(6.0, 6.0)), jit_compile=True)(
        background, sprite, sprite, boxes, ones, ones - 1)
    assert np.all(out.numpy()[0, :11, :11] > 0) and np.all(out.numpy()[0, 11:] == 0) and np.all(out.numpy()[0, :, 11:] == 0)


# ----------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("dtype, eps", [(tf.float16, 2.0 ** -10), (tf.bfloat16, 2.0 ** -7)])
def test_mixed_precision_inputs(dtype, eps):
    """The renderer casts to float32 inside, so low-precision inputs give exactly the float32 result
    of the *rounded* inputs, rounded once to the input dtype. Against the unrounded float32 inputs
    the difference comes from rounding the inputs (relative eps/2 on every texel and box coordinate)
    and the output (<= eps/2 in [0, 1]); the sum over a few interpolation and blending terms stays
    within a few eps, so 8 eps (float16 1/128, bfloat16 1/16) is a safe bound for 99% of the values
    (a pixel may flip where a rounded box edge crosses a pixel centre)."""
    inputs = random_inputs(*CASES["rgb_batch3_nonsquare"])
    low = [tf.cast(a, dtype) for a in inputs]
    out = render_sprites(*low)
    assert out.dtype == dtype
    out32 = tf.cast(out, tf.float32).numpy()
    assert np.all(np.isfinite(out32))
    expected = tf.cast(render_sprites(*[tf.cast(a, tf.float32) for a in low]), dtype)
    np.testing.assert_array_equal(out32, tf.cast(expected, tf.float32).numpy())
    close = np.abs(out32 - render_sprites(*inputs).numpy()) <= 8 * eps
    assert close.mean() >= 0.99
    with tf.GradientTape() as tape:
        tape.watch(low)
        loss = tf.reduce_sum(tf.cast(render_sprites(*low), tf.float32))
    for name, grad in zip(ARG_NAMES, tape.gradient(loss, low)):
        assert grad is not None and grad.dtype == dtype, name
        assert np.all(np.isfinite(tf.cast(tf.convert_to_tensor(grad), tf.float32).numpy())), name


def test_keras_layer_float32_and_mixed_policy():
    inputs = random_inputs(*CASES["gray_single"])
    layer = RenderSprites(name="renderer")
    np.testing.assert_array_equal(layer(*inputs).numpy(), render_sprites(*inputs).numpy())
    clone = RenderSprites.from_config(layer.get_config())
    assert clone.name == "renderer" and not clone.weights
    original = RenderSprites.from_config(RenderSprites(importance="original", max_box_size=(6, 6)).get_config())
    assert (original.importance, original.max_box_size) == ("original", (6.0, 6.0))
    np.testing.assert_array_equal(original(*inputs).numpy(), render_sprites(*inputs, importance="original").numpy())
    # mixed_float16: no autocast of the inputs (float32 boxes keep their precision), float16 output.
    mixed = RenderSprites(dtype="mixed_float16")
    out = mixed(*inputs)
    assert out.dtype == tf.float16
    np.testing.assert_array_equal(out.numpy(), tf.cast(render_sprites(*inputs), tf.float16).numpy())
    half_background = [tf.cast(inputs[0], tf.float16)] + inputs[1:]
    np.testing.assert_array_equal(mixed(*half_background).numpy(), render_sprites(*half_background).numpy())
    # Functional model with symbolic inputs of unknown batch size.
    symbolic = [keras.Input(a.shape[1:]) for a in inputs]
    model = keras.Model(symbolic, RenderSprites()(*symbolic))
    np.testing.assert_allclose(model(inputs).numpy(), render_sprites(*inputs).numpy(), atol=1e-6)


# ----------------------------------------------------------------------------- errors


def _good_inputs():
    return random_inputs(0, 2, 8, 10, 3, 4, 3, 5)


@pytest.mark.parametrize(
    "arg, shape, message",
    [
        (0, (8, 10, 3), r"`background` must have rank 4 .*got shape \[8, 10, 3\]"),
        (1, (2, 4, 3, 5), r"`appearance` must have rank 5"),
        (2, (2, 4, 3, 5, 3), r"`alpha` has shape \[2, 4, 3, 5, 3\] but expected \[2, 4, 3, 5, 1\]"),
        (3, (2, 4, 2), r"`boxes` has shape \[2, 4, 2\] but expected \[2, 4, 4\]"),
        (3, (2, 5, 4), r"`boxes` has shape \[2, 5, 4\] but expected \[2, 4, 4\].*K = 4 from `appearance`"),
        (4, (2, 4, 1), r"`z_pres` must have rank 2"),
        (5, (3, 4), r"`z_depth` has shape \[3, 4\] but expected \[2, 4\].*B = 2 from `background`"),
        (1, (2, 4, 3, 5, 2), r"`appearance` has shape \[2, 4, 3, 5, 2\] but expected \[2, 4, 3, 5, 3\].*C = 3"),
        (2, (2, 4, 3, 4, 1), r"`alpha` has shape \[2, 4, 3, 4, 1\] but expected \[2, 4, 3, 5, 1\].*w = 5"),
    ],
)
def test_shape_errors(arg, shape, message):
    inputs = _good_inputs()
    inputs[arg] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=message):
        render_sprites(*inputs)


@pytest.mark.parametrize("kwargs, message", [(dict(importance="softmax"), "importance must be one of"),
                                             (dict(max_box_size=(0.0, 5.0)), "max_box_size must be"),
                                             (dict(max_box_size=(5.0,)), "max_box_size must be"),
                                             (dict(max_box_size=8.0), "max_box_size must be")])
def test_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_sprites(*_good_inputs(), **kwargs)


def test_dtype_and_empty_sprite_errors():
    inputs = _good_inputs()
    inputs[3] = inputs[3].astype(np.int32)
    with pytest.raises(TypeError, match="`boxes` must be floating point"):
        render_sprites(*inputs)
    inputs = random_inputs(0, 1, 8, 8, 3, 2, 0, 3)
    with pytest.raises(ValueError, match="sprite size h must be positive"):
        render_sprites(*inputs)


def test_non_finite_boxes_render_nothing_with_finite_gradients():
    background = np.full((1, 8, 8, 1), 0.25, np.float32)
    sprite = np.ones((1, 3, 2, 2, 1), np.float32)
    boxes = tf.constant([[[np.nan, 0, 1, 1], [0.25, 0.25, 0.5, np.inf], [0.5, 0.5, 0.75, 0.75]]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(boxes)
        out = render_sprites(background, sprite, sprite, boxes, np.ones((1, 3), np.float32), np.zeros((1, 3), np.float32))
        loss = tf.reduce_sum(out * np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1))
    expected = background.copy()
    expected[0, 4:6, 4:6] = 1.0  # only the finite box
    np.testing.assert_array_equal(out.numpy(), expected)
    grad = tape.gradient(loss, boxes).numpy()
    assert np.all(np.isfinite(grad)) and np.all(grad[0, :2] == 0)
