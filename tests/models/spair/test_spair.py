"""SPAIR model: output contract, loss bookkeeping, raster-order lateral context, schedules, errors."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfobj.models.spair.spair import SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig

SMALL = SPAIRConfig(backbone_filters=16, backbone_features=12, cell_hidden=(16, 16), passthrough_features=8,
                    encoder_hidden=(32, 16), decoder_hidden=(16, 32), num_what=6)


@pytest.fixture(scope="module")
def model():
    spair = SPAIR(SMALL, seed=1)
    spair(np.zeros((1, 48, 48, 3), np.float32))
    return spair


def images(batch, size=48, seed=0):
    return np.random.default_rng(seed).random((batch, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("size, cells", [(48, 16), (96, 64), (36, 9)])
def test_output_contract(model, size, cells):
    out = model(images(2, size), training=True)
    a = SMALL.num_what
    expected = {"reconstruction": (2, size, size, 3), "boxes": (2, cells, 4), "z_pres": (2, cells),
                "scores": (2, cells), "z_what": (2, cells, a), "z_depth": (2, cells), "num_objects": (2,),
                "appearance": (2, cells, 14, 14, 3), "alpha": (2, cells, 14, 14, 1)}
    for key, shape in expected.items():
        assert tuple(out[key].shape) == shape, key
        assert out[key].dtype == (tf.int32 if key == "num_objects" else tf.float32), key
        assert np.all(np.isfinite(out[key].numpy())), key
    recon = out["reconstruction"].numpy()
    assert recon.min() >= 0 and recon.max() <= 1


def test_posterior_mode_is_deterministic_and_hard(model):
    x = images(3)
    first, second = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(first["reconstruction"].numpy(), second["reconstruction"].numpy())
    z_pres = first["z_pres"].numpy()
    assert set(np.unique(z_pres)) <= {0.0, 1.0}
    # In the posterior mode z_pres = 1 iff the pres probability exceeds 0.5.
    np.testing.assert_array_equal(z_pres, (first["scores"].numpy() > 0.5).astype(np.float32))
    np.testing.assert_array_equal(first["num_objects"].numpy(), z_pres.sum(1))


def test_relaxed_pres_when_sampling_in_training(model):
    z_pres = model(images(4), training=True)["z_pres"].numpy()
    assert np.any((z_pres > 0) & (z_pres < 1))


def test_cell_posteriors_depend_only_on_processed_neighbours(model):
    """Raster order with lateral context: cell k's z_pres logit depends on the noise (hence the
    sampled latents) of its processed neighbours, never on cells after it."""
    x = tf.constant(images(1))
    features = model.backbone(x)
    noise = {key: tf.Variable(tf.random.normal([1, 16, size])) for key, size in
             (("where", 4), ("what", SMALL.num_what), ("depth", 1), ("pres", 1))}
    target = 5  # cell (1, 1): neighbours 0 (1-1, 1-1), 1, 2 and 4
    with tf.GradientTape() as tape:
        cells = model.cell_encoder(x, features, noise, tf.constant(False), tf.constant(1.0), tf.constant(0.0))
        logit = cells["pres_logits"][0, target, 0]
    grad = tape.gradient(logit, noise["what"]).numpy()[0]  # [16, A]
    influence = np.abs(grad).sum(-1)
    assert np.all(influence[target + 1:] == 0), "later cells must not influence earlier ones"
    assert influence[target] > 0  # its own z_what feeds its pres net
    for neighbour in (0, 1, 2, 4):
        assert influence[neighbour] > 0, f"neighbour {neighbour} of cell {target} has no influence"
    # Cell 3 = (0, 3) is not a neighbour of (1, 1), nor of any of its neighbours (chains 4 <- 0, 1;
    # 2 <- 1; 1 <- 0): no path.
    assert influence[3] == 0


def test_loss_is_the_sum_of_logged_terms(model):
    x = images(2)
    out = model(x, training=True)
    terms = model.loss_terms(x, out)
    for key in ("nll", "kl/z_where", "kl/z_what", "kl/z_depth", "kl/z_pres"):
        assert terms[key].shape == (2,) and np.all(np.isfinite(terms[key].numpy())), key
    assert np.all(terms["kl/z_where"].numpy() >= 0) and np.all(terms["kl/z_what"].numpy() >= 0)
    for tracker in model.trackers.values():
        tracker.reset_state()
    loss = model.compute_loss(x, None, out)
    np.testing.assert_allclose(loss.numpy(), np.mean(sum(terms[k].numpy() for k in terms)), rtol=1e-5)
    np.testing.assert_allclose(model.trackers["loss"].result().numpy(), loss.numpy(), rtol=1e-5)


def test_anneal_sets_values_from_the_step():
    model = SPAIR(dataclasses.replace(SMALL, concrete_temperature=0.5), seed=3)
    # A new model holds the step-0 values: s ≈ 1e-6, the training wheels on.
    assert float(model.wheels) == 1.0 and float(model.count_prior_s) == pytest.approx(1e-6, rel=1e-3)
    for step, s, wheels in ((0, 1e-6, 1.0), (999, None, 1.0), (1000, None, 0.0), (6000, 0.497, 0.0),
                            (100000, 0.98765, 0.0)):
        model.anneal(step)
        if s is not None:
            np.testing.assert_allclose(float(model.count_prior_s), s, atol=2e-3)
        assert float(model.wheels) == wheels and float(model.temperature) == 0.5


def test_plain_fit_anneals_from_the_optimizer_step():
    """No callback: every training step assigns the schedules' values at its optimizer step (here the wheels
    come off at step 2 and s changes every step), before its forward pass."""
    config = dataclasses.replace(SMALL, training_wheels_steps=2, count_prior_decay_steps=1)
    model = SPAIR(config, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((float(model.wheels), float(model.count_prior_s)))

    model.fit(images(6, size=12), batch_size=2, epochs=1, verbose=0, shuffle=False, callbacks=[Record()])
    assert [wheels for wheels, _ in seen] == [1.0, 1.0, 0.0]  # steps 0, 1, 2
    for step, (_, s) in enumerate(seen):  # s = 1 / (1 + v + 1e-6), v = (1e6 - 0.0125) 0.1^step + 0.0125
        v = (config.count_prior_start - config.count_prior_end) * 0.1 ** step + config.count_prior_end
        np.testing.assert_allclose(s, 1 / (1 + v + 1e-6), rtol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((48, 48, 3), np.float32), r"shape \[B, H, W, 3\]"),
    (np.zeros((1, 48, 48, 1), np.float32), "3 channels"),
    (np.zeros((1, 50, 48, 3), np.float32), "H must be a positive multiple of 12"),
    (np.zeros((1, 48, 48, 3), np.int32), "must be float"),
])
def test_bad_shapes_and_dtypes(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model(bad)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or Inf"), (1.5, "value > 1"), (-0.1, "value < 0")])
def test_bad_values(model, value, message):
    x = images(1)
    x[0, 3, 3, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model(x)


def test_config_round_trip():
    model = SPAIR(SMALL, seed=4)
    clone = SPAIR.from_config(model.get_config())
    assert clone.config == SMALL and clone.seed == 4


def test_original_importance_option_reaches_the_renderer():
    """Same weights and noise, importance "original": the cells' latents are identical, the composite is not."""
    import dataclasses

    seed_model, original = SPAIR(SMALL, seed=1), SPAIR(dataclasses.replace(SMALL, importance="original"), seed=1)
    x = images(2, seed=5)
    seed_model(x[:1]), original(x[:1])
    original.set_weights(seed_model.get_weights())
    seed_out, original_out = seed_model(x, training=True), original(x, training=True)  # relaxed z_pres > 0
    np.testing.assert_allclose(original_out["boxes"].numpy(), seed_out["boxes"].numpy())
    assert np.abs(original_out["reconstruction"].numpy() - seed_out["reconstruction"].numpy()).max() > 1e-3


