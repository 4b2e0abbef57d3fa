"""LAVAE: the shared harness on a tiny config; every loss term against a numpy recomputation from the model's
intermediate outputs; the posterior mode against numpy (f_count, top-n, h_app read-out); the schedules against
appendix B's formulas; forced n = 1 at its probability; the per-part learning rates of one real step; the importance
weights' parts; generation; export with run-time input refusal; and a short fit whose loss falls."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, special, stats

import harness
import tfobj
from tfobj.metrics import importance_weighted_nll
from tfobj.models.lavae.lavae import LOSS_KEYS, SERVING_KEYS, WARMUP_KEYS, LAVAE
from tfobj.models.lavae.lavae_config import LAVAE_PRESETS, LAVAE_TRAINING, LAVAEConfig
from tfobj.models.lavae.lavae_math import logit_scale

SIZE = 16  # 16 × 16 canvases: D = 256; the auxiliary VAE's latent is 2 × 2
# Non-default values in every field, so that a config that drops or defaults one fails the round trip.
TINY = LAVAEConfig(image_size=(SIZE, SIZE), max_objects=3, appearance_size=4, gamma=logit_scale(SIZE * SIZE),
                   count_window=3, filters=8, inference_blocks=1, location_head_layers=2, sprite_size=5,
                   sprite_initial_size=3, sprite_initial_channels=4, sprite_blocks=2, kernel_size=3,
                   negative_slope=0.02, batch_norm_momentum=0.8, batch_norm_epsilon=1e-4, temperature_start=0.7,
                   temperature_end=0.05, temperature_anneal_steps=100, location_learning_rate=2e-4,
                   location_decay_rate=0.1, location_decay_steps=10, auxiliary_learning_rate=5e-4, warmup_steps=3,
                   warmup_anneal_steps=4, warmup_loss_weight=0.5, force_one_start=0.9, force_one_end=0.2,
                   auxiliary_latent_channels=2, auxiliary_blocks_per_stage=(1, 1, 1), auxiliary_filters=8)
IMAGES = (np.random.default_rng(0).random((4, SIZE, SIZE, 1)) > 0.8).astype(np.float32)


def with_objects(model, images, quantile=99.0):
    """Sets the location net's last bias so that about (100 − quantile)% of the pixels exceed f_count's threshold
    (an untrained net has none): the counts then vary between images."""
    model(images)
    conv = model.location_net.logits_conv
    raw = model(images)["location_logits"].numpy() / model.config.gamma - conv.bias.numpy()[0]  # before the bias
    conv.bias.assign([4.0 - np.percentile(raw, quantile)])
    return model


def tiny_model(seed=1, **changes):
    return LAVAE(dataclasses.replace(TINY, **changes), seed=seed)


# --- numpy references -----------------------------------------------------------------------------


def numpy_location_log_q(logits, indices, n):
    """eq. 11 in float64: Σ_{i<n} h_{l_i} − logsumexp over the locations not drawn before step i."""
    total = []
    for row, locs, count in zip(np.asarray(logits, np.float64), indices, n):
        available, value = np.ones(row.size, bool), 0.0
        for location in locs[:count]:
            value += row[location] - special.logsumexp(row[available])
            available[location] = False
        total.append(value)
    return np.array(total)


def numpy_location_log_prior(num_locations, n):
    """eq. 3: −Σ_{i=1..n} log(D − i + 1)."""
    return np.array([-np.sum(np.log(num_locations - np.arange(count))) for count in n])


def numpy_gaussian_kl(mean, log_variance, n):
    mean, log_variance = np.asarray(mean, np.float64), np.asarray(log_variance, np.float64)
    per_object = np.sum(0.5 * (mean ** 2 + np.exp(log_variance) - 1 - log_variance), axis=-1)  # [B, M]
    return np.array([row[:count].sum() for row, count in zip(per_object, n)])


def numpy_bernoulli_nll(images, means):
    p = np.asarray(means, np.float64)
    return -np.sum(images * np.log(p) + (1 - images) * np.log1p(-p), axis=(1, 2, 3))


def numpy_f_count(location_logits, gamma, max_objects):
    """Local maxima over 3 × 3 (outside the canvas ignored) strictly above 4γ, capped at M."""
    counts = []
    for h in np.asarray(location_logits, np.float64):
        window_max = ndimage.maximum_filter(h, size=3, mode="constant", cval=-np.inf)
        counts.append(min(int(np.sum((h == window_max) & (h > 4 * gamma))), max_objects))
    return np.array(counts)


# --- the paper's defaults -------------------------------------------------------------------------


def test_defaults_are_appendix_b():
    c = LAVAEConfig()
    assert (c.appearance_size, c.gamma, c.max_objects, c.sprite_size, c.image_channels) == (32, 4.0, 10, 17, 1)
    assert (c.temperature_start, c.temperature_end, c.temperature_anneal_steps) == (0.5, 0.02, 100_000)
    assert (c.location_learning_rate, c.location_decay_rate, c.location_decay_steps) == (1e-4, 0.01, 100_000)
    assert (c.warmup_steps, c.warmup_anneal_steps, c.force_one_start, c.force_one_end) == (30_000, 30_000, 1.0, 0.1)
    assert c.auxiliary_latent_channels == 8 and c.auxiliary_vae_config().beta_end == 1.0
    dsprites = LAVAEConfig.preset("multi_dsprites")
    assert (dsprites.image_channels, dsprites.sprite_size, dsprites.location_learning_rate) == (3, 21, 5e-4)
    assert LAVAE_PRESETS["multi_mnist"] == c
    assert (LAVAE_TRAINING.optimizer, LAVAE_TRAINING.batch_size, LAVAE_TRAINING.learning_rate) == ("adamax", 64, 1e-3)
    assert keras.optimizers.Adamax().learning_rate.numpy() == pytest.approx(1e-3)  # compile's default "adamax"


def test_default_model_parameter_budget():
    """Appendix B: "about 500k" parameters in LAVAE (the auxiliary VAE is the warm-up's, not the model's)."""
    model = LAVAE(seed=0)
    model(np.zeros((1, 64, 64, 1), np.float32))
    parts = model.variable_parts()
    model_parameters = sum(int(np.prod(v.shape)) for key in ("rest", "location") for v in parts[key])
    assert 450_000 < model_parameters < 550_000, model_parameters
    latent = model.auxiliary_vae(np.zeros((1, 64, 64, 1), np.float32))["latent_mean"]
    assert tuple(latent.shape) == (1, 8, 8, 8)  # the nearest ConvVAE map to the paper's 11 × 11 × 8 (docs/lavae.md)


# --- the harness ----------------------------------------------------------------------------------


def test_config_round_trip():
    harness.check_config_round_trip(LAVAE, {"config": TINY, "seed": 5, "name": "my_lavae", "dtype": "float32"},
                                    IMAGES)


def test_eager_matches_tf_function():
    model = with_objects(LAVAE(TINY, seed=1), IMAGES)
    harness.check_eager_matches_tf_function(model, IMAGES, training=False)


def test_output_contract():
    m, l, s = TINY.max_objects, TINY.appearance_size, TINY.sprite_size
    contract = {"reconstruction": ((4, SIZE, SIZE, 1), "float32"), "num_objects": ((4,), "int32"),
                "locations": ((4, m, 2), "int32"), "appearance": ((4, m, l), "float32"),
                "appearance_log_variance": ((4, m, l), "float32"), "z_app": ((4, m, l), "float32"),
                "sprites": ((4, m, s, s, 1), "float32"), "location_logits": ((4, SIZE, SIZE), "float32"),
                "location_indices": ((4, m), "int32"), "count": ((4,), "int32"), "forced": ((4,), "bool"),
                "location_log_q": ((4,), "float32"), "location_log_prior": ((4,), "float32")}
    model = with_objects(LAVAE(TINY, seed=1), IMAGES)
    for training in (False, True):
        harness.check_output_contract(model, IMAGES, contract, training=training)
    out = model(IMAGES)
    n, locations = out["num_objects"].numpy(), out["locations"].numpy()
    for row, count in zip(locations, n):
        assert np.all(row[count:] == -1) and np.all((row[:count] >= 0) & (row[:count] < SIZE))
        assert len({tuple(r) for r in row[:count]}) == count  # distinct locations


def squares(num_images=16, seed=2):
    """Binary images of one 5 × 5 square each, at random places."""
    rng = np.random.default_rng(seed)
    images = np.zeros((num_images, SIZE, SIZE, 1), np.float32)
    for image in images:
        row, col = rng.integers(2, SIZE - 7, size=2)
        image[row:row + 5, col:col + 5] = 1.0
    return images


def test_fit_step_and_a_short_fit_lowers_the_loss():
    """The harness's fit step (finite logged terms, a gradient for every weight), then 20 more steps on the same
    16 images (the compiled step is reused): the total loss (dominated by the warm-up's squared distance), the
    auxiliary VAE's loss and kl/z_app fall, and the schedules follow the optimizer step inside `fit` (τ of the last
    step is τ(20)). In warm-up throughout, so n = 1, the images' count. (The negative ELBO is not asserted: in 20
    steps its reconstruction term depends on where the still-untrained h_loc puts the one sprite, and it fell on some
    initialisations and rose on others.)"""
    images = squares()
    model = LAVAE(dataclasses.replace(TINY, warmup_steps=100, force_one_start=1.0), seed=8)
    harness.check_fit_step(model, {"images": images}, LOSS_KEYS + WARMUP_KEYS)  # compiles with Adam(1e-3)
    history = model.fit({"images": images}, batch_size=16, epochs=20, verbose=0, shuffle=False).history
    history = {key: np.array(value) for key, value in history.items()}  # one step per epoch: that step's values
    assert np.all(np.isfinite(history["loss"])) and np.all(history["num_objects"] == 1.0)
    for key, ratio in (("loss", 0.7), ("warmup/vae", 0.95), ("kl/z_app", 0.5)):
        assert history[key][-3:].mean() < ratio * history[key][:2].mean(), (key, history[key])
    assert int(model.optimizer.iterations) == 21
    assert float(model.temperature) == pytest.approx(0.7 * (0.05 / 0.7) ** (20 / 100), rel=1e-5)


@pytest.mark.slow
def test_keras_file_in_fresh_process(tmp_path):
    model = with_objects(LAVAE(TINY, seed=1), IMAGES)
    model.anneal(5)  # annealed values other than a new model's
    harness.check_keras_file_in_fresh_process(model, IMAGES, tmp_path)
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert float(loaded.force_one_probability) == pytest.approx(0.9 + (0.2 - 0.9) * 2 / 4)


# --- the posterior mode and the loss terms --------------------------------------------------------


def test_posterior_mode_against_numpy():
    """f_count = local maxima above 4γ (numpy/scipy); locations = the n highest logits in decreasing order;
    appearance = h_app's mean half at each location; the reconstruction = the sprites pasted at the locations."""
    model = with_objects(LAVAE(TINY, seed=2), IMAGES)
    out = {key: value.numpy() for key, value in model(IMAGES).items()}
    h_loc = out["location_logits"]
    n = out["num_objects"]
    np.testing.assert_array_equal(n, numpy_f_count(h_loc, TINY.gamma, TINY.max_objects))
    assert len(set(n)) > 1 and n.max() > 0, n  # the test exercises several counts
    h_app = model.appearance_net(IMAGES).numpy()  # [B, H, W, 2L]
    for b in range(len(IMAGES)):
        order = np.argsort(-h_loc[b].ravel(), kind="stable")[:n[b]]
        np.testing.assert_array_equal(out["location_indices"][b, :n[b]], order)
        rows, cols = np.divmod(order, SIZE)
        np.testing.assert_array_equal(out["locations"][b, :n[b]], np.stack([rows, cols], -1))
        np.testing.assert_allclose(out["appearance"][b, :n[b]], h_app[b, rows, cols, :TINY.appearance_size],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["z_app"][b], out["appearance"][b])  # the mode decodes the mean
        canvas = np.zeros((SIZE + 4, SIZE + 4))  # a numpy paste of each 5 × 5 sprite centred on its location
        for (row, col), sprite in zip(out["locations"][b, :n[b]], out["sprites"][b, :n[b], ..., 0]):
            canvas[row:row + 5, col:col + 5] += sprite
        expected = 1e-6 + (1 - 2e-6) * np.clip(canvas[2:-2, 2:-2], 0, 1)
        np.testing.assert_allclose(out["reconstruction"][b, ..., 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_loss_terms_against_numpy(training):
    """Each ELBO term from the model's intermediate outputs: kl/n = −log a_n (softmax of the prior's logits),
    kl/z_loc = eq. 11 − eq. 3 at the drawn locations, kl/z_app the closed form over the first n objects, nll the
    Bernoulli cross-entropy; the loss = their sum (+ the weighted warm-up terms in training)."""
    model = with_objects(LAVAE(TINY, seed=3), IMAGES)
    model.count_prior_logits.assign(np.array([0.3, -1.0, 0.5, 2.0], np.float32))
    model.force_one_probability.assign(0.0)  # n = f_count
    out = model(IMAGES, training=training)
    terms = {key: value.numpy() for key, value in model.loss_terms(IMAGES, out).items()}
    n = out["num_objects"].numpy()
    assert n.max() > 0
    log_a = np.log(special.softmax(np.array([0.3, -1.0, 0.5, 2.0])))
    np.testing.assert_allclose(terms["kl/n"], -log_a[n], rtol=1e-5)
    logits = out["location_logits"].numpy().reshape(len(IMAGES), -1)
    kl_loc = numpy_location_log_q(logits, out["location_indices"].numpy(), n) - numpy_location_log_prior(SIZE ** 2, n)
    np.testing.assert_allclose(terms["kl/z_loc"], kl_loc, rtol=1e-4, atol=1e-4)
    kl_app = numpy_gaussian_kl(out["appearance"], out["appearance_log_variance"], n)
    np.testing.assert_allclose(terms["kl/z_app"], kl_app, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["nll"], numpy_bernoulli_nll(IMAGES, out["reconstruction"]), rtol=1e-5)
    for tracker in model.trackers.values():
        tracker.reset_state()
    loss = float(model.compute_loss(IMAGES, None, out, training=training))
    elbo = sum(terms[key] for key in ("nll", "kl/n", "kl/z_loc", "kl/z_app"))
    expected = elbo
    if training:
        assert float(model.trackers["warmup/h_loc"].result()) > 0
        distance = model.trackers["warmup/h_loc"].result().numpy()
        vae = model.trackers["warmup/vae"].result().numpy()
        expected = elbo.mean() + TINY.warmup_loss_weight * float(model.warmup_weight) * distance + vae
    np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-5)
    np.testing.assert_allclose(model.trackers["negative_elbo"].result().numpy(), elbo.mean(), rtol=1e-5)


def test_training_samples_are_relaxed_and_the_location_kl_has_the_relaxed_gradient():
    """In training the location one-hots are Gumbel-softmax samples: the reconstruction and kl/z_loc pass a
    gradient to h_loc. kl/z_loc's value is the hard draws' (checked above); without relaxation (sample=False)
    the reconstruction gives h_loc no gradient."""
    model = with_objects(LAVAE(TINY, seed=4), IMAGES)
    model.force_one_probability.assign(0.0)
    variables = model.location_net.trainable_variables
    for sample, expect in ((True, True), (False, False)):
        with tf.GradientTape(persistent=True) as tape:
            out = model(IMAGES, training=True, sample=sample)
            nll = tf.reduce_sum(model.loss_terms(IMAGES, out)["nll"])
            kl_loc = tf.reduce_sum(out["location_log_q"])
        gradient = tape.gradient(nll, variables[-1])  # the logits' bias
        assert (gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0) == expect, sample
        assert tape.gradient(kl_loc, variables[-1]) is not None


def test_importance_weights_are_the_sum_of_their_parts():
    """log w = log p(x | z) + log p(n) + log p(z_loc | n) + log p(z_app) − log q(z_loc | n, x) − log q(z_app | ·),
    each part recomputed in numpy/scipy from the drawn latents; the noise-generator state gives the same draws."""
    model = with_objects(LAVAE(TINY, seed=5), IMAGES)
    model.count_prior_logits.assign(np.array([0.1, 0.2, -0.3, 0.4], np.float32))
    state = model.seed_generator.state.numpy()
    terms = {key: value.numpy() for key, value in model.importance_terms(IMAGES, 3).items()}
    model.seed_generator.state.assign(state)
    log_weights = model.importance_log_weights(IMAGES, 3).numpy()  # [B, S]
    n, indices = terms["num_objects"], terms["location_indices"]
    assert n.max() > 0 and n.shape == (12,)
    np.testing.assert_array_equal(n, np.tile(model(IMAGES)["num_objects"].numpy(), 3))  # n = n̂, sample-major
    logits = terms["location_logits"].reshape(12, -1)
    np.testing.assert_allclose(terms["log_q_loc"], numpy_location_log_q(logits, indices, n), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["log_p_loc"], numpy_location_log_prior(SIZE ** 2, n), rtol=1e-6)
    np.testing.assert_allclose(terms["log_pn"], np.log(special.softmax([0.1, 0.2, -0.3, 0.4]))[n], rtol=1e-5)
    z, mean, log_variance = (terms[key].astype(np.float64) for key in ("z_app", "appearance",
                                                                        "appearance_log_variance"))
    active = np.arange(TINY.max_objects)[None, :] < n[:, None]
    log_p_app = np.sum(stats.norm.logpdf(z).sum(-1) * active, axis=1)
    log_q_app = np.sum(stats.norm.logpdf(z, mean, np.exp(0.5 * log_variance)).sum(-1) * active, axis=1)
    np.testing.assert_allclose(terms["log_p_app"], log_p_app, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms["log_q_app"], log_q_app, rtol=1e-5, atol=1e-4)
    total = (terms["log_px"] + terms["log_pn"] + terms["log_p_loc"] + log_p_app - terms["log_q_loc"] - log_q_app)
    np.testing.assert_allclose(log_weights, total.reshape(3, 4).T, rtol=1e-5, atol=1e-3)
    assert not np.allclose(log_weights[:, 0], log_weights[:, 1])  # independent draws
    bound = importance_weighted_nll(model, IMAGES, 4, batch_samples=3)
    assert bound.shape == (4,) and np.all(np.isfinite(bound))


# --- schedules, forcing, learning rates -------------------------------------------------------------


def test_schedules_follow_appendix_b():
    """τ(t) = 0.5·(0.02/0.5)^min(t/100k, 1); the auxiliary loss's weight 1 for 30k steps then linear to 0 at 60k;
    P(force n = 1) 1 for 30k steps then linear to 0.1 at 60k, then held; at the paper's defaults."""
    model = LAVAE(dataclasses.replace(LAVAEConfig(), filters=4), seed=0)
    for step, tau, weight, force in ((0, 0.5, 1.0, 1.0), (29_999, None, 1.0, 1.0), (30_000, None, 1.0, 1.0),
                                     (45_000, None, 0.5, 0.55), (50_000, 0.5 * 0.04 ** 0.5, None, None),
                                     (60_000, None, 0.0, 0.1), (100_000, 0.02, 0.0, 0.1), (250_000, 0.02, 0.0, 0.1)):
        model.anneal(step)
        if tau is not None:
            assert float(model.temperature) == pytest.approx(tau, rel=1e-5), step
        if weight is not None:
            assert float(model.warmup_weight) == pytest.approx(weight, abs=1e-6), step
            assert float(model.force_one_probability) == pytest.approx(force, abs=1e-6), step
    model.anneal(20_000)  # exponential: equal ratios over equal steps
    assert float(model.temperature) == pytest.approx(0.5 * (0.02 / 0.5) ** 0.2, rel=1e-5)


def test_location_learning_rate_decays_by_100_in_100k_steps():
    model = LAVAE(dataclasses.replace(LAVAEConfig(), filters=4), seed=0)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adamax)
    for step, rate in ((0, 1e-4), (50_000, 1e-5), (100_000, 1e-6)):
        model.location_optimizer.iterations.assign(step)
        assert float(model.location_optimizer.learning_rate) == pytest.approx(rate, rel=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert float(model.auxiliary_optimizer.learning_rate) == pytest.approx(1e-3)


def test_forced_one_probability():
    """In training each image's n is 1 with probability P (else n̂), independently: 600 images at P = 0.3 give
    a fraction within 4 standard errors (sqrt(0.3·0.7/600) = 0.019) of 0.3; never in inference."""
    images = (np.random.default_rng(1).random((600, SIZE, SIZE, 1)) > 0.8).astype(np.float32)
    model = with_objects(LAVAE(TINY, seed=6), images[:8], quantile=90.0)
    model.force_one_probability.assign(0.3)
    out = model(images, training=True)
    forced, n, count = (out[key].numpy() for key in ("forced", "num_objects", "count"))
    assert abs(forced.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 600), forced.mean()
    assert np.all(n[forced] == 1) and np.all(n[~forced] == count[~forced])
    assert np.any(count[forced] != 1)  # forcing changed some counts
    assert not np.any(model(images[:50], training=False)["forced"].numpy())
    for probability, expected in ((1.0, True), (0.0, False)):
        model.force_one_probability.assign(probability)
        assert np.all(model(images[:50], training=True)["forced"].numpy() == expected)


def test_one_step_applies_each_parts_learning_rate():
    """One real `train_step` with Adamax: its first update is lr·g/(|g| + ε) per element, i.e. lr wherever |g| ≫ ε.
    The location net moves by its rate (2e-4), the auxiliary VAE by 5e-4, the rest (incl. the prior's logits) by
    compile's 1e-3; the three parts partition the trainable variables and the optimizers step together."""
    model = with_objects(LAVAE(TINY, seed=7), IMAGES)
    model.compile(optimizer=keras.optimizers.Adamax(1e-3))
    parts = model.variable_parts()
    assert sorted(id(v) for part in parts.values() for v in part) == sorted(id(v) for v in model.trainable_variables)
    before = {key: [v.numpy().copy() for v in part] for key, part in parts.items()}
    model.train_step({"images": tf.constant(IMAGES)})  # step 0: warm-up weight 1, every part has a gradient
    for key, rate in (("rest", 1e-3), ("location", 2e-4), ("auxiliary", 5e-4)):
        moves = np.concatenate([np.abs(v.numpy() - b).ravel() for v, b in zip(parts[key], before[key])])
        moved = moves[moves > rate / 100]
        assert moved.size > 0.5 * moves.size, key
        assert np.median(moved) == pytest.approx(rate, rel=1e-2), key
        assert moves.max() <= rate * 1.002, key  # float32 weights: |w − w'| carries ~ulp(w) ≈ 1e-7 of rounding
    assert [int(o.iterations) for o in (model.optimizer, model.location_optimizer, model.auxiliary_optimizer)] == \
        [1, 1, 1]


# --- generation and prediction --------------------------------------------------------------------


def test_generate_reproduces_the_posterior_mode_reconstruction():
    model = with_objects(LAVAE(TINY, seed=9), IMAGES)
    out = model(IMAGES)
    images = model.generate(out["num_objects"], out["locations"], out["appearance"]).numpy()
    np.testing.assert_allclose(images, out["reconstruction"].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_objects must be <= M"):
        model.generate(np.array([4, 0, 0, 0], np.int32), out["locations"], out["appearance"])
    with pytest.raises(ValueError, match=r"appearance must be a float tensor \[B, M, L\] with L = 4"):
        model.generate(out["num_objects"], out["locations"], np.zeros((4, 3, 5), np.float32))


def test_sample_prior_follows_the_learned_count_prior():
    model = LAVAE(TINY, seed=10)
    model(IMAGES)
    model.count_prior_logits.assign(np.array([-30.0, -30.0, 30.0, -30.0], np.float32))  # p(n = 2) ≈ 1
    samples = {key: value.numpy() for key, value in model.sample_prior(20).items()}
    assert np.all(samples["num_objects"] == 2) and samples["images"].shape == (20, SIZE, SIZE, 1)
    locations = samples["locations"]
    assert np.all(locations[:, 2] == -1) and np.all(np.any(locations[:, 0] != locations[:, 1], axis=-1))
    assert len({tuple(r) for r in locations[:, 0]}) > 10  # uniform over 256 locations: varied


def test_sample_prior_with_a_given_count_distribution():
    model = LAVAE(TINY, seed=12)
    model(IMAGES)
    samples = model.sample_prior(40, num_objects_probs=[0.0, 0.0, 2.0, 2.0])  # M = 3: n = 2 or 3, half each
    n, locations = samples["num_objects"].numpy(), samples["locations"].numpy()
    assert set(n.tolist()) == {2, 3} and 8 <= np.sum(n == 2) <= 32
    np.testing.assert_array_equal(locations[..., 0] >= 0, np.arange(3)[None] < n[:, None])
    for bad in ([0, 0, 1], [0, -1, 1, 1], [0, 0, 0, 0], [0, np.nan, 1, 1]):
        with pytest.raises(ValueError, match=r"num_objects_probs must be \[M \+ 1\] = \[4\]"):
            model.sample_prior(4, num_objects_probs=bad)
    with pytest.raises(ValueError, match="num_images must be an integer >= 1"):
        model.sample_prior(0)


def test_objects_are_a_set_and_rotating_locations_is_rotating_appearances():
    """Figure 3's object swap: rotating the z_loc sequence by one equals rotating the z_app sequence the other way
    ("or equivalently", section 3.1), and permuting both together changes nothing."""
    model = with_objects(LAVAE(TINY, seed=13), IMAGES, quantile=95.0)
    out = model(IMAGES)
    n, locations, appearance = (out[key].numpy() for key in ("num_objects", "locations", "appearance"))
    assert np.any(n >= 2)
    moved_loc, moved_app, both_loc, both_app = (a.copy() for a in (locations, appearance, locations, appearance))
    for b, k in enumerate(n):
        moved_loc[b, :k] = np.roll(locations[b, :k], -1, axis=0)  # object i drawn at object i + 1's location
        moved_app[b, :k] = np.roll(appearance[b, :k], 1, axis=0)  # location j shows object j − 1
        both_loc[b, :k], both_app[b, :k] = locations[b, :k][::-1], appearance[b, :k][::-1]
    original = model.generate(n, locations, appearance).numpy()
    swapped = model.generate(n, moved_loc, appearance).numpy()
    np.testing.assert_allclose(swapped, model.generate(n, locations, moved_app).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.generate(n, both_loc, both_app).numpy(), original, rtol=1e-5, atol=1e-6)
    assert not np.allclose(swapped[n >= 2], original[n >= 2], atol=1e-4)


def test_figure_examples_and_the_figures(tmp_path):
    from tfobj import figures
    from tfobj.experiments.lavae import figure_examples

    model = with_objects(LAVAE(dataclasses.replace(TINY, max_objects=5), seed=14), IMAGES, quantile=95.0)
    test = {"images": IMAGES, "num_objects": np.array([1, 0, 2, 3])}
    out = {key: value.numpy() for key, value in model(IMAGES[[0, 2, 3]]).items()}
    ex = figure_examples(model, test, {"images": IMAGES[1:2]}, count=3, steps=5, samples=6)
    n = out["num_objects"]
    np.testing.assert_array_equal(ex["num_objects"], n)  # the images with objects: 0, 2, 3
    np.testing.assert_allclose(ex["reconstructions"], out["reconstruction"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ex["location_maps"].sum(axis=(1, 2)), n)
    assert ex["sprites"].shape == (3, 5, 5, 5, 1) and 0 <= ex["sprites"].min() and ex["sprites"].max() <= 1
    assert ex["prior"].shape == (6, SIZE, SIZE, 1) and set(ex["fixed_count_num_objects"].tolist()) <= {4, 5}
    assert ex["location_traversal"].shape == (5, SIZE, SIZE, 1)
    assert not np.allclose(ex["location_traversal"][0], ex["location_traversal"][-1])  # the object moved
    assert ex["appearance_traversal"].shape == (4, 5, SIZE, SIZE, 1) and len(ex["appearance_dimensions"]) == 4
    n_all = model(IMAGES)["num_objects"].numpy()
    several = np.flatnonzero(n_all >= 2)[:3]  # the first `count` with n̂ >= 2
    assert len(several) >= 1
    np.testing.assert_allclose(ex["swap_original"], model(IMAGES[several])["reconstruction"].numpy(), rtol=1e-5,
                               atol=1e-6)
    found = {key: value.numpy()[several] for key, value in model(IMAGES).items()}
    rotated = found["appearance"].copy()  # the swap = each image's appearances rotated the other way
    for b, k in enumerate(found["num_objects"]):
        rotated[b, :k] = np.roll(found["appearance"][b, :k], 1, axis=0)
    np.testing.assert_allclose(ex["swap_swapped"], model.generate(found["num_objects"], found["locations"],
                                                                  rotated).numpy(), rtol=1e-5, atol=1e-6)
    objects = np.concatenate([a[:k] for a, k in zip(model(IMAGES)["appearance"].numpy(), n_all)])
    np.testing.assert_array_equal(ex["appearance_dimensions"], np.argsort(-objects.std(axis=0))[:4])
    assert all(not np.allclose(row[0], row[-1]) for row in ex["appearance_traversal"])  # each row changes
    for bad, message in ((dict(steps=0), "steps must be an integer >= 1"), (dict(count=1.5), "count must be"),
                         (dict(test7={"images": IMAGES[:0]}), r"test7\['images'\] is empty")):
        with pytest.raises(ValueError, match=message):
            figure_examples(model, test, **dict(dict(test7={"images": IMAGES[1:2]}), **bad))
    written = figures.plot_lavae_figures({"lavae": ex}, tmp_path, "tiny", "t")
    written += figures.plot_lavae_figures({"beta_vae": {"prior": ex["prior"]}}, tmp_path, "vae", "t")
    names = sorted(p.name for p in written)
    assert names == ["tiny_disentanglement.png", "tiny_fixed_count.png", "tiny_inference.png", "tiny_samples.png",
                     "vae_samples.png"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_predict_objects_gives_the_first_n_objects():
    model = with_objects(LAVAE(TINY, seed=11), IMAGES)
    out = model(IMAGES)
    found = model.predict_objects(IMAGES, batch_size=3)
    assert len(found) == 4
    for b, objects in enumerate(found):
        n = int(out["num_objects"][b])
        assert objects["num_objects"] == n and objects["locations"].shape == (n, 2)
        np.testing.assert_array_equal(objects["locations"], out["locations"].numpy()[b, :n])
        np.testing.assert_allclose(objects["appearance"], out["appearance"].numpy()[b, :n], rtol=1e-6)


# --- bad inputs and export ------------------------------------------------------------------------


@pytest.mark.parametrize("images, error, message", [
    (np.zeros((2, SIZE, SIZE, 3), np.float32), ValueError, "images must have 1 channels"),
    (np.zeros((SIZE, SIZE, 1), np.float32), ValueError, r"images must have shape \[B, H, W, 1\]"),
    (np.zeros((2, SIZE, SIZE, 1), np.int32), ValueError, "images must be float in"),
    (np.zeros((0, SIZE, SIZE, 1), np.float32), ValueError, "empty batch"),
    (np.full((1, SIZE, SIZE, 1), 2.0, np.float32), tf.errors.InvalidArgumentError, r"LAVAE images must be in \[0, 1\]"),
    (np.full((1, SIZE, SIZE, 1), np.nan, np.float32), tf.errors.InvalidArgumentError, "LAVAE images contain NaN"),
])
def test_bad_images_are_rejected(images, error, message):
    model = LAVAE(TINY, seed=1)
    with pytest.raises(error, match=message):
        model(images)
    with pytest.raises(error, match=message):
        model.importance_log_weights(images, 2)


def test_training_needs_sizes_the_auxiliary_vae_takes():
    model = LAVAE(TINY, seed=1)
    model(np.zeros((1, 12, 12, 1), np.float32))  # inference: any size
    with pytest.raises(ValueError, match="images H must be a positive multiple of 8"):
        model(np.zeros((1, 12, 16, 1), np.float32), training=True)


def test_bad_config_values_and_unknown_fields():
    for field, value, message in (("max_objects", 0, "max_objects must be an integer >= 1"),
                                  ("gamma", 0.0, "gamma must be a number > 0"),
                                  ("force_one_end", 1.5, r"force_one_end must be a number in \[0, 1\]"),
                                  ("count_window", 2, "count_window must be an odd integer")):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(TINY, **{field: value})
    with pytest.raises(ValueError, match="unknown LAVAE preset"):
        LAVAEConfig.preset("clevr")
    config = LAVAE(TINY).get_config()
    config["config"] = dict(dataclasses.asdict(TINY), max_object=3)
    with pytest.raises(ValueError, match="max_object"):
        LAVAE.from_config(config)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = with_objects(LAVAE(TINY, seed=12), IMAGES)
    path = tfobj.export_saved_model(model, tmp_path_factory.mktemp("lavae") / "saved_model")
    return model, tf.saved_model.load(str(path))


@pytest.mark.slow
def test_the_served_model_runs_where_tfobj_cannot_be_imported(exported, tmp_path):
    """serving_default in a fresh process without tfobj (as TF Serving), two batch sizes and two canvas sizes: the
    issue's outputs equal the in-process model's."""
    model, _ = exported
    rng = np.random.default_rng(5)
    inputs = {"b4_16x16": IMAGES, "b2_24x20": (rng.random((2, 24, 20, 1)) > 0.8).astype(np.float32)}
    path = tfobj.export_saved_model(model, tmp_path / "saved_model")
    served = harness.served_in_fresh_process(path, inputs, tmp_path, argument="images")
    for name, images in inputs.items():
        expected = model(images, training=False)
        for key in SERVING_KEYS:
            np.testing.assert_allclose(served[f"{name}/{key}"], np.asarray(expected[key]), atol=1e-5,
                                       err_msg=f"{name}/{key}")
        assert served[f"{name}/num_objects"].dtype == np.int32 and served[f"{name}/locations"].dtype == np.int32


def test_export_serves_with_unknown_batch_and_size(exported):
    model, loaded = exported
    serve = loaded.signatures["serving_default"]
    for images in (IMAGES[:1], (np.random.default_rng(4).random((3, 24, 20, 1)) > 0.8).astype(np.float32)):
        outputs = serve(images=tf.constant(images))
        assert set(outputs) == set(SERVING_KEYS)
        expected = model(images, training=False)
        for key in SERVING_KEYS:
            np.testing.assert_allclose(outputs[key].numpy(), expected[key].numpy(), atol=1e-5, err_msg=key)
    assert outputs["num_objects"].dtype == tf.int32 and outputs["locations"].dtype == tf.int32
    out = model(IMAGES)
    generated = loaded.signatures["generate"](num_objects=out["num_objects"], locations=out["locations"],
                                              appearance=out["appearance"])["images"]
    np.testing.assert_allclose(generated.numpy(), out["reconstruction"].numpy(), atol=1e-5)


@pytest.mark.parametrize("shape, value, message", [
    ((0, SIZE, SIZE, 1), 0.0, "images is an empty batch"),
    ((1, SIZE, SIZE, 1), np.nan, "NaN or Inf"),
    ((2, SIZE, SIZE, 1), 1.5, "found a value > 1"),
    ((2, SIZE, SIZE, 1), -0.5, "found a value < 0"),
])
def test_the_served_model_refuses_bad_images_at_run_time(exported, shape, value, message):
    _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](images=tf.fill(shape, tf.constant(value, tf.float32)))


def test_the_served_generator_refuses_bad_latents(exported):
    _, loaded = exported
    generate = loaded.signatures["generate"]
    locations = tf.zeros((1, TINY.max_objects, 2), tf.int32)
    appearance = tf.zeros((1, TINY.max_objects, TINY.appearance_size))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_objects must be <= M"):
        generate(num_objects=tf.constant([4]), locations=locations, appearance=appearance)
    with pytest.raises(tf.errors.InvalidArgumentError, match="appearance contains NaN"):
        generate(num_objects=tf.constant([1]), locations=locations, appearance=appearance + np.nan)
