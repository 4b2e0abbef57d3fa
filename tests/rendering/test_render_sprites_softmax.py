"""render_sprites_softmax (SILOT supplement A.2) against the direct formula with image-sized maps, in numpy."""
import numpy as np
import pytest
import tensorflow as tf

from tfobj.rendering import render_sprites_softmax


def reference(background, appearance, alpha, boxes, z_pres, depth, temperature):
    """The seed's formula, literally: every object's α′, β′, γ′ as image-sized maps (bilinear, zero outside the
    sprite; γ′ = −inf outside the box and its half-texel fringe, render_sprites' CONTAINS), then per pixel
    Σ β′α′e^{γ′/λ} / Σ e^{γ′/λ}, or the background where no object contains the pixel. float64 loops."""
    batch, height, width, channels = background.shape
    _, num, sprite_h, sprite_w, _ = appearance.shape
    out = background.astype(np.float64).copy()
    for b in range(batch):
        maps = []
        for k in range(num):
            y0, x0, y1, x1 = boxes[b, k] * [height, width, height, width]
            beta_map = np.zeros((height, width, channels))
            alpha_map = np.zeros((height, width))
            inside = np.zeros((height, width), bool)
            for r in range(height):
                for c in range(width):
                    if not (y1 > y0 and x1 > x0):
                        continue
                    u = (r + 0.5 - y0) / (y1 - y0) * sprite_h - 0.5
                    v = (c + 0.5 - x0) / (x1 - x0) * sprite_w - 0.5
                    if not (-1 < u < sprite_h and -1 < v < sprite_w):
                        continue
                    inside[r, c] = True
                    i0, j0 = int(np.floor(u)), int(np.floor(v))
                    for i, wi in ((i0, 1 - (u - i0)), (i0 + 1, u - i0)):
                        for j, wj in ((j0, 1 - (v - j0)), (j0 + 1, v - j0)):
                            if 0 <= i < sprite_h and 0 <= j < sprite_w:
                                beta_map[r, c] += wi * wj * appearance[b, k, i, j]
                                alpha_map[r, c] += wi * wj * alpha[b, k, i, j, 0]
            alpha_p = alpha_map * z_pres[b, k]
            gamma_p = np.where(inside, alpha_p * depth[b, k], -np.inf)
            maps.append((beta_map, alpha_p, gamma_p, inside))
        for r in range(height):
            for c in range(width):
                terms = [(beta[r, c], a[r, c], g[r, c]) for beta, a, g, ins in maps if ins[r, c]]
                if not terms:
                    continue
                weights = np.array([np.exp(g / temperature) for _, _, g in terms])
                out[b, r, c] = sum(w * a * beta for w, (beta, a, _) in zip(weights, terms)) / weights.sum()
    return out


def random_scene(rng, batch=2, num=4, height=13, width=11, sprite=(4, 3), channels=3):
    boxes = []
    for _ in range(batch * num):
        y, x = rng.uniform(-0.3, 0.9, 2)
        h, w = rng.uniform(0.15, 0.7, 2)
        boxes.append([y, x, y + h, x + w])  # some partly outside the image
    boxes = np.array(boxes).reshape(batch, num, 4)
    boxes[0, -1] = [0.2, 0.2, 0.2, 0.5]  # an empty box: contains nothing
    z_pres = rng.uniform(0, 1, (batch, num))
    z_pres[-1, 0] = 0.0  # absent, but its box still enters the softmax with γ′ = 0
    return dict(background=rng.uniform(0, 1, (batch, height, width, channels)),
                appearance=rng.uniform(0, 1, (batch, num, *sprite, channels)),
                alpha=rng.uniform(0, 1, (batch, num, *sprite, 1)), boxes=boxes, z_pres=z_pres,
                depth=rng.uniform(0.01, 0.99, (batch, num)))


@pytest.mark.parametrize("seed, temperature", [(0, 0.25), (1, 0.25), (2, 1.0), (3, 0.02)])
def test_matches_the_direct_formula(seed, temperature):
    scene = random_scene(np.random.default_rng(seed))
    expected = reference(**scene, temperature=temperature)
    got = render_sprites_softmax(**{k: tf.constant(v, tf.float64) for k, v in scene.items()}, temperature=temperature)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)  # float64 both sides: round-off only


def test_deeper_opaque_objects_are_in_front_and_uncovered_pixels_are_the_background():
    """Two opaque objects over the same box: the larger depth wins as λ -> 0; pixels outside are the background."""
    background = np.full((1, 8, 8, 3), 0.3)
    appearance = np.stack([np.full((2, 2, 3), 0.9), np.full((2, 2, 3), 0.1)])[None]
    alpha = np.ones((1, 2, 2, 2, 1))
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75], [0.25, 0.25, 0.75, 0.75]]])
    out = render_sprites_softmax(background, appearance, alpha, boxes, np.ones((1, 2)), np.array([[0.9, 0.2]]),
                                 temperature=0.01).numpy()
    np.testing.assert_allclose(out[0, 3:5, 3:5], 0.9, atol=1e-12)  # well inside the box: the front object
    np.testing.assert_allclose(out[0, 0, :], 0.3)  # no box contains row 0: the background exactly


def test_gradients_against_finite_differences():
    scene = random_scene(np.random.default_rng(5), batch=1, num=3, height=7, width=6)
    variables = {k: tf.Variable(v, dtype=tf.float64) for k, v in scene.items()}
    probe = np.random.default_rng(6).normal(size=scene["background"].shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(render_sprites_softmax(**variables, temperature=0.25) * probe)
    grads = tape.gradient(loss, variables)
    for name in ("appearance", "alpha", "boxes", "z_pres", "depth", "background"):
        value, grad, eps = scene[name], grads[name].numpy(), 1e-6
        for index in list(np.ndindex(value.shape))[:: max(1, value.size // 12)]:
            plus, minus = value.copy(), value.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric = (np.sum(reference(**{**scene, name: plus}, temperature=0.25) * probe)
                       - np.sum(reference(**{**scene, name: minus}, temperature=0.25) * probe)) / (2 * eps)
            # Central differences of a piecewise-smooth function in float64: 1e-5 absolute, away from the
            # box edges' kinks (the random boxes keep pixel centres away from them at this eps).
            np.testing.assert_allclose(grad[index], numeric, atol=1e-5, err_msg=f"{name}{index}")


def test_xla_windows_match_the_exact_path():
    scene = {k: tf.constant(v, tf.float32) for k, v in random_scene(np.random.default_rng(7), height=24, width=24).items()}
    exact = render_sprites_softmax(**scene)
    compiled = tf.function(lambda s: render_sprites_softmax(**s, max_box_size=(24.0, 24.0)), jit_compile=True)(scene)
    np.testing.assert_allclose(compiled.numpy(), exact.numpy(), atol=1e-6)


def test_bad_arguments():
    scene = random_scene(np.random.default_rng(8))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        render_sprites_softmax(**scene, temperature=0.0)
    with pytest.raises(ValueError, match=r"render_sprites_softmax: `depth` must have rank 2"):
        render_sprites_softmax(**{**scene, "depth": scene["depth"][..., None]})
    with pytest.raises(TypeError, match="must be floating point"):
        render_sprites_softmax(**{**scene, "boxes": scene["boxes"].astype(np.int32)})
