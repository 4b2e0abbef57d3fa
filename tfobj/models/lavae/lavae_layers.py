"""LAVAE's networks (Dittadi & Winther 2019, appendix B): the two fully convolutional inference networks (h_app,
h_loc) and the sprite decoder f_sprite, built from the residual block (`tfobj.layers.residual_block.ResidualBlock`,
shared with the β-VAE baseline; the choices below that concern it are recorded there too).

Dimension letters (docs/conventions.md): B batch, H, W image, C image channels, L = size of z_app (the paper's 32),
M objects, N = B·M sprites decoded at once, s the sprite side (17 multi-MNIST, 21 multi-dSprites), F filters.

What appendix B fixes: residual blocks of 2 convolutions, each "followed by a Leaky ReLU and batch normalization"
(in that order: conv → Leaky ReLU → batch norm); the appearance net = 4 such blocks + a final convolution with 2L
channels; the location net = an identical, independent residual network + a 3-layer convolutional network with one
output channel, × γ = 4; f_sprite = a fully connected layer, a convolution, a bilinear interpolation, z_app expanded
and concatenated along channels, 3 residual blocks, a final convolution with a sigmoid, "Leaky ReLU and batch
normalization ... after each layer, except in the last residual block"; about 500k parameters in all, "split almost
evenly among location inference, appearance inference, and sprite generation"; h_app and h_loc have the input's
spatial size (no striding).

What tfobj chose (the paper is silent; reasons):

* 3 × 3 kernels everywhere ("same" padding, stride 1): the smallest kernel that grows the receptive field; the
  residual network's 8 convolutions see 17 × 17 pixels, the appearance net's final convolution makes it 19 × 19 and
  the location net's 3-layer head 23 × 23, so a location's feature vector sees a whole 15 × 15 digit or 19 × 19
  dSprite centred on it.
* F = 46 filters in every convolution of all three networks: the value that, with the choices below, gives the
  paper's "about 500k" parameters split almost evenly (multi-MNIST, L = 32, 17 × 17 sprites: appearance 161k,
  location 174k, sprite 163k, 498k in all; multi-dSprites 501k; tested). F = 44 gives 462k, F = 48 536k.
* Leaky ReLU slope 0.01 and batch-norm momentum 0.9 / ε 1e-5: PyTorch's defaults (`nn.LeakyReLU`,
  `nn.BatchNorm2d` momentum 0.1), the framework of the first author's public code (addtt/object-centric-library);
  Keras' defaults (0.3; 0.99 / 1e-3) would be an unmotivated change.
* The residual skip is the identity when the channel counts agree, else a 1 × 1 convolution (the first block of each
  inference net sees the C-channel image, as the paper feeds the image straight into the residual network: no stem
  convolution). The skip is added after the block's second batch norm: y = x + BN(act(conv(BN(act(conv(x)))))).
* The location head: conv(F) → Leaky ReLU → BN, conv(F) → Leaky ReLU → BN, conv(1) linear (the "3 layers" with the
  residual network's "every convolution is followed by ..." rule; the logits themselves are linear), then × γ.
* h_app's 2L channels are [mean (L) | log-variance (L)]: the paper says "means and log variances" (section 2 and
  appendix B). Unbounded; the model turns the log-variance into a standard deviation.
* f_sprite: the dense layer outputs a 5 × 5 × 32 map, the convolution keeps 32 channels, the bilinear interpolation
  (`tf.image.resize`, half-pixel centres) goes to s × s, z_app is tiled to s × s × L and concatenated (32 + L
  channels), then 3 residual blocks of F filters and a final 3 × 3 convolution to C channels with a sigmoid. Leaky
  ReLU + batch norm follow the dense layer, the convolution and both convolutions of the first two blocks; the last
  residual block is two plain (linear) convolutions with its skip, literally as the paper says. The dense layer's
  batch norm normalises its 800 units.
* Padding objects and batch norm. A model decodes all M = 10 sprites per image, but only n ≤ 3 are real in the
  paper's training data: batch statistics over all of them would be dominated by padding. `SpriteDecoder` therefore
  takes an optional `object_mask` (True = real object): batch norm's training-time moments are computed over those
  entries only (Keras' masked moments); inference uses the moving statistics as usual.
* Dtypes: under a mixed-precision policy the convolutions run in the compute dtype; the outputs (h_app, h_loc,
  sprites) are cast to float32 before the last scale / sigmoid, since they parameterise distributions
  (docs/conventions.md: probability math in float32).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.layers.residual_block import (
    BATCH_NORM_EPSILON,
    BATCH_NORM_MOMENTUM,
    KERNEL_SIZE,
    NEGATIVE_SLOPE,
    ResidualBlock,
    _batch_norm,
    _check_images_shape,
    _check_positive_int,
    _conv,
    _normalize,
)

__all__ = ["AppearanceInferenceNet", "LocationInferenceNet", "SpriteDecoder"]

# `ResidualBlock` (shared with the β-VAE baseline) and the defaults and helpers the four layers share live in
# tfobj/layers/residual_block.py; F = 46 filters is LAVAE's own (see the module docstring).
FILTERS = 46


class _ResidualTrunk(keras.layers.Layer):
    """`num_blocks` ResidualBlocks of `filters` channels (the inference nets' shared shape; not registered: the two
    public nets own one each)."""

    def __init__(self, filters, num_blocks, kernel_size, negative_slope, batch_norm_momentum, batch_norm_epsilon,
                 **kwargs):
        super().__init__(**kwargs)
        self.blocks = [
            ResidualBlock(filters, kernel_size, negative_slope, True, batch_norm_momentum, batch_norm_epsilon,
                          dtype=self.dtype_policy, name=f"residual_block_{i}")
            for i in range(num_blocks)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x


@keras.saving.register_keras_serializable(package="tfobj")
class AppearanceInferenceNet(keras.layers.Layer):
    """h_app: the appearance feature map (LAVAE section 2 and appendix B), fully convolutional.

    `num_blocks` residual blocks (F filters, Leaky ReLU + batch norm after every convolution) and a final linear
    convolution with 2L channels. The vector at an object's location holds the parameters of q(z_app | z_loc, x)
    (eq. 9-10): channels [0, L) the mean, [L, 2L) the log-variance.

    Args:
        latent_size: L, the size of z_app (the paper's 32).
        filters: F (46; chosen for the paper's parameter budget, see the module docstring).
        num_blocks: residual blocks (the paper's 4).
        kernel_size, negative_slope, batch_norm_momentum, batch_norm_epsilon: as `ResidualBlock` (also the final
            convolution's kernel size).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1].
        training: Keras' flag (batch-norm statistics).

    Returns:
        float32 `[B, H, W, 2L]`: [mean | log-variance].
    """

    def __init__(self, latent_size=32, filters=FILTERS, num_blocks=4, kernel_size=KERNEL_SIZE,
                 negative_slope=NEGATIVE_SLOPE, batch_norm_momentum=BATCH_NORM_MOMENTUM,
                 batch_norm_epsilon=BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("latent_size", latent_size), ("filters", filters), ("num_blocks", num_blocks)):
            _check_positive_int(name, value)
        self.latent_size, self.filters, self.num_blocks = latent_size, filters, num_blocks
        self.kernel_size, self.negative_slope = kernel_size, negative_slope
        self.batch_norm_momentum, self.batch_norm_epsilon = batch_norm_momentum, batch_norm_epsilon
        self.trunk = _ResidualTrunk(filters, num_blocks, kernel_size, negative_slope, batch_norm_momentum,
                                    batch_norm_epsilon, dtype=self.dtype_policy, name="trunk")
        self.head = _conv(2 * latent_size, kernel_size, self.dtype_policy, "conv2d_out")

    def build(self, input_shape):
        _check_images_shape("AppearanceInferenceNet", input_shape)
        self.trunk.build(input_shape)
        self.head.build(tuple(input_shape)[:-1] + (self.filters,))

    def call(self, images, training=None):
        features = self.trunk(images, training=training)  # [B, H, W, F]
        return tf.cast(self.head(features), tf.float32)  # [B, H, W, 2L]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (2 * self.latent_size,)

    def get_config(self):
        config = super().get_config()
        config.update(latent_size=self.latent_size, filters=self.filters, num_blocks=self.num_blocks,
                      kernel_size=self.kernel_size, negative_slope=self.negative_slope,
                      batch_norm_momentum=self.batch_norm_momentum, batch_norm_epsilon=self.batch_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class LocationInferenceNet(keras.layers.Layer):
    """h_loc: the location logits (LAVAE section 2 and appendix B), fully convolutional, multiplied by γ.

    A residual network identical to (but independent of) `AppearanceInferenceNet`'s, then a 3-layer convolutional
    head: (`head_layers` − 1) convolutions of F filters with Leaky ReLU + batch norm, and a linear one-channel
    convolution. The result times γ is h_loc: the logits of eq. (11) (`location_log_prob`,
    `sample_locations_gumbel` after flattening to `[B, H·W]`) and f_count's input (`count_objects`, threshold 4γ).
    γ = 4 for 64 × 64 canvases; `lavae_math.logit_scale(H·W)` gives appendix B's log D rescaling for others.

    Args:
        gamma: γ > 0 (the paper's 4).
        filters: F (46).
        num_blocks: residual blocks (4).
        head_layers: convolutions in the head (the paper's 3), ≥ 1.
        kernel_size, negative_slope, batch_norm_momentum, batch_norm_epsilon: as `ResidualBlock`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1].
        training: Keras' flag (batch-norm statistics).

    Returns:
        float32 `[B, H, W, 1]`: γ · logits.
    """

    def __init__(self, gamma=4.0, filters=FILTERS, num_blocks=4, head_layers=3, kernel_size=KERNEL_SIZE,
                 negative_slope=NEGATIVE_SLOPE, batch_norm_momentum=BATCH_NORM_MOMENTUM,
                 batch_norm_epsilon=BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("filters", filters), ("num_blocks", num_blocks), ("head_layers", head_layers)):
            _check_positive_int(name, value)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"gamma must be a number > 0 (the paper's 4); got {gamma!r}")
        self.gamma, self.filters, self.num_blocks, self.head_layers = float(gamma), filters, num_blocks, head_layers
        self.kernel_size, self.negative_slope = kernel_size, negative_slope
        self.batch_norm_momentum, self.batch_norm_epsilon = batch_norm_momentum, batch_norm_epsilon
        self.trunk = _ResidualTrunk(filters, num_blocks, kernel_size, negative_slope, batch_norm_momentum,
                                    batch_norm_epsilon, dtype=self.dtype_policy, name="trunk")
        self.head_convs = [_conv(filters, kernel_size, self.dtype_policy, f"head_conv2d_{i}")
                           for i in range(head_layers - 1)]
        self.head_norms = [_batch_norm(batch_norm_momentum, batch_norm_epsilon, self.dtype_policy,
                                       f"head_batch_norm_{i}") for i in range(head_layers - 1)]
        self.activation = keras.layers.LeakyReLU(negative_slope, dtype=self.dtype_policy, name="leaky_relu")
        self.logits_conv = _conv(1, kernel_size, self.dtype_policy, "conv2d_logits")

    def build(self, input_shape):
        _check_images_shape("LocationInferenceNet", input_shape)
        self.trunk.build(input_shape)
        shape = tuple(input_shape)[:-1] + (self.filters,)
        for conv, norm in zip(self.head_convs, self.head_norms):
            conv.build(shape)
            norm.build(shape)
        self.logits_conv.build(shape)

    def call(self, images, training=None):
        x = self.trunk(images, training=training)  # [B, H, W, F]
        for conv, norm in zip(self.head_convs, self.head_norms):
            x = norm(self.activation(conv(x)), training=training)
        return self.gamma * tf.cast(self.logits_conv(x), tf.float32)  # [B, H, W, 1]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (1,)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma, filters=self.filters, num_blocks=self.num_blocks,
                      head_layers=self.head_layers, kernel_size=self.kernel_size, negative_slope=self.negative_slope,
                      batch_norm_momentum=self.batch_norm_momentum, batch_norm_epsilon=self.batch_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class SpriteDecoder(keras.layers.Layer):
    """f_sprite: z_app → an s × s sprite in (0, 1) (LAVAE section 2 and appendix B).

    dense (initial_size² · initial_channels) → Leaky ReLU → BN → reshape → conv (initial_channels) → Leaky ReLU →
    BN → bilinear resize to s × s → concat(·, z_app tiled to s × s) → (num_blocks − 1) residual blocks with Leaky
    ReLU + BN → 1 residual block without → conv (C) → sigmoid. See the module docstring for the sizes.

    Args:
        sprite_size: s (the paper's 17 for multi-MNIST, 21 for multi-dSprites).
        num_channels: C of the sprites (1 grey, 3 RGB).
        filters: F of the residual blocks (46).
        initial_size: side of the map the dense layer outputs (5).
        initial_channels: its channels, and the first convolution's (32).
        num_blocks: residual blocks (the paper's 3), ≥ 1; the last has no Leaky ReLU / batch norm.
        kernel_size, negative_slope, batch_norm_momentum, batch_norm_epsilon: as `ResidualBlock`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        z_app: float `[B, M, L]` or `[N, L]`.
        object_mask: optional bool `[B, M]` or `[N]` (True = a real object, i < n): only those enter batch norm's
            training-time moments (padding objects would otherwise dominate them; module docstring). All sprites
            are still decoded.
        training: Keras' flag (batch-norm statistics).

    Returns:
        float32 `[B, M, s, s, C]` or `[N, s, s, C]`, in (0, 1).
    """

    def __init__(self, sprite_size=17, num_channels=1, filters=FILTERS, initial_size=5, initial_channels=32,
                 num_blocks=3, kernel_size=KERNEL_SIZE, negative_slope=NEGATIVE_SLOPE,
                 batch_norm_momentum=BATCH_NORM_MOMENTUM, batch_norm_epsilon=BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("sprite_size", sprite_size), ("num_channels", num_channels), ("filters", filters),
                            ("initial_size", initial_size), ("initial_channels", initial_channels),
                            ("num_blocks", num_blocks)):
            _check_positive_int(name, value)
        self.sprite_size, self.num_channels, self.filters = sprite_size, num_channels, filters
        self.initial_size, self.initial_channels, self.num_blocks = initial_size, initial_channels, num_blocks
        self.kernel_size, self.negative_slope = kernel_size, negative_slope
        self.batch_norm_momentum, self.batch_norm_epsilon = batch_norm_momentum, batch_norm_epsilon
        policy = self.dtype_policy
        self.dense = keras.layers.Dense(initial_size * initial_size * initial_channels, dtype=policy, name="dense")
        self.dense_norm = _batch_norm(batch_norm_momentum, batch_norm_epsilon, policy, "dense_batch_norm")
        self.conv = _conv(initial_channels, kernel_size, policy, "conv2d")
        self.conv_norm = _batch_norm(batch_norm_momentum, batch_norm_epsilon, policy, "conv2d_batch_norm")
        self.activation = keras.layers.LeakyReLU(negative_slope, dtype=policy, name="leaky_relu")
        self.blocks = [
            ResidualBlock(filters, kernel_size, negative_slope, index < num_blocks - 1, batch_norm_momentum,
                          batch_norm_epsilon, dtype=policy, name=f"residual_block_{index}")
            for index in range(num_blocks)
        ]
        self.output_conv = _conv(num_channels, kernel_size, policy, "conv2d_out")

    def build(self, z_app_shape, object_mask_shape=None):
        if len(z_app_shape) not in (2, 3) or z_app_shape[-1] is None:
            raise ValueError(f"SpriteDecoder expects z_app of shape [B, M, L] or [N, L] with known L; got shape "
                             f"{tuple(z_app_shape)}")
        latent_size = z_app_shape[-1]
        self.dense.build((None, latent_size))
        self.dense_norm.build((None, self.dense.units))
        map_shape = (None, self.initial_size, self.initial_size, self.initial_channels)
        self.conv.build(map_shape)
        self.conv_norm.build(map_shape)
        shape = (None, self.sprite_size, self.sprite_size, self.initial_channels + latent_size)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.output_conv.build(shape)

    def call(self, z_app, object_mask=None, training=None):
        z_shape = tf.shape(z_app)
        latent_size = z_app.shape[-1]
        z = tf.reshape(z_app, [-1, latent_size])  # [N, L]
        mask = None if object_mask is None else tf.reshape(tf.cast(object_mask, tf.bool), [-1])  # [N]
        size = self.sprite_size
        x = _normalize(self.dense_norm, self.activation(self.dense(z)), training, mask)  # [N, s0·s0·c0]
        x = tf.reshape(x, [-1, self.initial_size, self.initial_size, self.initial_channels])  # [N, s0, s0, c0]
        map_mask = None if mask is None else tf.broadcast_to(mask[:, None, None], tf.shape(x)[:3])  # [N, s0, s0]
        x = _normalize(self.conv_norm, self.activation(self.conv(x)), training, map_mask)
        x = tf.cast(tf.image.resize(x, (size, size), method="bilinear"), x.dtype)  # [N, s, s, c0]
        tiled = tf.broadcast_to(tf.cast(z, x.dtype)[:, None, None, :], tf.stack([tf.shape(z)[0], size, size,
                                                                                 latent_size]))  # [N, s, s, L]
        x = tf.concat([x, tiled], axis=-1)  # [N, s, s, c0 + L]
        for block in self.blocks:
            x = block(x, training=training, sample_mask=mask)  # [N, s, s, F]
        sprites = tf.sigmoid(tf.cast(self.output_conv(x), tf.float32))  # [N, s, s, C], float32
        out_shape = tf.concat([z_shape[:-1], [size, size, self.num_channels]], axis=0)
        return tf.reshape(sprites, out_shape)  # [B, M, s, s, C] or [N, s, s, C]

    def compute_output_shape(self, z_app_shape, object_mask_shape=None):
        return tuple(z_app_shape)[:-1] + (self.sprite_size, self.sprite_size, self.num_channels)

    def get_config(self):
        config = super().get_config()
        config.update(sprite_size=self.sprite_size, num_channels=self.num_channels, filters=self.filters,
                      initial_size=self.initial_size, initial_channels=self.initial_channels,
                      num_blocks=self.num_blocks, kernel_size=self.kernel_size, negative_slope=self.negative_slope,
                      batch_norm_momentum=self.batch_norm_momentum, batch_norm_epsilon=self.batch_norm_epsilon)
        return config
