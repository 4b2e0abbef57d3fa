"""ConvVAE (LAVAE's fully convolutional β-VAE baseline): the shared harness on a tiny config; the loss terms against
numpy/scipy; β from the optimizer step inside a plain `fit`; the importance weights against the single-sample ELBO
and, with a decoder that ignores z, against the exact likelihood; the NLL bound's decrease with S; bad inputs."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import harness
import tfobj
from tfobj.layers.residual_block import ResidualBlock
from tfobj.metrics import importance_weighted_nll
from tfobj.models.baselines.conv_vae import LOSS_KEYS, ConvVAE, ConvVAEConfig

# Non-default values in every field, so that a config that drops or defaults one fails the round trip.
TINY = ConvVAEConfig(image_channels=3, latent_channels=3, filters=8, blocks_per_stage=(1, 1), kernel_size=5,
                     strided_kernel_size=2, negative_slope=0.2, batch_norm_momentum=0.8, batch_norm_epsilon=1e-3,
                     beta_start=0.2, beta_end=0.9, beta_anneal_steps=10)
# 16 × 16 binary images (downsampling 4: a 4 × 4 × 3 latent).
IMAGES = (np.random.default_rng(0).random((4, 16, 16, 3)) > 0.7).astype(np.float32)


def numpy_bernoulli_nll(images, logits):
    """−Σ log Bernoulli(x; sigmoid(l)) = Σ softplus(l) − x·l, in float64."""
    logits = np.asarray(logits, np.float64)
    return np.sum(np.logaddexp(0.0, logits) - images * logits, axis=(1, 2, 3))


def numpy_gaussian_kl(mean, std):
    """KL(N(μ, σ²) ‖ N(0, 1)) summed: Σ log(1/σ) + (σ² + μ²)/2 − 1/2 (closed form), in float64."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return np.sum(-np.log(std) + (std ** 2 + mean ** 2) / 2 - 0.5, axis=(1, 2, 3))


# --- the paper's defaults -------------------------------------------------------------------------


def test_defaults_are_appendix_b():
    """d_VAE = 1024 as an 8 × 8 × 16 map of a 64 × 64 image; 64 filters at 8 × 8; "about 1M" parameters."""
    config = ConvVAEConfig()
    assert (config.downsampling, config.num_latents(64, 64), config.beta_anneal_steps) == (8, 1024, 100_000)
    model = ConvVAE(seed=0)
    outputs = model(np.zeros((1, 64, 64, 1), np.float32))
    assert tuple(outputs["latent_mean"].shape) == (1, 8, 8, 16)
    assert tuple(model.latent_conv.kernel.shape) == (3, 3, 64, 2 * 1024 // 8 ** 2)  # 64 × 8 × 8 → 2 d_VAE / 8²
    parameters = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert 0.8e6 < parameters < 1.2e6, parameters
    assert float(model.beta) == 0.0


def test_residual_block_is_shared_with_lavae():
    from tfobj.models.lavae import lavae_layers

    assert lavae_layers.ResidualBlock is ResidualBlock
    assert keras.saving.get_registered_object("tfobj>ResidualBlock") is ResidualBlock
    assert ResidualBlock.__module__ == "tfobj.layers.residual_block"


# --- the harness ----------------------------------------------------------------------------------


def test_config_round_trip():
    harness.check_config_round_trip(ConvVAE, {"config": TINY, "seed": 5, "name": "my_vae", "dtype": "float32"},
                                    IMAGES)


def test_eager_matches_tf_function():
    harness.check_eager_matches_tf_function(ConvVAE(TINY, seed=1), IMAGES, training=False)


def test_output_contract():
    contract = {"reconstruction": ((4, 16, 16, 3), "float32"), "logits": ((4, 16, 16, 3), "float32"),
                "latent_mean": ((4, 4, 4, 3), "float32"), "latent_std": ((4, 4, 4, 3), "float32"),
                "z": ((4, 4, 4, 3), "float32")}
    model = ConvVAE(TINY, seed=1)
    for training in (False, True):
        harness.check_output_contract(model, IMAGES, contract, training=training)
    outputs = model(IMAGES)  # the posterior mean is decoded by default in inference
    np.testing.assert_array_equal(outputs["z"].numpy(), outputs["latent_mean"].numpy())
    np.testing.assert_allclose(outputs["reconstruction"].numpy(), tf.sigmoid(outputs["logits"]).numpy(), atol=1e-6)
    assert np.all(outputs["latent_std"].numpy() > 0)


def test_fit_step():
    harness.check_fit_step(ConvVAE(TINY, seed=1), {"images": IMAGES}, LOSS_KEYS)


def test_keras_file_in_fresh_process(tmp_path):
    model = ConvVAE(TINY, seed=1, dtype="mixed_bfloat16")
    model(IMAGES)
    model.anneal(5)  # an annealed value other than a new model's
    model.importance_log_weights(IMAGES, 2)  # advance the noise generator
    harness.check_keras_file_in_fresh_process(model, IMAGES, tmp_path, atol=1e-2)
    loaded = keras.models.load_model(tmp_path / "model.keras")  # the file the harness wrote
    assert float(loaded.beta) == pytest.approx(0.2 + 0.7 * 0.5)
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy())


