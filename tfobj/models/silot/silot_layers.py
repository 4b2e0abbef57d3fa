"""SILOT's layers: the spatial attention of discovery (supplement B.1) and of propagation (B.2).

Dimension letters (docs/conventions.md): B batch, K objects, F object features (every attribute but y, x),
h, w grid cells, D output features. Positions are in anchor units (pixels / 48; silot_math's docstring).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.layers.mlp import MLP
from tfobj.models.silot.silot_math import spatial_attention

__all__ = ["DiscoveryAttention", "PropagationAttention"]


@keras.saving.register_keras_serializable(package="tfobj")
class DiscoveryAttention(keras.layers.Layer):
    """For every discovery cell, a summary of the propagated objects near it (B.1):

        v_ij = Σ_k G(y′_ijk, x′_ijk, σ) · d_spatial(o_k^{∖yx}, y′_ijk, x′_ijk),   (y′, x′) = (o_k^y, o_k^x) − centre_ij

    with G the density of N(0, σ²I₂) and centre_ij = ((i + 0.5)·c_h, (j + 0.5)·c_w) in anchor units. Given
    `presence`, each object's term is weighted by its z_pres (an absent object, z_pres = 0, adds nothing;
    docs/silot.md).

    Args:
        hidden: hidden units of d_spatial (Table 2: (64, 64)).
        output_size: D, features per cell.
        std: σ of the kernel, anchor units (Table 1: 0.1).
        cell_size: the grid cell's side in anchor units (12 px / 48 px = 0.25).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        objects: float `[B, K, F]`, the propagated objects' attributes but y, x.
        positions: float `[B, K, 2]`, their (y, x).
        grid_shape: `(h, w)`, the discovery grid (ints or scalar int tensors; a keyword argument).
        presence: optional float `[B, K]`, the objects' z_pres, weighting their terms (None: the seed's sum).

    Returns:
        float `[B, h, w, D]`.
    """

    def __init__(self, hidden=(64, 64), output_size: int = 64, std: float = 0.1, cell_size: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.output_size, self.std, self.cell_size = tuple(hidden), output_size, std, cell_size
        self.mlp = MLP(hidden, output_size, dtype=self.dtype_policy, name="spatial")

    def build(self, objects_shape, positions_shape=None):
        self.mlp.build((None, objects_shape[-1] + 2))

    def call(self, objects, positions, grid_shape, presence=None):
        height, width = grid_shape
        rows = (tf.cast(tf.range(height), positions.dtype) + 0.5) * self.cell_size  # [h]
        cols = (tf.cast(tf.range(width), positions.dtype) + 0.5) * self.cell_size  # [w]
        centres = tf.stack(tf.meshgrid(rows, cols, indexing="ij"), axis=-1)  # [h, w, 2]
        summary = spatial_attention(tf.reshape(centres, [-1, 2]), positions, objects, self.mlp, self.std,
                                    object_mask=presence)  # [B, h·w, D]
        return tf.reshape(summary, tf.concat([tf.shape(summary)[:1], [height, width], tf.shape(summary)[-1:]], 0))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "output_size": self.output_size, "std": self.std,
                "cell_size": self.cell_size}


@keras.saving.register_keras_serializable(package="tfobj")
class PropagationAttention(keras.layers.Layer):
    """For every object ℓ of the previous frame, features of itself and of the objects near it (B.2):

        u′_ℓ = p_td(o_ℓ),   u_ℓ = u′_ℓ + Σ_k G(y′_ℓk, x′_ℓk, σ) · p_spatial(o_k^{∖yx}, y′_ℓk, x′_ℓk, u′_ℓ)

    with (y′, x′)_ℓk = (o_k^y, o_k^x) − (o_ℓ^y, o_ℓ^x), the sum over every object k (ℓ itself included, as the
    supplement writes it). With `attention=False` (the original code's setting for Scattered MNIST) u_ℓ = u′_ℓ.
    Given `presence`, each object k's term is weighted by its z_pres (an absent object adds nothing).

    Args:
        object_hidden: hidden units of p_td (Table 2's p_id: (64, 64)).
        spatial_hidden: hidden units of p_spatial (Table 2: (64, 64)).
        output_size: D, features per object.
        std: σ of the kernel, anchor units (Table 1: 0.1).
        attention: add the attention term (the seed) or not.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        objects: float `[B, K, F]`, every attribute but y, x (with the hidden state).
        positions: float `[B, K, 2]`, (y, x).
        presence: optional float `[B, K]`, z_pres, weighting object k's term (None: the seed's sum).

    Returns:
        float `[B, K, D]`.
    """

    def __init__(self, object_hidden=(64, 64), spatial_hidden=(64, 64), output_size: int = 64, std: float = 0.1,
                 attention: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.object_hidden, self.spatial_hidden = tuple(object_hidden), tuple(spatial_hidden)
        self.output_size, self.std, self.attention = output_size, std, attention
        self.object_mlp = MLP(object_hidden, output_size, dtype=self.dtype_policy, name="object")
        if attention:  # without the term, no p_spatial (no weights that nothing uses)
            self.spatial_mlp = MLP(spatial_hidden, output_size, dtype=self.dtype_policy, name="spatial")

    def build(self, objects_shape, positions_shape=None):
        features = objects_shape[-1]
        self.object_mlp.build((None, features + 2))
        if self.attention:
            self.spatial_mlp.build((None, features + 2 + self.output_size))

    def call(self, objects, positions, presence=None):
        own = self.object_mlp(tf.concat([objects, tf.cast(positions, objects.dtype)], axis=-1))  # u′ [B, K, D]
        if not self.attention:
            return own
        return own + spatial_attention(positions, positions, objects, self.spatial_mlp, self.std, query_features=own,
                                       object_mask=presence)  # [B, K, D]

    def get_config(self):
        return {**super().get_config(), "object_hidden": self.object_hidden, "spatial_hidden": self.spatial_hidden,
                "output_size": self.output_size, "std": self.std, "attention": self.attention}
