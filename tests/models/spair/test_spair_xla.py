"""SPAIR under XLA (`jit_compile=True`, the GPU path; Keras' "auto" picks it on a GPU), checked on CPU:
the same loss terms and gradients as without XLA, and model.fit trains, alone and with mixed precision."""
import dataclasses
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.spair import spair as spair_module
from tfobj.models.spair.spair import LOSS_KEYS, SPAIR
from tfobj.rendering.render_sprites import render_sprites
from tiny import TINY_SPAIR

TINY = TINY_SPAIR


def _images(batch=4, size=48, seed=0):
    return tf.constant(np.random.default_rng(seed).random((batch, size, size, 3)), tf.float32)


class FixedNoiseSPAIR(SPAIR):
    """SPAIR whose posterior noise is one fixed draw: XLA's random numbers differ from the CPU kernels',
    so the comparison feeds both the same noise and compares the training pass itself (relaxed z_pres,
    every object rendered). Sized for `_images()`: 4 images of 4x4 = 16 cells."""

    def _noise(self, batch, num_cells, sample):
        rng = np.random.default_rng(0)
        sizes = {"where": 4, "what": self.config.num_what, "depth": 1}
        noise = {key: tf.constant(rng.normal(size=(4, 16, size)), tf.float32) for key, size in sizes.items()}
        u = rng.uniform(1e-6, 1 - 1e-6, (4, 16, 1))
        noise["pres"] = tf.constant(np.log(u) - np.log1p(-u), tf.float32)  # Logistic(0, 1)
        return noise


def _terms_and_grads(model, images):
    """Loss terms and gradients of one training pass."""
    with tf.GradientTape() as tape:
        terms = model.loss_terms(images, model(images, training=True))
        loss = tf.reduce_mean(tf.add_n(list(terms.values())))
    return terms, tape.gradient(loss, model.trainable_variables)


# Gradients are compared by their relative norm. Measured on 4 initialisations × 2 importances: XLA
# against the plain kernels, at most 2.4e-4; XLA windows of 8 px that cut SPAIR's 24-px objects off,
# at least 2.0 (the control below). 1e-2 leaves room for other CPUs' round-off on both sides.
# The initialisation is fixed because bilinear sampling has a gradient that jumps where a coordinate
# crosses a pixel (texel) boundary, and compiled graphs round coordinates differently by an ulp or
# so (grappler folds x / 48 into x * (1/48)): an initialisation with a coordinate within a few ulps
# of a boundary gives one-sided gradients that differ by several % (docs/spair.md, XLA). At this one
# the nearest glimpse coordinate is 1.1e-4 px and the nearest sprite coordinate 6.4e-5 texels from a
# boundary, about 10x the eager-vs-compiled coordinate differences measured (1e-5).
GRADIENT_RTOL = 1e-2


def _relative_gradient_errors(model, images):
    """Loss terms without and with XLA, {variable path: |g_xla - g| / |g|} and {path: |g|} for one
    training pass."""
    terms, grads = _terms_and_grads(model, images)
    terms_xla, grads_xla = tf.function(_terms_and_grads, jit_compile=True)(model, images)
    errors, norms = {}, {}
    for variable, g_xla, g in zip(model.trainable_variables, grads_xla, grads):
        g, g_xla = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(g_xla).numpy()
        norms[variable.path] = np.linalg.norm(g)
        errors[variable.path] = np.linalg.norm(g_xla - g) / max(norms[variable.path], 1e-12)
    return terms, terms_xla, errors, norms


def _model_with_gradients_everywhere(importance="seed"):
    keras.utils.set_random_seed(0)  # the weights' initialisation
    model = FixedNoiseSPAIR(dataclasses.replace(TINY, importance=importance), seed=0)
    model(_images())
    model.wheels.assign(0.0)  # gradients into every head
    model.count_prior_s.assign(0.5)
    return model


@pytest.mark.parametrize("importance, method", [("seed", "auto"), ("original", "auto"),
                                                pytest.param("seed", "pairs", marks=pytest.mark.slow)])
def test_xla_loss_terms_and_gradients_match(importance, method, monkeypatch):
    """At 48x48 the default renderer ("auto") is the dense path with and without XLA; with "pairs" XLA compiles
    the static windows (what SPAIR runs under XLA on larger images) against the ragged pairs."""
    monkeypatch.setattr(spair_module, "render_sprites", functools.partial(render_sprites, method=method))
    model = _model_with_gradients_everywhere(importance)
    terms, terms_xla, errors, norms = _relative_gradient_errors(model, _images())
    for key in terms:
        np.testing.assert_allclose(terms_xla[key].numpy(), terms[key].numpy(), rtol=1e-4, atol=1e-3, err_msg=key)
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRADIENT_RTOL, (worst, errors[worst])
    assert all(norm > 0 for norm in norms.values()), norms  # every weight takes part


def test_gradient_tolerance_catches_a_renderer_window_that_is_too_small():
    """Control for the test above: XLA windows of 8 px cut SPAIR's objects (24 px at this
    initialisation) off, and the gradients then differ by more than GRADIENT_RTOL. SPAIR sizes the
    windows by `model.config.anchor_size`; its box layer keeps its own config (the 48-px anchor)."""
    model = _model_with_gradients_everywhere()
    model.config = dataclasses.replace(model.config, anchor_size=(8.0, 8.0))
    assert model.cell_encoder.anchor_size == (48.0, 48.0)
    _, _, errors, _ = _relative_gradient_errors(model, _images())
    assert max(errors.values()) > GRADIENT_RTOL, errors


@pytest.mark.parametrize("policy", ["float32", pytest.param("mixed_bfloat16", marks=pytest.mark.slow),
                                    pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_fit_with_jit_compile(policy):
    """model.compile(jit_compile=True): finite losses and every weight moves."""
    model = SPAIR(dataclasses.replace(TINY, training_wheels_steps=0), seed=0, dtype=policy)  # gradients everywhere
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), jit_compile=True)
    # 12 steps in all: under mixed_float16 the dynamic loss scale (2^15 at first) overflows the float16
    # gradients of SPAIR's ~2,000-nat loss, and each overflowing step is skipped while the scale halves.
    images = _images(batch=24, size=24)
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(images[:8], batch_size=4, epochs=3, verbose=0)
    assert model.jit_compile
    assert all(np.all(np.isfinite(history.history[key])) for key in LOSS_KEYS)
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(moved), [v.path for v, m in zip(model.trainable_variables, moved) if not m]