def test_serve_endpoint_exports_with_unknown_batch_and_size(tmp_path):
    model = ConvVAE(TINY, seed=1)
    model(IMAGES)
    serve = tf.saved_model.load(str(tfobj.export_saved_model(model, tmp_path / "saved"))).signatures[
        "serving_default"]
    for images in (IMAGES[:1], (np.random.default_rng(1).random((3, 8, 12, 3)) > 0.5).astype(np.float32)):
        outputs = serve(images=tf.constant(images))
        assert set(outputs) == {"reconstruction"}
        np.testing.assert_allclose(outputs["reconstruction"].numpy(), model(images)["reconstruction"].numpy(),
                                   atol=1e-5)


# --- the loss -------------------------------------------------------------------------------------


def test_loss_terms_match_numpy():
    model = ConvVAE(TINY, seed=2)
    model.anneal(5)  # β = 0.2 + (0.9 − 0.2)·5/10
    outputs = model(IMAGES, training=False, sample=True)
    terms = {key: value.numpy() for key, value in model.loss_terms(IMAGES, outputs).items()}
    nll = numpy_bernoulli_nll(IMAGES, outputs["logits"])
    kl = numpy_gaussian_kl(outputs["latent_mean"], outputs["latent_std"])
    np.testing.assert_allclose(terms["nll"], nll, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-4)
    # The sample is the reparameterised one: standardised, it is a draw of N(0, 1) noise (not the mean).
    noise = (outputs["z"].numpy() - outputs["latent_mean"].numpy()) / outputs["latent_std"].numpy()
    assert 0.5 < noise.std() < 1.5 and np.abs(noise).max() > 0.1
    loss = model.compute_loss(IMAGES, None, outputs)
    np.testing.assert_allclose(float(loss), np.mean(nll + 0.55 * kl), rtol=1e-5)
    assert float(model.trackers["kl"].result()) == pytest.approx(kl.mean(), rel=1e-4)


