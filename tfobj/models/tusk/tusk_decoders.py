"""TUSK's prototype bank and decoders (Table 9, "Decoder D"; appendix A.2's prototypes).

Dimension letters (docs/conventions.md): B batch, H, W image, K keypoints, d descriptor size (32 in TUSK),
M prototypes. The decoders read the outputs of `tusk_math.gaussian_splat`: "sum" F̃ = Σ_k R_k `[B, H, W, d]`
(no alpha blending) or "per_keypoint" R `[B, K, H, W, d]` (alpha blending).

Alpha blending. Table 9 gives "UNet(R) → A ∈ [0, 1]^{H×W×4}; Alpha-Blending(A) → Ĩ ∈ [0, 1]^{H×W×3}" and no
formula. The original (ubc-vision/TUSK@04ba610, `models/network.py`, `NetWork.forward`; `models/unet.py`,
`UNetDecoder`) runs the decoder U-Net on every R_k separately, takes a sigmoid of the first 3 output channels
(rgb_k) and leaves the 4th as a logit, normalises the logits with a softmax over the K keypoints at every pixel
(α_k), and outputs Ĩ = Σ_k α_k · rgb_k: no background layer, no depth order. This is consistent with the
seed: the blended α_k and rgb_k are in [0, 1] (A's range), the table has no background component, and an
order-free normalised blend is the only reading that needs neither an order of the keypoints (top-K order is by
score, not depth) nor a background to fill the remaining transmittance of "over" compositing. So the original
is also the default here; there is no option. A consequence: every pixel, the scene's background included, is
explained by some keypoint's layer; TUSK's ARI reads the segmentation as the argmax of α over K.

Numerics: the U-Net runs in the layer's compute dtype; the sigmoid, softmax and blend in float32.
"""
from __future__ import annotations

import numbers

import keras
import tensorflow as tf

from tfobj.models.tusk.tusk_layers import UNet
from tfobj.models.tusk.tusk_math import assign_prototypes

__all__ = ["AlphaBlendDecoder", "PrototypeBank", "SparseDecoder", "alpha_blend"]

RGB_CHANNELS = 3


def alpha_blend(rgb_logits, alpha_logits) -> dict:
    """The original's alpha blending: sigmoid colours, softmax over the K layers, weighted sum (module docstring).

    Args:
        rgb_logits: float `[B, K, H, W, C]`, the decoder's colour outputs before the sigmoid.
        alpha_logits: float `[B, K, H, W]`, the decoder's alpha channel (a logit).

    Returns:
        dict, float32 (float64 for float64 inputs):
          "reconstruction" `[B, H, W, C]`: Σ_k α_k · rgb_k, in [0, 1];
          "masks" `[B, K, H, W]`: α = softmax over K of the alpha logits (sums to 1 at every pixel);
          "rgb" `[B, K, H, W, C]`: sigmoid(rgb_logits).

    Raises:
        ValueError: if a tensor is not float, or the shapes are not `[B, K, H, W, C]` and `[B, K, H, W]` with the
            same B, K, H, W (when static).
    """
    rgb_logits, alpha_logits = tf.convert_to_tensor(rgb_logits), tf.convert_to_tensor(alpha_logits)
    for name, value, rank, expected in (("rgb_logits", rgb_logits, 5, "[B, K, H, W, C]"),
                                        ("alpha_logits", alpha_logits, 4, "[B, K, H, W]")):
        if not value.dtype.is_floating or value.shape.rank != rank:
            raise ValueError(f"{name} must be a float tensor {expected}; got {value.dtype.name} {value.shape}")
    if not rgb_logits.shape[:4].is_compatible_with(alpha_logits.shape):
        raise ValueError(f"rgb_logits [B, K, H, W, C] and alpha_logits [B, K, H, W] must agree in B, K, H, W; got "
                         f"{rgb_logits.shape} and {alpha_logits.shape}")
    dtype = tf.float64 if tf.float64 in (rgb_logits.dtype, alpha_logits.dtype) else tf.float32
    rgb = tf.sigmoid(tf.cast(rgb_logits, dtype))  # [B, K, H, W, C]
    masks = tf.nn.softmax(tf.cast(alpha_logits, dtype), axis=1)  # [B, K, H, W], over the keypoints
    reconstruction = tf.reduce_sum(masks[..., None] * rgb, axis=1)  # [B, H, W, C]
    return {"reconstruction": reconstruction, "masks": masks, "rgb": rgb}


