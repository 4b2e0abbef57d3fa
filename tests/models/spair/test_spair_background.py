"""SPAIR's learned solid background: sigmoid(10·logits) broadcast to the image, trained by fit;
the black background has no such weight."""
import keras
import numpy as np
import tensorflow as tf

from tfobj.models.spair.spair import SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig
from tiny import TINY_SPAIR

TINY = TINY_SPAIR
SOLID = SPAIRConfig(**{**TINY.__dict__, "background": "learn_solid"})
LOGITS = np.array([-0.1, 0.0, 0.15], np.float32)
SIZE = 12  # one cell: keeps the traced fit small


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def no_objects_model():
    """A learn_solid SPAIR whose pres logit is clipped to −10 in every cell, so z_pres = 0 in the
    posterior mode (and ≈ 0 when sampled): the image is explained by the background alone."""
    model = SPAIR(SOLID, seed=0)
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    kernel, bias = model.cell_encoder.pres_net.weights[-2:]
    kernel.assign(tf.zeros_like(kernel))
    bias.assign(tf.fill(bias.shape, -100.0))
    model.background_logits.assign(LOGITS)
    return model


def test_background_is_sigmoid_of_ten_logits_broadcast_to_the_image():
    model = no_objects_model()
    x = np.random.default_rng(0).random((2, 24, 36, 3)).astype(np.float32)
    background = model.background(tf.constant(x)).numpy()
    assert background.shape == x.shape
    np.testing.assert_allclose(background, np.broadcast_to(sigmoid(10 * LOGITS), x.shape), rtol=1e-6)
    # With no object present the reconstruction is exactly that background.
    out = model(x, training=False)
    assert out["z_pres"].numpy().max() == 0.0
    np.testing.assert_allclose(out["reconstruction"].numpy(), background, rtol=1e-6)


def test_background_logits_get_the_analytic_gradient_and_move_in_a_fit_step():
    model = no_objects_model()
    white = np.ones((2, SIZE, SIZE, 3), np.float32)
    with tf.GradientTape() as tape:
        out = model(white, training=False)
        loss = tf.reduce_mean(tf.add_n(list(model.loss_terms(white, out).values())))
    grad = tape.gradient(loss, model.background_logits).numpy()
    # Only nll depends on the background: nll = −Σ_pixels log σ(10·l_c) for a white image, so
    # ∂/∂l_c = −H·W·10·(1 − σ(10·l_c)).
    np.testing.assert_allclose(grad, -SIZE * SIZE * 10 * (1 - sigmoid(10 * LOGITS)), rtol=1e-4)

    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
    model.fit(white, batch_size=2, epochs=1, verbose=0)
    # Adam's first step moves every parameter by lr against its gradient's sign: towards white.
    np.testing.assert_allclose(model.background_logits.numpy(), LOGITS + 1e-2, rtol=1e-4, atol=1e-6)


def test_black_background_has_no_background_weight():
    black, solid = SPAIR(TINY, seed=0), SPAIR(SOLID, seed=0)
    x = np.random.default_rng(1).random((1, SIZE, SIZE, 3)).astype(np.float32)
    black(x), solid(x)
    assert not hasattr(black, "background_logits")
    assert not [w for w in black.weights if "background" in w.name]
    assert [(w.name, tuple(w.shape)) for w in solid.trainable_weights if "background" in w.name] == [
        ("background_logits", (3,))]
    assert len(solid.trainable_weights) == len(black.trainable_weights) + 1
    np.testing.assert_array_equal(black.background(tf.constant(x)).numpy(), np.zeros_like(x))
    np.testing.assert_allclose(solid.background(tf.constant(x)).numpy(), 0.5)  # zero-initialised logits
