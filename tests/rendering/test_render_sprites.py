"""render_sprites against a plain-numpy transcription of SPAIR's Algorithm 1, plus properties,
gradients, tf.function / XLA, mixed precision and input validation."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.rendering import RenderSprites, render_sprites

# ----------------------------------------------------------------------------- reference


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_contains(box, y, x, height, width) -> bool:
    """CONTAINS(b, (y, x)): the centre of pixel (y, x) lies in the half-open box in pixel units."""
    y_min, x_min, y_max, x_max = box
    yc, xc = y + 0.5, x + 0.5
    return y_min * height <= yc < y_max * height and x_min * width <= xc < x_max * width


def reference_interpolate(box, value_map, y, x, height, width) -> np.ndarray:
    """INTERPOLATE(b, v, (y, x)): the sprite's texels tile the box (half-pixel centres); bilinear
    interpolation with the sprite coordinates clamped to the texel grid (edge replicate)."""
    y_min, x_min, y_max, x_max = box
    h, w = value_map.shape[:2]
    u = ((y + 0.5) - y_min * height) / ((y_max - y_min) * height) * h - 0.5
    v = ((x + 0.5) - x_min * width) / ((x_max - x_min) * width) * w - 0.5
    u = min(max(u, 0.0), h - 1.0)
    v = min(max(v, 0.0), w - 1.0)
    i0, j0 = int(math.floor(u)), int(math.floor(v))
    i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
    a, b = u - i0, v - j0
    return (
        (1 - a) * (1 - b) * value_map[i0, j0]
        + (1 - a) * b * value_map[i0, j1]
        + a * (1 - b) * value_map[i1, j0]
        + a * b * value_map[i1, j1]
    )


def reference_render(background, appearance, alpha, boxes, z_pres, z_depth) -> np.ndarray:
    """Algorithm 1, line by line, in float64, looping over images, pixels and objects."""
    background, appearance, alpha, boxes, z_pres, z_depth = (
        np.asarray(a, np.float64) for a in (background, appearance, alpha, boxes, z_pres, z_depth)
    )
    num_images, height, width, _ = background.shape
    num_objects = boxes.shape[1]
    out = background.copy()
    for n in range(num_images):
        alpha_tilde = [alpha[n, k] * z_pres[n, k] for k in range(num_objects)]
        gamma = [alpha[n, k] * z_pres[n, k] * _sigmoid(-z_depth[n, k]) for k in range(num_objects)]
        for y in range(height):
            for x in range(width):
                n_writes, weighted_sum, normalizer = 0, 0.0, 0.0
                for k in range(num_objects):
                    if reference_contains(boxes[n, k], y, x, height, width):
                        a = reference_interpolate(boxes[n, k], alpha_tilde[k], y, x, height, width)
                        g = reference_interpolate(boxes[n, k], gamma[k], y, x, height, width)
                        o = reference_interpolate(boxes[n, k], appearance[n, k], y, x, height, width)
                        o = a * o + (1 - a) * background[n, y, x]
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
    """True if no box edge (in pixels) is within 1e-3 px of a pixel centre, so that float32 and the
    float64 reference agree on CONTAINS."""
    frac = np.abs((np.asarray(values_px) - 0.5) - np.round(np.asarray(values_px) - 0.5))
    return bool(np.all(frac > 1e-3))


def _random_box(rng, kind, height, width):
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
        if _far_from_pixel_centres(box * np.array([height, width, height, width])):
            return box


def random_inputs(seed, batch, height, width, channels, num_objects, sprite_h, sprite_w, dtype=np.float32):
    rng = np.random.default_rng(seed)
    background = rng.random((batch, height, width, channels))
    appearance = rng.random((batch, num_objects, sprite_h, sprite_w, channels))
    alpha = rng.random((batch, num_objects, sprite_h, sprite_w, 1))
    alpha[alpha < 0.15] = 0.0  # fully transparent texels
    alpha[alpha > 0.85] = 1.0  # opaque texels
    kinds = [BOX_KINDS[(n * 3 + k) % len(BOX_KINDS)] for n in range(batch) for k in range(num_objects)]
    boxes = np.array([_random_box(rng, kind, height, width) for kind in kinds]).reshape(batch, num_objects, 4)
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
    px = boxes * np.array([height, width, height, width])
    box_h, box_w = px[..., 2] - px[..., 0], px[..., 3] - px[..., 1]
    assert np.any((box_h > 0) & (box_h < 1) & (box_w > 0) & (box_w < 1))  # tiny
    assert np.any((boxes[..., 0] < 0) & (boxes[..., 2] > 1))  # larger than the image
    assert np.any(boxes[..., 2] < 0) or np.any(boxes[..., 0] > 1) or np.any(boxes[..., 3] < 0) or np.any(boxes[..., 1] > 1)
    assert np.any((box_h < 0) | (box_w < 0))  # degenerate
    assert np.any((z_pres > 0) & (z_pres < 1)) and np.any(z_pres == 0)
    coverage = np.zeros((boxes.shape[0], height, width), int)
    for n in range(boxes.shape[0]):
        for k in range(boxes.shape[1]):
            for y in range(height):
                for x in range(width):
                    coverage[n, y, x] += reference_contains(boxes[n, k], y, x, height, width)
    assert coverage.max() >= 3  # overlaps
    assert np.any(coverage == 0)  # uncovered pixels


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


def test_pixel_centre_rule_on_exact_edges():
    """Half-open CONTAINS: an edge exactly on a pixel centre includes that pixel at the top/left and
    excludes it at the bottom/right (H, W powers of two so the edges are exact in float32)."""
    height, width = 16, 8
    background = np.zeros((1, height, width, 1), np.float32)
    appearance = np.ones((1, 1, 2, 2, 1), np.float32)
    alpha = np.ones((1, 1, 2, 2, 1), np.float32)
    boxes = np.array([[[3.5 / height, 1.5 / width, 7.5 / height, 4.5 / width]]], np.float32)
    out = render_sprites(background, appearance, alpha, boxes, np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32))
    covered = out.numpy()[0, :, :, 0] > 0
    expected = np.zeros((height, width), bool)
    expected[3:7, 1:4] = True
    np.testing.assert_array_equal(covered, expected)
    np.testing.assert_array_equal(out.numpy(), reference_render(background, appearance, alpha, boxes, np.ones((1, 1)), np.zeros((1, 1))))


@pytest.mark.parametrize("sprite_hw", [(6, 10), (3, 5), (4, 7)])
def test_single_opaque_object_reproduces_resized_appearance(sprite_hw):
    """alpha = 1, z_pres = 1, box on whole pixels: the box shows the sprite resized with
    tf.image.resize(bilinear, half-pixel centres) - the identity when the sizes match - and the rest
    of the image is the background."""
    height, width, channels = 20, 28, 3
    rows, cols = (4, 10), (9, 19)  # rows 4..9, cols 9..18 inclusive: a 6 x 10 pixel box
    rng = np.random.default_rng(7)
    background = rng.random((1, height, width, channels)).astype(np.float32)
    appearance = rng.random((1, 1) + sprite_hw + (channels,)).astype(np.float32)
    alpha = np.ones((1, 1) + sprite_hw + (1,), np.float32)
    boxes = np.array([[[rows[0] / height, cols[0] / width, rows[1] / height, cols[1] / width]]], np.float32)
    out = render_sprites(background, appearance, alpha, boxes, np.ones((1, 1), np.float32), np.full((1, 1), 0.3, np.float32)).numpy()
    box_px = (rows[1] - rows[0], cols[1] - cols[0])
    resized = tf.image.resize(appearance[0], box_px, method="bilinear", antialias=False).numpy()[0]
    if sprite_hw == box_px:
        np.testing.assert_allclose(resized, appearance[0, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, rows[0]:rows[1], cols[0]:cols[1]], resized, atol=1e-5)
    outside = np.ones((height, width), bool)
    outside[rows[0]:rows[1], cols[0]:cols[1]] = False
    np.testing.assert_array_equal(out[0][outside], background[0][outside])


def test_depth_ordering_lower_depth_dominates_more_as_depths_separate():
    """Two fully overlapping opaque objects (red and blue): the pixel is the convex combination
    with weights sigmoid(-z_depth); the object with lower depth takes over as the gap grows."""
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
        out = render_sprites(background, appearance, alpha, boxes, z_pres, z_depth).numpy()[0, 2:6, 2:6]
        red_expected = _sigmoid(gap / 2) / (_sigmoid(gap / 2) + _sigmoid(-gap / 2))
        np.testing.assert_allclose(out[..., 0], red_expected, atol=1e-6)
        np.testing.assert_allclose(out[..., 0] + out[..., 2], 1.0, atol=1e-6)
        red_share.append(out[0, 0, 0])
    assert red_share[0] == pytest.approx(0.5)
    assert np.all(np.diff(red_share) > 0) and red_share[-1] > 0.98


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
    """Central differences on a smooth point (no box edge within 1e-3 px of a pixel centre, so the
    set of covered pixels does not change over +-eps). Everything is float64 inside, so eps = 1e-6
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


def test_jit_compile_forward_and_gradient():
    """Under jit_compile the renderer gives the same values and gradients as the default graph.
    (XLA only manages by treating the data-dependent pair count as a compile-time constant, so it
    recompiles for every new set of box pixel ranges: documented as unusable for training in the
    module docstring; this test checks correctness only.)"""
    inputs = [tf.constant(a) for a in random_inputs(*CASES["gray_single"])]

    def value_and_grads(*args):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = render_sprites(*args)
            loss = tf.reduce_sum(tf.square(out - 0.5))
        return out, [tf.convert_to_tensor(g) for g in tape.gradient(loss, args)]

    out_xla, grads_xla = tf.function(value_and_grads, jit_compile=True)(*inputs)
    out, grads = value_and_grads(*inputs)
    np.testing.assert_allclose(out_xla.numpy(), out.numpy(), atol=1e-5)
    for name, g_xla, g in zip(ARG_NAMES, grads_xla, grads):
        # Sums over many pairs in a different order: float32 round-off relative to the largest entry.
        np.testing.assert_allclose(g_xla.numpy(), g.numpy(), atol=1e-4 * max(1.0, np.abs(g.numpy()).max()), err_msg=name)


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