@keras.saving.register_keras_serializable(package="tfobj")
class PrototypeBank(keras.layers.Layer):
    """TUSK's M prototypes of dimension d, unit vectors when read (appendix A.2; the original `NetWork.prototype`).

    The weight is an unconstrained `[M, d]` matrix initialised N(0, 1) as the original's `torch.randn` (so a
    prototype's direction is uniform on the sphere; the scale matters for the prototype step's Adam at lr 0.1,
    whose steps are of fixed size whatever the norm); `prototypes()` returns its rows L2-normalised
    (`x / max(‖x‖, 1e-12)`, as `torch.nn.functional.normalize`). The weight is never autocast: under a mixed
    policy the prototypes stay float32.

    Args:
        num_prototypes: M (Table 10: MNIST 10, CLEVR6 48, Tetrominoes 114, CelebA 32, H36M 32).
        dim: d, the descriptors' size (32 in TUSK).
        temperature: the soft assignment's temperature, > 0 (`tusk_math.assign_prototypes`; the original
            hard-codes 20; not in the seed).
        prototype_initializer: None for N(0, 1) (the original), or a Keras initializer (name, config or object).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        descriptors: float `[..., d]` (TUSK: the encoder's unit descriptors `[B, K, d]`).

    Returns:
        dict: "probabilities" float32 `[..., M]` (the soft assignment softmin(temperature · dist), dist the mean
        squared difference over d) and "labels" int32 `[...]` (the nearest prototype), as `assign`.

    Raises:
        ValueError: for a non-positive `num_prototypes`/`dim`/`temperature`, or descriptors whose last axis is
            not d.

    References:
        - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, appendix A.2, Table 7.
        - ubc-vision/TUSK `models/network.py` (the original code).
    """

    def __init__(self, num_prototypes=10, dim=32, temperature=20.0, prototype_initializer=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_prototypes", num_prototypes), ("dim", dim)):
            _check_positive_int(name, value)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or \
                not 0.0 < float(temperature) < float("inf"):
            raise ValueError(f"temperature must be a positive python float; got {temperature!r}")
        self.num_prototypes, self.dim, self.temperature = num_prototypes, dim, temperature
        if prototype_initializer is None:
            initializer = keras.initializers.RandomNormal(mean=0.0, stddev=1.0)  # torch.randn
        else:
            initializer = keras.initializers.get(prototype_initializer)
        self.prototype_initializer = prototype_initializer
        self.prototype_weights = self.add_weight(shape=(num_prototypes, dim), initializer=initializer,
                                                 trainable=True, autocast=False, name="prototypes")
        self.built = True  # the weight does not depend on the input

    def prototypes(self) -> tf.Tensor:
        """The unit prototypes, float32 `[M, d]` (differentiable in the weight)."""
        weights = tf.cast(tf.convert_to_tensor(self.prototype_weights), tf.float32)  # [M, d]
        return tf.math.l2_normalize(weights, axis=-1, epsilon=1e-24)  # x / max(‖x‖, 1e-12), as torch

    def assign(self, descriptors):
        """(probabilities `[..., M]`, labels `[...]`): `tusk_math.assign_prototypes` with the unit prototypes."""
        descriptors = tf.convert_to_tensor(descriptors)
        if descriptors.shape.rank is not None and descriptors.shape.rank >= 1 and \
                descriptors.shape[-1] is not None and descriptors.shape[-1] != self.dim:
            raise ValueError(f"descriptors must have shape [..., d] with d = dim = {self.dim}; got "
                             f"{descriptors.shape}")
        return assign_prototypes(tf.cast(descriptors, tf.float32), self.prototypes(), self.temperature)

    def call(self, descriptors):
        probabilities, labels = self.assign(descriptors)
        return {"probabilities": probabilities, "labels": labels}

    def get_config(self):
        config = super().get_config()
        initializer = self.prototype_initializer
        if initializer is not None and not isinstance(initializer, (str, dict)):
            initializer = keras.initializers.serialize(initializer)
        config.update(num_prototypes=self.num_prototypes, dim=self.dim, temperature=self.temperature,
                      prototype_initializer=initializer)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class SparseDecoder(keras.layers.Layer):
    """TUSK's decoder without alpha blending (Table 9, "UNet(F̃) → Ĩ"; MNIST, CelebA, H36M).

    Ĩ = sigmoid(UNet(F̃)), F̃ = Σ_k R_k the summed Gaussian splat. The U-Net is `tusk_layers.UNet` (the original
    `UNetDecoder`: `UNet(d, 3, 32)` with GroupNorm(32), as the encoder's).

    Args:
        base_width: the U-Net's first width (original: 32).
        groups: its GroupNorm groups (original: 32).
        align_corners: its upsampling convention (original: True; see `UNet`).
        image_channels: C of the output image (3, RGB, as the original for every dataset).
        initialization: the U-Net's initial weights, "keras" or "pytorch" (see `UNet`).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        splat: float `[B, H, W, d]`, `gaussian_splat(...)["sum"]`; H and W multiples of 8.

    Returns:
        dict: "reconstruction" float32 `[B, H, W, C]` in [0, 1].

    Raises:
        ValueError: for invalid arguments (see `UNet`), or an input that is not rank 4 or whose H, W are not
            multiples of 8.
    """

    def __init__(self, base_width=32, groups=32, align_corners=False, image_channels=RGB_CHANNELS,
                 initialization="keras", **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("image_channels", image_channels)
        self.base_width, self.groups = base_width, groups
        self.align_corners, self.image_channels, self.initialization = align_corners, image_channels, initialization
        self.unet = UNet(base_width, image_channels, groups, align_corners, initialization, dtype=self.dtype_policy,
                         name="unet")

    def build(self, splat_shape):
        self.unet.build(splat_shape)

    def call(self, splat):
        logits = tf.cast(self.unet(splat), tf.float32)  # [B, H, W, C]
        return {"reconstruction": tf.sigmoid(logits)}

    def get_config(self):
        config = super().get_config()
        config.update(base_width=self.base_width, groups=self.groups, align_corners=self.align_corners,
                      image_channels=self.image_channels, initialization=self.initialization)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class AlphaBlendDecoder(keras.layers.Layer):
    """TUSK's decoder with alpha blending (Table 9, "UNet(R) → A; Alpha-Blending(A) → Ĩ"; CLEVR, Tetrominoes).

    One U-Net (shared weights) decodes every keypoint's R_k to C colour logits and one alpha logit; the layers
    are blended by `alpha_blend` (sigmoid colours, softmax over K, Σ_k α_k rgb_k; the module docstring says
    why this reading of the seed is the original's). The U-Net runs on B·K maps, as in the original.

    Args:
        base_width: the U-Net's first width (original: 32).
        groups: its GroupNorm groups (original: 32).
        align_corners: its upsampling convention (original: True; see `UNet`).
        image_channels: C of the output image (3, RGB).
        initialization: the U-Net's initial weights, "keras" or "pytorch" (see `UNet`).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        splat: float `[B, K, H, W, d]`, `gaussian_splat(...)["per_keypoint"]`; H and W multiples of 8.

    Returns:
        dict, float32:
          "reconstruction" `[B, H, W, C]` in [0, 1];
          "masks" `[B, K, H, W]`: α, summing to 1 over K at every pixel (segmentation: argmax over K);
          "rgb" `[B, K, H, W, C]`: each keypoint's colours, in [0, 1].

    Raises:
        ValueError: for invalid arguments (see `UNet`), or an input that is not rank 5 or whose H, W are not
            multiples of 8.
    """

    def __init__(self, base_width=32, groups=32, align_corners=False, image_channels=RGB_CHANNELS,
                 initialization="keras", **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("image_channels", image_channels)
        self.base_width, self.groups = base_width, groups
        self.align_corners, self.image_channels, self.initialization = align_corners, image_channels, initialization
        self.unet = UNet(base_width, image_channels + 1, groups, align_corners, initialization,
                         dtype=self.dtype_policy, name="unet")

    def build(self, splat_shape):
        if len(splat_shape) != 5:
            raise ValueError(f"AlphaBlendDecoder expects R [B, K, H, W, d] (rank 5); got shape {tuple(splat_shape)}")
        self.unet.build((None,) + tuple(splat_shape)[2:])

    def call(self, splat):
        if splat.shape.rank != 5:
            raise ValueError(f"AlphaBlendDecoder expects R [B, K, H, W, d] (rank 5); got shape {splat.shape}")
        shape = tf.shape(splat)
        batch, keypoints = shape[0], shape[1]
        static = splat.shape
        flat = tf.reshape(splat, tf.concat([[batch * keypoints], shape[2:]], axis=0))  # [B·K, H, W, d]
        flat = tf.ensure_shape(flat, [None] + static[2:].as_list())
        outputs = tf.cast(self.unet(flat), tf.float32)  # [B·K, H, W, C + 1]
        outputs = tf.reshape(outputs, tf.concat([shape[:4], [self.image_channels + 1]], axis=0))  # [B, K, H, W, C+1]
        outputs = tf.ensure_shape(outputs, static[:4].as_list() + [self.image_channels + 1])
        return alpha_blend(outputs[..., :self.image_channels], outputs[..., self.image_channels])

    def get_config(self):
        config = super().get_config()
        config.update(base_width=self.base_width, groups=self.groups, align_corners=self.align_corners,
                      image_channels=self.image_channels, initialization=self.initialization)
        return config


def _check_positive_int(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a python int >= 1; got {value!r}")
