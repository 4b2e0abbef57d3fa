"""ResidualBlock: two convolutions with a skip connection, each followed by Leaky ReLU and batch normalization.

Used by LAVAE's inference networks and sprite decoder (`tfobj.models.lavae.lavae_layers`) and by the fully
convolutional β-VAE baseline (`tfobj.models.baselines.conv_vae`), whose descriptions in the LAVAE paper (Dittadi &
Winther 2019, appendix B) share it: residual blocks "with 2 convolutional layers each", every convolution
"followed by a Leaky ReLU and batch normalization" (in that order).

What tfobj chose where the paper is silent (reasons in docs/lavae.md and the LAVAE layers' module docstring):
3 × 3 kernels, "same" padding, stride 1; Leaky ReLU slope 0.01 and batch-norm momentum 0.9 / ε 1e-5 (PyTorch's
defaults, the framework of the first author's public code); the skip is the identity when the channel counts agree,
else a 1 × 1 convolution, added after the block's second batch norm.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["ResidualBlock"]

# ResidualBlock's defaults (see the module docstring for the reasons); LAVAE's networks share them.
KERNEL_SIZE = 3
NEGATIVE_SLOPE = 0.01  # PyTorch nn.LeakyReLU default
BATCH_NORM_MOMENTUM = 0.9  # PyTorch momentum 0.1 in Keras' convention
BATCH_NORM_EPSILON = 1e-5  # PyTorch default


def _conv(filters, kernel_size, dtype, name):
    return keras.layers.Conv2D(filters, kernel_size, padding="same", dtype=dtype, name=name)


def _batch_norm(momentum, epsilon, dtype, name):
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, dtype=dtype, name=name)


def _normalize(norm, x, training, mask):
    """`norm(x)` with batch-norm moments over the `mask`ed entries only (mask of rank(x) − 1, or None). Keras would
    attach the mask to the output for the next layers (which do not support masks and warn); `tf.identity` returns
    the same values without it."""
    if mask is None:
        return norm(x, training=training)
    return tf.identity(norm(x, training=training, mask=mask))


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def _check_images_shape(layer, shape):
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"{layer} expects images of shape [B, H, W, C] with known C; got shape {tuple(shape)}")


@keras.saving.register_keras_serializable(package="tfobj")
class ResidualBlock(keras.layers.Layer):
    """Two convolutions with a skip connection (LAVAE appendix B): y = skip(x) + F(x).

    F(x) = BN(act(conv(BN(act(conv(x)))))) ("every convolution is followed by a Leaky ReLU and batch
    normalization"), or conv(conv(x)) with `activation_and_norm=False` (the sprite decoder's last block). skip(x) is
    x if it has `filters` channels, else a 1 × 1 convolution.

    Args:
        filters: F, output channels of both convolutions.
        kernel_size: side of the square kernels (3).
        negative_slope: Leaky ReLU slope for negative inputs (0.01).
        activation_and_norm: whether Leaky ReLU + batch norm follow each convolution.
        batch_norm_momentum, batch_norm_epsilon: `keras.layers.BatchNormalization`'s (0.9, 1e-5).
        **kwargs: passed to `keras.layers.Layer` (name, dtype policy).

    Call arguments:
        inputs: float `[B, H, W, C_in]`.
        training: Keras' flag (batch-norm statistics).
        sample_mask: optional bool `[B]`: only these entries enter batch norm's training-time moments.

    Returns:
        `[B, H, W, filters]` in the compute dtype.
    """

    def __init__(self, filters, kernel_size=KERNEL_SIZE, negative_slope=NEGATIVE_SLOPE, activation_and_norm=True,
                 batch_norm_momentum=BATCH_NORM_MOMENTUM, batch_norm_epsilon=BATCH_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("filters", filters)
        _check_positive_int("kernel_size", kernel_size)
        self.filters, self.kernel_size = filters, kernel_size
        self.negative_slope, self.activation_and_norm = negative_slope, activation_and_norm
        self.batch_norm_momentum, self.batch_norm_epsilon = batch_norm_momentum, batch_norm_epsilon
        self.convs = [_conv(filters, kernel_size, self.dtype_policy, f"conv2d_{i}") for i in range(2)]
        self.norms = [_batch_norm(batch_norm_momentum, batch_norm_epsilon, self.dtype_policy, f"batch_norm_{i}")
                      for i in range(2)] if activation_and_norm else []
        self.activation = keras.layers.LeakyReLU(negative_slope, dtype=self.dtype_policy, name="leaky_relu")
        self.skip = None

    def build(self, input_shape):
        _check_images_shape("ResidualBlock", input_shape)
        if input_shape[-1] != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, dtype=self.dtype_policy, name="skip_projection")
            self.skip.build(input_shape)
        shape = tuple(input_shape)
        for index, conv in enumerate(self.convs):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if self.activation_and_norm:
                self.norms[index].build(shape)

    def call(self, inputs, training=None, sample_mask=None):
        x = inputs
        mask = None
        if sample_mask is not None:  # BatchNormalization wants a mask of rank(x) − 1: [B, H, W]
            shape = tf.shape(inputs)
            mask = tf.broadcast_to(tf.cast(sample_mask, tf.bool)[:, None, None], shape[:3])
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if self.activation_and_norm:
                x = _normalize(self.norms[index], self.activation(x), training, mask)
        shortcut = inputs if self.skip is None else self.skip(inputs)
        return shortcut + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, negative_slope=self.negative_slope,
                      activation_and_norm=self.activation_and_norm, batch_norm_momentum=self.batch_norm_momentum,
                      batch_norm_epsilon=self.batch_norm_epsilon)
        return config
