"""LAVAE's networks: the residual block against a plain-TF re-computation from its weights, shapes and dtypes of the
inference nets and the sprite decoder, the config round trip (tests/harness.py), a gradient for every weight after
one step, the paper's parameter budget, and the decoder's batch-norm moments over real objects only."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import check_config_round_trip
from tfobj.models.lavae.lavae_layers import (
    AppearanceInferenceNet,
    LocationInferenceNet,
    ResidualBlock,
    SpriteDecoder,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 12, 14, 3)).astype(np.float32)


def num_params(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def assert_gradient_reaches_every_weight(layer, inputs, **call_kwargs):
    """One training-mode step: a random projection of the outputs (a plain sum would be constant after batch norm
    for the weights before it) has a finite, non-zero gradient for every trainable weight."""
    with tf.GradientTape() as tape:
        outputs = layer(inputs, training=True, **call_kwargs)
        projection = tf.constant(np.random.default_rng(1).normal(size=outputs.shape), outputs.dtype)
        loss = tf.reduce_sum(projection * outputs)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert layer.trainable_weights
    missing = [w.path for w, g in zip(layer.trainable_weights, gradients) if g is None]
    assert not missing, f"no gradient for {missing}"
    for weight, gradient in zip(layer.trainable_weights, gradients):
        gradient = gradient.numpy()
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0, weight.path


def randomise_batch_norm_statistics(layer, rng):
    for weight in layer.non_trainable_weights:  # moving mean / variance
        low = 0.5 if "variance" in weight.path else -0.5
        weight.assign(rng.uniform(low, 1.5, weight.shape).astype(np.float32))
    for weight in layer.trainable_weights:
        if "gamma" in weight.path or "beta" in weight.path:
            weight.assign(rng.uniform(-1.0, 1.0, weight.shape).astype(np.float32))


# --- ResidualBlock ---------------------------------------------------------------------------------


def reference_block(x, block):
    """y = skip(x) + BN(act(conv(BN(act(conv(x)))))) in inference mode, recomputed with tf.nn from the weights."""
    def conv(x, layer):
        return tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias

    def norm(x, layer):
        return (x - layer.moving_mean) / tf.sqrt(layer.moving_variance + block.batch_norm_epsilon) * layer.gamma + \
            layer.beta

    h = x
    for index, layer in enumerate(block.convs):
        h = conv(h, layer)
        if block.activation_and_norm:
            h = norm(tf.nn.leaky_relu(h, alpha=block.negative_slope), block.norms[index])
    skip = x if block.skip is None else conv(x, block.skip)
    return (skip + h).numpy()


@pytest.mark.parametrize("filters, activation_and_norm", [(3, True), (5, True), (5, False)])
def test_residual_block_matches_its_definition(filters, activation_and_norm):
    rng = np.random.default_rng(filters)
    block = ResidualBlock(filters, negative_slope=0.2, activation_and_norm=activation_and_norm)
    out = block(IMAGES)
    assert out.shape == IMAGES.shape[:3] + (filters,)
    randomise_batch_norm_statistics(block, rng)
    np.testing.assert_allclose(block(IMAGES, training=False).numpy(), reference_block(IMAGES, block), atol=1e-5)
    # Weights: 2 convs (kernel, bias), 2 batch norms (gamma, beta | mean, variance) if normalised, a 1 × 1 projection
    # (kernel, bias) only when the channels change (3 → 3 is the identity skip).
    projection = 0 if filters == IMAGES.shape[-1] else 2
    assert len(block.trainable_weights) == 4 + (4 if activation_and_norm else 0) + projection
    assert len(block.non_trainable_weights) == (4 if activation_and_norm else 0)
    assert (block.skip is None) == (filters == IMAGES.shape[-1])


def test_residual_block_identity_skip_and_config():
    block = ResidualBlock(3, activation_and_norm=False)
    block.build(IMAGES.shape)
    for conv in block.convs:  # F(x) = 0: the block is the identity
        conv.kernel.assign(tf.zeros_like(conv.kernel))
    np.testing.assert_array_equal(block(IMAGES).numpy(), IMAGES)
    check_config_round_trip(ResidualBlock, dict(filters=4, kernel_size=5, negative_slope=0.1, activation_and_norm=False,
                                                batch_norm_momentum=0.8, batch_norm_epsilon=1e-4, name="block"), IMAGES)
    check_config_round_trip(ResidualBlock, dict(filters=4), IMAGES)
    assert_gradient_reaches_every_weight(ResidualBlock(4), IMAGES)


def test_residual_block_sample_mask_restricts_the_moments():
    block = ResidualBlock(4)
    mask = np.array([True, False])
    first = block(IMAGES, training=True, sample_mask=mask).numpy()
    changed = IMAGES.copy()
    changed[1] = 100.0  # the masked-out sample does not move the statistics of the others
    np.testing.assert_allclose(block(changed, training=True, sample_mask=mask).numpy()[0], first[0], atol=1e-5)
    assert not np.allclose(block(changed, training=True).numpy()[0], first[0], atol=1e-3)


# --- inference nets --------------------------------------------------------------------------------


def test_appearance_net_shapes_config_and_gradients():
    net = AppearanceInferenceNet(latent_size=4, filters=6, num_blocks=2)
    out = net(IMAGES)
    assert out.shape == (2, 12, 14, 8) and out.dtype == tf.float32  # [mean (L) | log-variance (L)]
    symbolic = net(keras.Input((None, None, 3)))
    assert tuple(symbolic.shape) == (None, None, None, 8)
    # 2 blocks: the first projects 3 → 6 channels; 1 final conv.
    assert len(net.trainable_weights) == (8 + 2) + 8 + 2
    check_config_round_trip(AppearanceInferenceNet, dict(latent_size=3, filters=5, num_blocks=1, kernel_size=5,
                                                         negative_slope=0.1, batch_norm_momentum=0.8,
                                                         batch_norm_epsilon=1e-4, name="app"), IMAGES)
    assert_gradient_reaches_every_weight(AppearanceInferenceNet(latent_size=2, filters=4, num_blocks=2), IMAGES)


def test_location_net_shapes_gamma_config_and_gradients():
    net = LocationInferenceNet(gamma=2.5, filters=6, num_blocks=1)
    out = net(IMAGES)
    assert out.shape == (2, 12, 14, 1) and out.dtype == tf.float32
    # γ is a plain factor on the logits: the same weights with γ = 1 give out / 2.5.
    unit = LocationInferenceNet(gamma=1.0, filters=6, num_blocks=1)
    unit(IMAGES)
    unit.set_weights(net.get_weights())
    np.testing.assert_allclose(out.numpy(), 2.5 * unit(IMAGES).numpy(), rtol=1e-6, atol=1e-6)
    # 1 block with projection (10 weights), head: 2 × (conv + batch norm) + a logits conv.
    assert len(net.trainable_weights) == 10 + 2 * (2 + 2) + 2
    assert len(LocationInferenceNet(filters=4, num_blocks=1, head_layers=1)(IMAGES).shape) == 4
    check_config_round_trip(LocationInferenceNet, dict(gamma=3.0, filters=5, num_blocks=2, head_layers=2,
                                                       kernel_size=3, negative_slope=0.05, batch_norm_momentum=0.8,
                                                       batch_norm_epsilon=1e-4, name="loc"), IMAGES)
    assert_gradient_reaches_every_weight(LocationInferenceNet(filters=4, num_blocks=2), IMAGES)


def test_inference_nets_are_fully_convolutional():
    """h_loc at a pixel depends only on a window around it: translating the content moves the output with it
    (away from the borders, where the zero padding is felt)."""
    net = LocationInferenceNet(filters=4, num_blocks=1, head_layers=2)  # receptive field 9 × 9
    image = np.zeros((1, 24, 24, 1), np.float32)
    image[0, 8:12, 8:12] = 1.0
    shifted = np.roll(image, (3, 5), axis=(1, 2))
    a, b = net(image).numpy(), net(shifted).numpy()
    np.testing.assert_allclose(b[0, 7:19, 9:21], a[0, 4:16, 4:16], atol=1e-5)


# --- sprite decoder --------------------------------------------------------------------------------


def test_sprite_decoder_shapes_range_and_config():
    z = RNG.normal(size=(2, 3, 6)).astype(np.float32)
    decoder = SpriteDecoder(sprite_size=7, num_channels=3, filters=5, initial_size=3, initial_channels=4)
    sprites = decoder(z)
    assert sprites.shape == (2, 3, 7, 7, 3) and sprites.dtype == tf.float32
    assert np.all((sprites.numpy() > 0) & (sprites.numpy() < 1))
    assert decoder(z.reshape(6, 6)).shape == (6, 7, 7, 3)  # [N, L] -> [N, s, s, C]
    np.testing.assert_allclose(decoder(z.reshape(6, 6)).numpy(), sprites.numpy().reshape(6, 7, 7, 3), atol=1e-6)
    assert tuple(decoder(keras.Input((3, 6))).shape) == (None, 3, 7, 7, 3)
    # dense + BN, conv + BN, 2 normalised blocks (the first projects 4 + 6 → 5 channels), 1 plain block, out conv.
    assert len(decoder.trainable_weights) == 4 + 4 + (8 + 2) + 8 + 4 + 2
    assert [block.activation_and_norm for block in decoder.blocks] == [True, True, False]
    check_config_round_trip(SpriteDecoder, dict(sprite_size=5, num_channels=2, filters=4, initial_size=2,
                                                initial_channels=3, num_blocks=2, kernel_size=3, negative_slope=0.1,
                                                batch_norm_momentum=0.8, batch_norm_epsilon=1e-4, name="sprites"), z)


def test_sprite_decoder_gradients_and_object_mask():
    z = RNG.normal(size=(2, 3, 6)).astype(np.float32)
    mask = np.array([[True, True, False], [True, False, False]])
    decoder = SpriteDecoder(sprite_size=6, filters=4, initial_size=3, initial_channels=4)
    assert_gradient_reaches_every_weight(decoder, z, object_mask=mask)
    first = decoder(z, object_mask=mask, training=True).numpy()
    padded = z.copy()
    padded[~mask] = 50.0  # padding objects' z: the real sprites' batch statistics must not see them
    second = decoder(padded, object_mask=mask, training=True).numpy()
    np.testing.assert_allclose(second[mask], first[mask], atol=1e-5)
    assert not np.allclose(decoder(padded, training=True).numpy()[mask], first[mask], atol=1e-3)


def test_paper_parameter_budget():
    """Appendix B: "about 500k" parameters, "split almost evenly" among the three networks (L = 32, 64 × 64)."""
    for channels, sprite_size in ((1, 17), (3, 21)):
        parts = []
        for layer, shape in ((AppearanceInferenceNet(), (None, 64, 64, channels)),
                             (LocationInferenceNet(), (None, 64, 64, channels)),
                             (SpriteDecoder(sprite_size=sprite_size, num_channels=channels), (None, 10, 32))):
            layer.build(shape)
            parts.append(num_params(layer))
        assert 475_000 < sum(parts) < 525_000, parts
        assert max(parts) / min(parts) < 1.1, parts


def test_mixed_precision_outputs_are_float32():
    z = RNG.normal(size=(2, 3, 6)).astype(np.float32)
    for layer, inputs in ((AppearanceInferenceNet(latent_size=2, filters=4, num_blocks=1, dtype="mixed_float16"),
                           IMAGES),
                          (LocationInferenceNet(filters=4, num_blocks=1, dtype="mixed_float16"), IMAGES),
                          (SpriteDecoder(sprite_size=5, filters=4, initial_size=2, initial_channels=4,
                                         dtype="mixed_float16"), z)):
        out = layer(inputs)
        assert out.dtype == tf.float32 and np.all(np.isfinite(out.numpy()))
        assert all(w.dtype == "float32" for w in layer.weights)
    block = ResidualBlock(4, dtype="mixed_bfloat16")
    assert block(IMAGES).dtype == tf.bfloat16


def test_errors():
    with pytest.raises(ValueError, match="filters must be an integer >= 1; got 0"):
        ResidualBlock(0)
    with pytest.raises(ValueError, match="gamma must be a number > 0"):
        LocationInferenceNet(gamma=0.0)
    with pytest.raises(ValueError, match="head_layers must be an integer >= 1"):
        LocationInferenceNet(head_layers=0)
    with pytest.raises(ValueError, match="latent_size must be an integer >= 1; got 2.5"):
        AppearanceInferenceNet(latent_size=2.5)
    with pytest.raises(ValueError, match="sprite_size must be an integer >= 1"):
        SpriteDecoder(sprite_size=-1)
    with pytest.raises(ValueError, match=r"expects images of shape \[B, H, W, C\].*\(2, 14, 3\)"):
        AppearanceInferenceNet(filters=4, num_blocks=1)(IMAGES[:, 0])
    with pytest.raises(ValueError, match=r"SpriteDecoder expects z_app of shape \[B, M, L\] or \[N, L\]"):
        SpriteDecoder(filters=4)(np.zeros((2, 3, 4, 5), np.float32))


def test_pieces_compose_and_the_likelihood_reaches_every_network():
    """h_loc → f_count and Gumbel-softmax locations → h_app at the hard locations → sprites → relaxed placement →
    Bernoulli log-likelihood: one step's gradient reaches all three networks (the location net through the
    relaxed one-hots only), with γ and τ as the model's non-trainable variables."""
    from tfobj.models.lavae.lavae_math import (bernoulli_mean, count_objects, place_sprites_soft,
                                               sample_locations_gumbel)

    images = (RNG.random((2, 16, 16, 1)) > 0.7).astype(np.float32)
    latent_size, max_objects = 3, 2
    location_net = LocationInferenceNet(filters=4, num_blocks=1, head_layers=2)
    appearance_net = AppearanceInferenceNet(latent_size=latent_size, filters=4, num_blocks=1)
    decoder = SpriteDecoder(sprite_size=5, filters=4, initial_size=2, initial_channels=4)
    temperature, gamma = keras.Variable(0.5, trainable=False), keras.Variable(4.0, trainable=False)
    with tf.GradientTape() as tape:
        h_loc = location_net(images, training=True)  # [B, 16, 16, 1]
        num_objects = tf.maximum(count_objects(h_loc, gamma, max_objects), 1)  # force n ≥ 1 (warm-up's rule)
        soft, indices = sample_locations_gumbel(tf.reshape(h_loc, [2, -1]), num_objects, temperature, seed=0,
                                                max_objects=max_objects)  # [B, M, D], [B, M]
        h_app = tf.reshape(appearance_net(images, training=True), [2, -1, 2 * latent_size])  # [B, D, 2L]
        params = tf.gather(h_app, indices, batch_dims=1)  # [B, M, 2L]
        mean, log_var = params[..., :latent_size], params[..., latent_size:]
        z_app = mean + tf.exp(0.5 * log_var) * tf.random.stateless_normal(tf.shape(mean), [1, 2])
        mask = tf.range(max_objects)[None, :] < num_objects[:, None]
        sprites = decoder(z_app, object_mask=mask, training=True)  # [B, M, 5, 5, 1]
        probs = bernoulli_mean(place_sprites_soft(sprites, soft, num_objects, 16, 16))
        log_likelihood = tf.reduce_sum(images * tf.math.log(probs) + (1 - images) * tf.math.log1p(-probs))
    weights = location_net.trainable_weights + appearance_net.trainable_weights + decoder.trainable_weights
    gradients = tape.gradient(log_likelihood, weights)
    assert np.isfinite(log_likelihood.numpy())
    for weight, gradient in zip(weights, gradients):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())), weight.path
    assert all(np.abs(g.numpy()).max() > 0 for g in gradients[:len(location_net.trainable_weights)])
