"""SPAIR under mixed precision: a training step is finite and the sensitive math stays float32."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from tfobj.models.spair.spair import LOSS_KEYS, SPAIR
from tiny import TINY_SPAIR

TINY = TINY_SPAIR


@pytest.mark.parametrize("policy", ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_training_step_under_mixed_precision(policy):
    images = np.random.default_rng(0).random((4, 24, 24, 3)).astype(np.float32)
    model = SPAIR(TINY, seed=0, dtype=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0))
    out = model(images, training=True)
    # Layers compute in the low precision, but every variable and every probability quantity is float32.
    assert model.backbone(images).dtype == tf.as_dtype(policy.split("_")[1])
    assert all(v.dtype == "float32" for v in model.weights)
    for key in ("reconstruction", "z_pres", "boxes", "where_std", "pres_logits"):
        assert out[key].dtype == tf.float32, key
    terms = model.loss_terms(images, out)
    assert all(term.dtype == tf.float32 and np.all(np.isfinite(term.numpy())) for term in terms.values())

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.add_n(list(model.loss_terms(images, model(images, training=True)).values())))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(tf.cast(g, tf.float32).numpy())) for g in grads)

    history = model.fit(images, batch_size=4, epochs=1, verbose=0)
    assert all(np.isfinite(history.history[key][0]) for key in LOSS_KEYS)
    if policy == "mixed_float16":  # Keras wraps the optimizer for loss scaling
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