@pytest.mark.parametrize("field, value, message", [
    ("importance", "softmax", "importance must be"),
    ("background", "learned", "background must be"),
    ("concrete_temperature", 0.0, "concrete_temperature must be > 0"),
])
def test_bad_config_values(field, value, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **{field: value})


def test_cells_without_lateral_context_run_at_once_as_cell_by_cell():
    """Without lateral context the cells are computed in one vectorised pass; each cell's outputs equal those of
    the cell computed alone (the path the lateral-context loop takes), with the same noise."""
    config = dataclasses.replace(SMALL, lateral_context=False)
    model = SPAIR(config, seed=0)
    x = tf.constant(images(2, size=36))  # a 3x3 grid
    model(x)
    features = model.backbone(x)
    noise = {key: tf.random.normal([2, 9, size], seed=1) for key, size in
             (("where", 4), ("what", config.num_what), ("depth", 1), ("pres", 1))}
    args = (tf.constant(False), tf.constant(1.0), tf.constant(0.0))
    together = model.cell_encoder(x, features, noise, *args)
    for k in range(9):
        row, col = k // 3, k % 3
        alone, _ = model.cell_encoder._cell(x, features[:, row, col], None, {key: v[:, k] for key, v in noise.items()},
                                            row, col, *args)
        for key, value in alone.items():
            # The same ops on [B, F] and [B, N, F]: matrix products may sum in another order (float32 round-off).
            np.testing.assert_allclose(together[key].numpy()[:, k], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


def test_unrolled_cell_loop_equals_the_graph_loop(model):
    """A grid known when tracing runs the unrolled cell loop (neighbour latents looked up in Python); an unknown
    grid (a SavedModel's signature) runs the tf.while_loop over a padded latent grid. Same outputs and same
    gradients into the noise and every weight, on a 3x4 grid whose edges exercise the learned edge latent."""
    x = tf.constant(np.random.default_rng(5).random((2, 36, 48, 3)), tf.float32)  # a 3x4 grid
    features = model.backbone(x)
    noise = {key: tf.Variable(tf.random.normal([2, 12, size], seed=2)) for key, size in
             (("where", 4), ("what", SMALL.num_what), ("depth", 1), ("pres", 1))}
    args = (tf.constant(False), tf.constant(0.7), tf.constant(0.0))
    encoder = model.cell_encoder
    spec = tf.TensorSpec([None, None, None, features.shape[-1]], features.dtype)

    def run(fn, feats):
        with tf.GradientTape() as tape:
            tape.watch(feats)  # the backbone's gradient flows through the loops' feature slicing
            out = fn(feats)
            loss = sum(tf.reduce_sum(tf.sin(value * (i + 1.0))) for i, value in enumerate(out.values()))
        grads = tape.gradient(loss, [feats] + list(noise.values()) + encoder.trainable_variables)
        return out, [g.numpy() for g in grads]

    unrolled = tf.function(lambda f: encoder(x, f, noise, *args))
    looped = tf.function(lambda f: encoder(x, f, noise, *args), input_signature=[spec])
    (out_a, grads_a), (out_b, grads_b) = run(unrolled, features), run(looped, features)
    assert not any(op.type == "While" for op in unrolled.get_concrete_function(features).graph.get_operations())
    assert any(op.type in ("While", "StatelessWhile")
               for op in looped.get_concrete_function().graph.get_operations())
    for key in out_a:
        np.testing.assert_allclose(out_a[key].numpy(), out_b[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))


def test_positive_std_inverse_round_trips():
    """positive_std(positive_std_inverse(s)) = s, and the inverse is logit(s / 2) computed in numpy."""
    from tfobj.models.spair.spair_layers import positive_std, positive_std_inverse

    stds = np.array([0.01, 0.05, 0.5, 1.0, 1.9], np.float32)
    raw = positive_std_inverse(stds).numpy()
    np.testing.assert_allclose(raw, np.log(stds / 2) - np.log1p(-stds / 2), rtol=1e-5)
    np.testing.assert_allclose(positive_std(raw).numpy(), stds, rtol=1e-5)
