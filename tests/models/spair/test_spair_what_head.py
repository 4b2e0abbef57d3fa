"""SPAIRCellEncoder's optional z_what head (`what_hidden`, used by SILOT's discovery: Table 2's d_obj then d_what):
off by default (SPAIR unchanged), and when on, wired as the original SILOT code's ConvGridObjectLayer."""
import numpy as np
import tensorflow as tf

from tfobj.models.spair.spair_layers import SPAIRCellEncoder

A, P, F = 3, 2, 5


def _run(layer, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((2, 24, 24, 3)).astype(np.float32)
    features = rng.normal(size=(2, 2, 2, F)).astype(np.float32)
    noise = {key: rng.normal(size=(2, 4, size)).astype(np.float32)
             for key, size in dict(where=4, what=A, depth=1, pres=1).items()}
    return layer(images, features, noise, tf.constant(False), tf.constant(1.0), tf.constant(0.0)), noise


def test_default_has_no_what_head_and_config_is_unchanged():
    layer = SPAIRCellEncoder(num_what=A, cell_hidden=(4,), passthrough_features=P, encoder_hidden=(6,),
                             lateral_context=False)
    _run(layer)
    assert not hasattr(layer, "what_net") and "what_hidden" not in layer.get_config()
    assert layer.object_encoder.output_units == 2 * A  # the encoder gives z_what's mean and std (SPAIR)


def test_what_head_wiring_and_gradients():
    layer = SPAIRCellEncoder(num_what=A, cell_hidden=(4,), passthrough_features=P, encoder_hidden=(6,),
                             lateral_context=False, what_hidden=(7,))
    out, noise = _run(layer)
    assert layer.object_encoder.output_units == A  # d_obj: glimpse features
    # d_what sees [cell features, box passthrough, glimpse features, latent box] and outputs mean, std, passthrough.
    assert layer.what_net.dense_layers[0].kernel.shape == (F + P + A + 4, 7)
    assert layer.what_net.output_units == 2 * A + P
    np.testing.assert_allclose(out["z_what"], out["what_mean"] + out["what_std"] * noise["what"], atol=1e-6)
    clone = SPAIRCellEncoder.from_config(layer.get_config())
    assert clone.what_hidden == (7,)
    with tf.GradientTape() as tape:
        out, _ = _run(layer)
        loss = tf.reduce_sum(out["z_what"]) + tf.reduce_sum(out["z_depth"])
    gradients = tape.gradient(loss, layer.what_net.trainable_weights + layer.object_encoder.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients[::2])
