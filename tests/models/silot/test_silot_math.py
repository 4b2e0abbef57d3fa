"""SILOT's pure functions against plain-Python references of the supplement's equations."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.silot.silot_config import SILOTConfig
from tfobj.models.silot.silot_math import (
    gaussian_weight, select_objects, update_depth, update_position, update_size)


def reference_selection(propagated, discovered, slots):
    """The selection rule literally, in Python: rank all objects by presence (ties: lower index first), keep the
    K best; selected propagated objects stay in their slots; freed slots, in order, take the selected discovered
    objects in index order."""
    everything = list(propagated) + list(discovered)
    order = sorted(range(len(everything)), key=lambda i: (-everything[i], i))[:slots]
    kept = {i for i in order if i < slots}
    new = sorted(i for i in order if i >= slots)
    source, is_new = [], []
    for slot in range(slots):
        if slot in kept:
            source.append(slot)
            is_new.append(False)
        else:
            source.append(new.pop(0))
            is_new.append(True)
    return source, is_new


def test_selection_matches_the_rule_on_random_cases():
    rng = np.random.default_rng(0)
    for trial in range(200):
        slots, extra = rng.integers(1, 6), rng.integers(0, 8)
        propagated = rng.random((3, slots)).round(1)  # rounding makes ties common
        discovered = rng.random((3, slots + extra)).round(1)
        source, is_new = select_objects(propagated, discovered)
        for b in range(3):
            expected = reference_selection(propagated[b], discovered[b], slots)
            assert source.numpy()[b].tolist() == expected[0], (trial, b)
            assert is_new.numpy()[b].tolist() == expected[1], (trial, b)


def test_selection_keeps_identities_of_surviving_objects():
    source, is_new = select_objects([[0.9, 0.1, 0.8]], [[0.05, 0.95, 0.2, 0.5]])
    # Slot 1 (0.1) is freed and takes the best discovered object (index 3 + 1 = 4).
    assert source.numpy().tolist() == [[0, 4, 2]] and is_new.numpy().tolist() == [[False, True, False]]


def test_selection_needs_enough_discovered_objects():
    with pytest.raises(ValueError, match="at least K = 3 discovered"):
        select_objects(np.zeros((1, 3)), np.zeros((1, 2)))


def test_attribute_updates_are_the_supplement_s_equations():
    rng = np.random.default_rng(1)
    previous, z = rng.uniform(0.05, 0.95, 50), rng.normal(size=50) * 3
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(update_position(previous, z).numpy(), previous + np.tanh(z), rtol=1e-12)
    np.testing.assert_allclose(update_size(previous, z).numpy(), sig(logit(previous) + z), rtol=1e-9)
    np.testing.assert_allclose(update_depth(previous, z).numpy(), sig(logit(previous) + z), rtol=1e-9)
    # A zero update leaves every attribute where it was.
    np.testing.assert_allclose(update_size(previous, 0 * z).numpy(), previous, rtol=1e-9)


def test_gaussian_weight_is_the_2d_normal_density():
    from scipy import stats

    rng = np.random.default_rng(2)
    relative = rng.normal(size=(20, 2)) * 0.2
    std = SILOTConfig().attention_std
    expected = stats.multivariate_normal(mean=[0, 0], cov=std ** 2 * np.eye(2)).pdf(relative)
    np.testing.assert_allclose(gaussian_weight(relative, std).numpy(), expected, rtol=1e-10)
    assert gaussian_weight(np.zeros(2), std).numpy() == pytest.approx(1 / (2 * math.pi * std ** 2))


def test_config_defaults_are_table_1_and_bad_values_are_refused():
    config = SILOTConfig()
    assert (config.num_objects, config.num_what, config.attention_std, config.render_temperature) == (16, 64, 0.1, 0.25)
    assert config.appearance_offset_scale == (0.0, 2.0) and config.transparency_offset_scale == (5.0, 0.1)
    assert (config.discovery_dropout, config.curriculum_steps, config.patience) == (0.5, 40000, 30000)
    from tfobj.models.silot.silot_config import SILOT_TRAINING

    assert (SILOT_TRAINING.batch_size, SILOT_TRAINING.learning_rate, SILOT_TRAINING.global_clipnorm) == (16, 1e-4, 10.0)
    with pytest.raises(ValueError, match="discovery_dropout must be in"):
        SILOTConfig(discovery_dropout=1.0)
    with pytest.raises(ValueError, match="renderer must be one of"):
        SILOTConfig(renderer="softmax")


def test_gated_what_is_sqair_s_update():
    """The gated what posterior (original code's SQAIRPropagationLayer), element by element in plain Python."""
    from tfobj.models.silot.silot_math import gated_what

    rng = np.random.default_rng(3)
    a = 5
    previous, in_mean, temp_mean = (rng.normal(size=(2, a)) for _ in range(3))
    in_std, temp_std = rng.uniform(0.1, 2, (2, a)), rng.uniform(0.1, 2, (2, a))
    gate_logits = rng.normal(size=(2, 3 * a)) * 3
    mean, std, gates = gated_what(previous, in_mean, in_std, temp_mean, temp_std, gate_logits)
    for b in range(2):
        for j in range(a):
            f, i, t = (0.9999 / (1 + math.exp(-(gate_logits[b, g * a + j] + 1))) for g in range(3))
            expected_mean = f * previous[b, j] + (1 - i) * in_mean[b, j] + (1 - t) * temp_mean[b, j]
            expected_std = (1 - i) * in_std[b, j] + (1 - t) * temp_std[b, j]
            assert mean.numpy()[b, j] == pytest.approx(expected_mean, rel=1e-12)
            assert std.numpy()[b, j] == pytest.approx(expected_std, rel=1e-12)
            assert gates.numpy()[b, j] == pytest.approx(f, rel=1e-12)


def test_propagation_kl_against_tfp_and_table1():
    import tensorflow_probability as tfp

    from tfobj.models.silot.silot_math import propagation_kl, static_propagation_prior

    c = SILOTConfig()
    prior = static_propagation_prior(c.propagation_prior_yx, c.propagation_prior_hw, c.propagation_prior_what,
                                     c.propagation_prior_depth)
    # Table 1, propagation: z̃^{h,w} ~ N(0, 0.3), z̃^{y,x} ~ N(0, 0.3), z̃^what ~ N(0, 0.4), z̃^depth ~ N(0, 1).
    np.testing.assert_allclose(prior["where_mean"].numpy(), [0, 0, 0, 0])
    np.testing.assert_allclose(prior["where_std"].numpy(), [0.3, 0.3, 0.3, 0.3])
    assert (float(prior["what_mean"]), float(prior["what_std"])) == (0.0, pytest.approx(0.4))
    assert (float(prior["depth_mean"]), float(prior["depth_std"])) == (0.0, 1.0)
    rng = np.random.default_rng(4)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    std = lambda *shape: rng.uniform(0.2, 2, shape).astype(np.float32)  # noqa: E731
    posterior = dict(where_mean=f32(2, 3, 4), where_std=std(2, 3, 4), size_logit_mean=f32(2, 3, 2),
                     what_mean=f32(2, 3, 5), what_std=std(2, 3, 5), depth_mean=f32(2, 3, 1), depth_std=std(2, 3, 1))
    tfd = tfp.distributions

    def kl(mean, scale, prior_mean, prior_std):
        return tfd.Normal(mean, scale).kl_divergence(tfd.Normal(prior_mean, prior_std)).numpy().sum(-1)

    got = propagation_kl(posterior, prior)
    np.testing.assert_allclose(got["where"], kl(posterior["where_mean"], posterior["where_std"], 0.0, 0.3), rtol=1e-5)
    np.testing.assert_allclose(got["what"], kl(posterior["what_mean"], posterior["what_std"], 0.0, 0.4), rtol=1e-5)
    np.testing.assert_allclose(got["depth"], kl(posterior["depth_mean"], posterior["depth_std"], 0.0, 1.0), rtol=1e-5)
    # The original code's h/w prior: N(−2.197, 0.5) on the new size's logit.
    original = static_propagation_prior((0.0, 0.3), (-2.197, 0.5), (0.0, 0.4), (0.0, 1.0))
    got = propagation_kl(posterior, original, size_prior="absolute")
    expected = (kl(posterior["where_mean"][..., :2], posterior["where_std"][..., :2], 0.0, 0.3)
                + kl(posterior["size_logit_mean"], posterior["where_std"][..., 2:], -2.197, 0.5))
    np.testing.assert_allclose(got["where"], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="size_prior must be"):
        propagation_kl(posterior, prior, size_prior="logit")


def test_boxes_and_positions():
    """Anchor units: an object at (y, x) = (0.5, 0.25) anchors of size (0.5, 0.25) in a 48 x 96 image has its
    centre at pixel (24, 12) and is 24 x 12 pixels."""
    from tfobj.models.silot.silot_math import glimpse_box, object_boxes, object_positions

    boxes = object_boxes(tf.constant([[0.5, 0.25]]), tf.constant([[0.5, 0.25]]), (48, 96), (48.0, 48.0))
    np.testing.assert_allclose(boxes.numpy(), [[12 / 48, 6 / 96, 36 / 48, 18 / 96]], rtol=1e-6)
    np.testing.assert_allclose(object_positions(boxes, (48, 96), (48.0, 48.0)).numpy(), [[0.5, 0.25]], rtol=1e-6)
    position, size = glimpse_box(tf.constant([[0.5, 0.25]]), tf.constant([[0.5, 0.25]]),
                                 tf.constant([[1.0, -2.0, 0.5, 3.0]]))
    np.testing.assert_allclose(position.numpy(), [[0.6, 0.05]], rtol=1e-6)
    np.testing.assert_allclose(size.numpy(), [[0.55, 0.55]], rtol=1e-6)


def test_spatial_attention_matches_a_numpy_loop_of_the_formula():
    """Σ_k mask_k · G(rel, σ) · mlp([f_k, rel_y, rel_x, g_q]), rel = yx_k − yx_q, by plain loops over b, q, k."""
    from tfobj.models.silot.silot_math import spatial_attention

    rng = np.random.default_rng(3)
    b, q, k, f, e, d, sigma = 2, 3, 4, 5, 2, 3, 0.3
    query_yx, object_yx = rng.random((b, q, 2)), rng.random((b, k, 2))
    features, query_features = rng.normal(size=(b, k, f)), rng.normal(size=(b, q, e))
    mask = np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])
    weights = rng.normal(size=(f + 2 + e, d))

    def mlp(x):
        return tf.tanh(tf.tensordot(x, tf.constant(weights), 1))

    got = spatial_attention(query_yx, object_yx, features, mlp, sigma, query_features, mask).numpy()
    expected = np.zeros((b, q, d))
    for i in range(b):
        for j in range(q):
            for n in range(k):
                rel = object_yx[i, n] - query_yx[i, j]
                density = np.exp(-rel @ rel / (2 * sigma**2)) / (2 * np.pi * sigma**2)
                expected[i, j] += mask[i, n] * density * np.tanh(np.concatenate([features[i, n], rel,
                                                                                 query_features[i, j]]) @ weights)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    shared = spatial_attention(query_yx[0], object_yx, features, lambda x: mlp(tf.concat([x, tf.zeros(
        tf.concat([tf.shape(x)[:-1], [e]], 0), x.dtype)], -1)), sigma).numpy()  # [Q, 2] queries, no mask
    assert shared.shape == (b, q, d)