def test_beta_follows_the_optimizer_step_in_plain_fit():
    """β(t) = min(t / 4, 1) over 0 → 1: each step's logged loss is its nll + β(t)·kl (one step per epoch, so the
    epoch's metrics are that step's), and the β the step used is 0 at step 0, 0.5 halfway, 1 after."""
    model = ConvVAE(dataclasses.replace(TINY, beta_start=0.0, beta_end=1.0, beta_anneal_steps=4), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    betas, logs = [], []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: betas.append(float(model.beta)),
        on_epoch_end=lambda epoch, logs=None, record=logs: record.append(dict(logs)))
    model.fit(IMAGES, batch_size=len(IMAGES), epochs=6, shuffle=False, verbose=0, callbacks=[callback])
    np.testing.assert_allclose(betas, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    for beta, log in zip(betas, logs):
        assert log["loss"] == pytest.approx(log["nll"] + beta * log["kl"], rel=1e-5)
    assert logs[0]["loss"] == pytest.approx(logs[0]["nll"], rel=1e-6) and logs[0]["kl"] > 0


# --- the importance weights and the NLL bound -----------------------------------------------------


def test_one_importance_sample_is_the_negative_single_sample_elbo():
    """With the noise generator in the same state, importance_log_weights(x, 1) draws the z that
    `call(sample=True)` draws, and equals −(nll + log q(z | x) − log p(z)) at that z: the single-sample negative
    ELBO at β = 1, with the KL estimated at the sample (scipy's normal log-densities)."""
    model = ConvVAE(TINY, seed=4)
    model(IMAGES)
    state = model.seed_generator.state.numpy()
    outputs = model(IMAGES, training=False, sample=True)
    model.seed_generator.state.assign(state)
    log_weights = model.importance_log_weights(IMAGES, 1).numpy()
    z, mean, std = (outputs[key].numpy().astype(np.float64) for key in ("z", "latent_mean", "latent_std"))
    sampled_kl = np.sum(stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z), axis=(1, 2, 3))
    negative_elbo = numpy_bernoulli_nll(IMAGES, outputs["logits"]) + sampled_kl
    assert log_weights.shape == (4, 1)
    np.testing.assert_allclose(log_weights[:, 0], -negative_elbo, rtol=1e-5)
    # Fresh noise on every call: the next draw differs.
    assert not np.allclose(model.importance_log_weights(IMAGES, 1).numpy(), log_weights)


def zero_decoder(model):
    """Logits ≡ 0: p(x | z) = 2^(−HWC) for every z, so p(x) = 2^(−HWC) exactly."""
    model.output_conv.kernel.assign(tf.zeros_like(model.output_conv.kernel))
    model.output_conv.bias.assign(tf.zeros_like(model.output_conv.bias))
    return IMAGES[0].size * np.log(2.0)


def test_log_weights_average_to_the_analytic_elbo():
    """With a decoder that ignores z, log w = −HWC log 2 + log p(z) − log q(z | x), whose mean over q is
    −HWC log 2 − KL (analytic): 4,000 draws match within 4 standard errors (the CLT; a false failure has
    probability ~6e-5 per image). The posterior means are shifted by 0.5 so that KL is far from 0 (≥ 6 nats)."""
    model = ConvVAE(TINY, seed=5)
    model(IMAGES)
    latents = TINY.latent_channels
    model.latent_conv.bias.assign(np.r_[np.full(latents, 0.5), np.zeros(latents)].astype(np.float32))
    exact = zero_decoder(model)
    log_weights = model.importance_log_weights(IMAGES, 4000).numpy().astype(np.float64)  # [B, S]
    outputs = model(IMAGES)
    kl = numpy_gaussian_kl(outputs["latent_mean"], outputs["latent_std"])
    assert np.all(kl > 5.0)  # 48 latents, each mean shifted by 0.5: ≥ 48 · 0.5²/2 = 6 nats besides σ's part
    standard_error = log_weights.std(axis=1) / np.sqrt(log_weights.shape[1])
    np.testing.assert_array_less(np.abs(log_weights.mean(axis=1) + exact + kl), 4 * standard_error + 1e-3)


def test_nll_bound_runs_and_decreases_with_the_number_of_samples():
    """importance_weighted_nll: the expected bound decreases with S (Burda et al. 2016, Theorem 1).

    R = 40 independent bounds per image and S (the batch holds each image R times: in inference mode the rows are
    independent draws), averaged over the 4 images: the decrease from S to the next must exceed 3 standard errors
    of the difference of two independent means. The weights' initialisation is random (Keras' global RNG): over 8
    initialisations the gaps measured 3–4 nats (S 1 → 8) and 1–2 nats (8 → 64), 6.5 to 11 standard errors, so a
    false failure is very unlikely (< 1e-3 at the smallest). With a decoder that ignores z the exact −log p(x) =
    HWC log 2 is known: every bound is above it in expectation, and at S = 1 it exceeds it by exactly the KL."""
    model = ConvVAE(TINY, seed=3)
    model(IMAGES)
    repeats = 40
    images = np.tile(IMAGES, (repeats, 1, 1, 1))  # [R·B, H, W, C]

    def bounds(num_samples):  # [R]: each repeat's batch-average bound
        return importance_weighted_nll(model, images, num_samples, batch_samples=32).reshape(repeats, -1).mean(1)

    sample_counts = (1, 8, 64)
    draws = {s: bounds(s) for s in sample_counts}
    for fewer, more in zip(sample_counts, sample_counts[1:]):
        gap = draws[fewer].mean() - draws[more].mean()
        standard_error = np.sqrt((draws[fewer].var(ddof=1) + draws[more].var(ddof=1)) / repeats)
        assert gap > 3 * standard_error, (fewer, more, gap, standard_error)
    exact = zero_decoder(model)
    outputs = model(IMAGES)
    kl = numpy_gaussian_kl(outputs["latent_mean"], outputs["latent_std"]).mean()
    for s in (1, 64):
        gap = bounds(s) - exact  # [R]
        standard_error = gap.std(ddof=1) / np.sqrt(repeats)
        assert gap.mean() > -3 * standard_error - 1e-3, s
        if s == 1:
            assert abs(gap.mean() - kl) < 4 * standard_error + 1e-3


# --- bad inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("images, error, message", [
    (np.zeros((2, 16, 16, 1), np.float32), ValueError, "images must have 3 channels"),
    (np.zeros((2, 18, 16, 3), np.float32), ValueError, "images H must be a positive multiple of 4"),
    (np.zeros((16, 16, 3), np.float32), ValueError, r"images must have shape \[B, H, W, 3\]"),
    (np.zeros((2, 16, 16, 3), np.int32), ValueError, "images must be float in"),
    (np.zeros((0, 16, 16, 3), np.float32), ValueError, "empty batch"),
    (np.full((1, 16, 16, 3), 2.0, np.float32), tf.errors.InvalidArgumentError, r"ConvVAE images must be in \[0, 1\]"),
    (np.full((1, 16, 16, 3), np.nan, np.float32), tf.errors.InvalidArgumentError, "ConvVAE images contain NaN"),
])
def test_bad_images_are_rejected(images, error, message):
    model = ConvVAE(TINY, seed=1)
    with pytest.raises(error, match=message):
        model(images)
    with pytest.raises(error, match=message):
        model.importance_log_weights(images, 2)


def test_sample_prior_decodes_standard_normal_latents():
    model = ConvVAE(TINY, seed=4)
    samples = model.sample_prior(6, 16, 24)  # never called on images: sample_prior builds the model
    z, images = samples["z"].numpy(), samples["images"].numpy()
    assert z.shape == (6, 4, 6, 3) and images.shape == (6, 16, 24, 3)
    np.testing.assert_allclose(images, tf.sigmoid(model.decode(z)).numpy(), rtol=1e-5, atol=1e-6)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3  # z ~ N(0, I)
    assert not np.allclose(images[0], images[1])  # different draws decode to different images
    with pytest.raises(ValueError, match="height must be a positive multiple of 4"):
        model.sample_prior(2, 18, 16)
    with pytest.raises(ValueError, match="num_images must be an integer >= 1"):
        model.sample_prior(0, 16, 16)


def test_bad_arguments_are_rejected():
    model = ConvVAE(TINY, seed=1)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1; got 0"):
        model.importance_log_weights(IMAGES, 0)
    with pytest.raises(ValueError, match="blocks_per_stage must be a non-empty tuple"):
        ConvVAEConfig(blocks_per_stage=())
    with pytest.raises(ValueError, match="latent_channels must be an integer >= 1; got 0"):
        ConvVAEConfig(latent_channels=0)
    with pytest.raises(ValueError, match="beta_end must be a number >= 0"):
        ConvVAEConfig(beta_end=-1.0)
    config = model.get_config()
    config["config"] = dict(dataclasses.asdict(TINY), latent_chanels=3)
    with pytest.raises(ValueError, match="latent_chanels"):
        ConvVAE.from_config(config)
