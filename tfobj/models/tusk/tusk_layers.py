"""TUSK's layers: the U-Net and the keypoint encoder (Table 9, "Encoder E" and "Keypoints Sampling").

Dimension letters (docs/conventions.md): B batch, H, W image, C image channels, K keypoints, F feature
channels (32 in TUSK; the descriptor size d). Keypoints are (row, col) in pixel-index units (see
`tusk_math.py`).

Architecture facts that the seed's Table 9 leaves out ("UNet(I) → H, F") are the original code's
(ubc-vision/TUSK@04ba610 `models/unet.py`, `models/network.py`).

Initialisation (`initialization`): "keras", Keras' defaults (Glorot-uniform kernels, zero biases), or "pytorch",
the original's (PyTorch's `nn.Conv2d` default: kernels and biases uniform in ±1/√fan_in, `TorchInitConv2D`);
GroupNorm γ = 1, β = 0 in both. GroupNorm's ε is PyTorch's 1e-5 (Keras' default is 1e-3).
"""
from __future__ import annotations

import math
import numbers

import keras
import tensorflow as tf

from tfobj.models.tusk.keypoints import soft_argmax
from tfobj.models.tusk.tusk_math import (SAMPLING_METHODS, _check_kernel_size, sample_points, select_peaks,
                                         upsample_bilinear)

NUM_POOLINGS = 3  # the original U-Net: 3 max-pools, so H and W must be multiples of 2³ = 8
GROUP_NORM_EPSILON = 1e-5  # torch.nn.GroupNorm's default, which the original uses
BORDERS = ("exclude", "zeros")  # soft_argmax's border rules
INITIALIZATIONS = ("keras", "pytorch")  # the convolutions' initial weights (module docstring)


@keras.saving.register_keras_serializable(package="tfobj")
class TorchInitConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` initialised as PyTorch's `nn.Conv2d`: kernel and bias uniform in ±1/√fan_in,
    fan_in = input channels × kernel height × kernel width (known at build). Same computation as Conv2D."""

    def build(self, input_shape):
        bound = 1.0 / math.sqrt(input_shape[-1] * math.prod(self.kernel_size))
        self.kernel_initializer = keras.initializers.RandomUniform(-bound, bound)
        self.bias_initializer = keras.initializers.RandomUniform(-bound, bound)
        super().build(input_shape)


def conv2d(filters, kernel_size, initialization="keras", **kwargs) -> keras.layers.Conv2D:
    """A Conv2D with the `initialization`'s initial weights ("keras" or "pytorch", see the module docstring)."""
    if initialization not in INITIALIZATIONS:
        raise ValueError(f"initialization must be one of {INITIALIZATIONS}; got {initialization!r}")
    layer = TorchInitConv2D if initialization == "pytorch" else keras.layers.Conv2D
    return layer(filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="tfobj")
class UNet(keras.layers.Layer):
    """The U-Net of TUSK's encoder and decoders (Table 9 "UNet"; the original `models/unet.py`, `UNet`).

    Contracting path: at widths w, 2w, 4w a double conv block (two [3×3 conv (zero "same" padding) +
    GroupNorm + ReLU]), each followed by a 2×2 max-pool; then a double conv block of width 8w at H/8 × W/8.
    Expanding path: three times bilinear ×2 upsampling, concatenation with the block of the same resolution
    (upsampled first, then the skip, as the original), and a double conv block down to 4w, 2w, w. Last, a 1×1
    conv to `output_channels`, linear (no normalisation, no activation).

    Upsampling: the original uses PyTorch's bilinear `align_corners=True`; Keras'
    `UpSampling2D(interpolation="bilinear")` (TF backend: `tf.image.resize`) uses half-pixel centres instead.
    The default here is the Keras convention; `align_corners=True` reproduces the original. See
    `tusk_math.upsample_bilinear`: for a network trained from scratch the difference is not expected to
    matter (not measured); it does matter for running the original's trained weights.

    Args:
        base_width: w, the channels of the first level (original: 32, `latent_channel`).
        output_channels: channels of the output (TUSK: 32 for the encoder's F; 3, or 4 with alpha, decoders).
        groups: GroupNorm groups in every block (original: 32, its `group_norm_channel` = w); must divide w.
        align_corners: upsampling convention, see above (original: True).
        initialization: the convolutions' initial weights, "keras" or "pytorch" (the original's; module docstring).
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype` policy, ...).

    Call arguments:
        inputs: float `[B, H, W, C]`, H and W multiples of 8.

    Returns:
        `[B, H, W, output_channels]` in the compute dtype.

    Raises:
        ValueError: for a non-positive `base_width`/`output_channels`/`groups`, `groups` not dividing
            `base_width`, or (at build or call) an input that is not rank 4 or whose static H or W is not a
            multiple of 8. Inside a `tf.function` with H, W only known at run time, such a size raises
            `tf.errors.InvalidArgumentError` when run.

    References:
        - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, Table 9.
        - Ronneberger et al., "U-Net", MICCAI 2015.
    """

    def __init__(self, base_width=32, output_channels=32, groups=32, align_corners=False, initialization="keras",
                 **kwargs):
        super().__init__(**kwargs)
        self.initialization = initialization  # checked by `conv2d` when the blocks are made
        for name, value in (("base_width", base_width), ("output_channels", output_channels), ("groups", groups)):
            _check_positive_int(name, value)
        if base_width % groups:
            raise ValueError(
                f"groups must divide base_width (every level's width is a multiple of it); got groups={groups}, "
                f"base_width={base_width}"
            )
        if not isinstance(align_corners, bool):
            raise ValueError(f"align_corners must be a bool; got {align_corners!r}")
        self.base_width, self.output_channels = base_width, output_channels
        self.groups, self.align_corners = groups, align_corners
        widths = [base_width * 2**level for level in range(NUM_POOLINGS + 1)]  # w, 2w, 4w, 8w
        self.down_blocks = [self._double_conv(width, f"down_{level + 1}") for level, width in enumerate(widths)]
        self.up_blocks = [self._double_conv(widths[level], f"up_{level + 1}")
                          for level in reversed(range(NUM_POOLINGS))]  # up_3 (4w), up_2 (2w), up_1 (w)
        self.output_conv = conv2d(output_channels, 1, initialization, dtype=self.dtype_policy, name="output_conv")

    def _double_conv(self, width, name):
        """[conv3×3, GroupNorm, ReLU] × 2, as a list of the four weighted layers (stable names)."""
        layers = []
        for index in (1, 2):
            layers.append(conv2d(width, 3, self.initialization, padding="same", dtype=self.dtype_policy,
                                 name=f"{name}_conv_{index}"))
            layers.append(keras.layers.GroupNormalization(groups=self.groups, epsilon=GROUP_NORM_EPSILON,
                                                          dtype=self.dtype_policy, name=f"{name}_norm_{index}"))
        return layers

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"UNet expects images [B, H, W, C] (rank 4); got shape {tuple(input_shape)}")
        _check_divisible(input_shape)
        _, height, width, _ = input_shape

        def shrink(size, factor):
            return None if size is None else size // factor

        shape = tuple(input_shape)
        skips = []
        for level, block in enumerate(self.down_blocks):
            shape = _build_block(block, shape)
            if level < NUM_POOLINGS:
                skips.append(shape)
                factor = 2 ** (level + 1)
                shape = (shape[0], shrink(height, factor), shrink(width, factor), shape[3])
        for block, skip in zip(self.up_blocks, reversed(skips)):
            shape = (shape[0], skip[1], skip[2], shape[3] + skip[3])  # upsampled, concatenated with the skip
            shape = _build_block(block, shape)
        self.output_conv.build(shape)

    def call(self, inputs):
        _check_divisible(inputs.shape)  # also when built for other (or unknown) sizes
        x = inputs
        if not tf.executing_eagerly() and (inputs.shape[1] is None or inputs.shape[2] is None):
            shape = tf.shape(inputs)
            check = tf.debugging.assert_equal(
                (shape[1] % 2**NUM_POOLINGS, shape[2] % 2**NUM_POOLINGS), (0, 0),
                message="UNet: H and W must be multiples of 8 (3 max-pools)")
            with tf.control_dependencies([check]):
                x = tf.identity(x)
        skips = []
        for level, block in enumerate(self.down_blocks):
            x = _run_block(block, x)  # [B, H/2^l, W/2^l, w·2^l]
            if level < NUM_POOLINGS:
                skips.append(x)
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")  # [B, H/2^(l+1), W/2^(l+1), w·2^l]
        for block, skip in zip(self.up_blocks, reversed(skips)):
            x = upsample_bilinear(x, self.align_corners)  # [B, 2h, 2w, c]
            x = tf.concat([x, skip], axis=-1)  # [B, 2h, 2w, c + c_skip]
            x = _run_block(block, x)
        return self.output_conv(x)  # [B, H, W, output_channels]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.output_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(base_width=self.base_width, output_channels=self.output_channels, groups=self.groups,
                      align_corners=self.align_corners, initialization=self.initialization)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class KeypointEncoder(keras.layers.Layer):
    """TUSK's encoder E with keypoint sampling: image → keypoints, descriptors, scores (Table 9, appendix A.1).

    1. F = UNet(I), `feature_channels` channels at full resolution.
    2. Heatmap head (original `UNet_Encoder.heatmap_header`): conv3×3 (F → F) + GroupNorm(F groups, i.e.
       per channel) + ReLU + conv3×3 (F → 1) + GroupNorm(1 group) — a per-image standardisation of the
       heatmap over H × W, with a learned scale and shift if `heatmap_affine` (original: True) → H.
    3. S = sigmoid(H); NMS with a B×B window and top-K (`tusk_math.select_peaks`): the K highest local maxima;
       if an image has fewer than K, the remaining slots hold its highest non-maxima, flagged `valid = False`
       (the original picks zeros of the filtered map at unspecified positions).
    4. Soft-argmax (eq. 5, `keypoints.soft_argmax`) in the B×B window around each peak, temperature τ.
    5. Descriptors: F read at the keypoints (`tusk_math.sample_points`), bilinear by default (Table 9;
       gradients reach F and the keypoints) or truncated to integer indices as the original
       (`descriptor_sampling="truncate"`; gradients reach F only), then L2-normalised (original).
    6. Scores (keypoint confidences): the bilinear interpolation of S at the keypoints (original).

    All keypoint math runs in float32 (cast from the compute dtype under mixed precision).

    Args:
        num_keypoints: K (Table 10: MNIST 9, CLEVR6 6, Tetrominoes 3, CelebA 4, H36M 16).
        kernel_size: B, the odd NMS and soft-argmax window (Table 10: 13, 21, 27, 21, 11).
        temperature: τ of eq. 5, > 0 (the seed gives no value; the original hard-codes 0.2).
        feature_channels: F, the channels of the feature map and the descriptor size (original: 32).
        base_width: the U-Net's first width (original: 32, the same `latent_channel`).
        groups: GroupNorm groups of the U-Net (original: 32).
        descriptor_sampling: `"bilinear"` (seed, Table 9) or `"truncate"` (original `sample_features`).
        border: soft-argmax windows at the image border, `"exclude"` (seed eq. 5) or `"zeros"` (original).
        align_corners: the U-Net's upsampling convention (original: True; see `UNet`).
        heatmap_affine: learned scale and shift in the heatmap's GroupNorm(1) (original config: True).
        initialization: the convolutions' initial weights, "keras" or "pytorch" (the original's; module docstring).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1], H and W multiples of 8, K <= H·W.

    Returns:
        dict of tensors:
          "keypoints" float32 `[B, K, 2]` (row, col), pixel-index units, sub-pixel (L of Table 9);
          "scores" float32 `[B, K]`: S interpolated at the keypoints, in [0, 1];
          "descriptors" float32 `[B, K, F]`: unit vectors (D);
          "valid" bool `[B, K]`: the slot holds a local maximum of S (see 3.);
          "peaks" int32 `[B, K, 2]`: the integer NMS + top-K peaks (T of eq. 5), row, col;
          "heatmap" float32 `[B, H, W]`: H, before the sigmoid;
          "scoremap" float32 `[B, H, W]`: S = sigmoid(H) (the original's equivariance loss compares S);
          "features" float32 `[B, H, W, F]`: the feature map F.

    Raises:
        ValueError: for an invalid argument (each is checked at construction), or at build for an input that is
            not rank 4, with a static H or W not a multiple of 8, or with H·W < K.

    References:
        - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, Table 9, appendix A.1.
        - ubc-vision/TUSK `models/network.py`, `models/unet.py`, `utils/torch_utils.py` (the original code).
    """

    def __init__(self, num_keypoints=9, kernel_size=13, temperature=0.2, feature_channels=32, base_width=32,
                 groups=32, descriptor_sampling="bilinear", border="exclude", align_corners=False,
                 heatmap_affine=True, initialization="keras", **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("num_keypoints", num_keypoints)
        _check_positive_int("feature_channels", feature_channels)
        _check_kernel_size(kernel_size)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or \
                not 0.0 < float(temperature) < float("inf"):
            raise ValueError(f"temperature must be a positive python float; got {temperature!r}")
        if descriptor_sampling not in SAMPLING_METHODS:
            raise ValueError(f"descriptor_sampling must be one of {SAMPLING_METHODS}; got {descriptor_sampling!r}")
        if border not in BORDERS:
            raise ValueError(f"border must be one of {BORDERS}; got {border!r}")
        if not isinstance(heatmap_affine, bool):
            raise ValueError(f"heatmap_affine must be a bool; got {heatmap_affine!r}")
        self.num_keypoints, self.kernel_size, self.temperature = num_keypoints, kernel_size, temperature
        self.feature_channels, self.base_width, self.groups = feature_channels, base_width, groups
        self.descriptor_sampling, self.border = descriptor_sampling, border
        self.align_corners, self.heatmap_affine = align_corners, heatmap_affine
        self.initialization = initialization
        self.unet = UNet(base_width, feature_channels, groups, align_corners, initialization,
                         dtype=self.dtype_policy, name="unet")
        self.head_conv_1 = conv2d(feature_channels, 3, initialization, padding="same", dtype=self.dtype_policy,
                                  name="head_conv_1")
        self.head_norm_1 = keras.layers.GroupNormalization(groups=feature_channels, epsilon=GROUP_NORM_EPSILON,
                                                           dtype=self.dtype_policy, name="head_norm_1")
        self.head_conv_2 = conv2d(1, 3, initialization, padding="same", dtype=self.dtype_policy, name="head_conv_2")
        self.heatmap_norm = keras.layers.GroupNormalization(groups=1, epsilon=GROUP_NORM_EPSILON,
                                                            center=heatmap_affine, scale=heatmap_affine,
                                                            dtype=self.dtype_policy, name="heatmap_norm")

    def build(self, images_shape):
        self.unet.build(images_shape)  # checks the rank and that H, W are multiples of 8
        _, height, width, _ = images_shape
        if height is not None and width is not None and height * width < self.num_keypoints:
            raise ValueError(
                f"images must have at least num_keypoints = {self.num_keypoints} pixels; got {height}×{width}"
            )
        shape = self.unet.compute_output_shape(images_shape)  # [B, H, W, F]
        self.head_conv_1.build(shape)
        self.head_norm_1.build(shape)
        self.head_conv_2.build(shape)
        self.heatmap_norm.build(tuple(shape)[:-1] + (1,))

    def call(self, images):
        features = self.unet(images)  # [B, H, W, F], compute dtype
        x = keras.activations.relu(self.head_norm_1(self.head_conv_1(features)))  # [B, H, W, F]
        heatmap = tf.cast(self.heatmap_norm(self.head_conv_2(x))[..., 0], tf.float32)  # [B, H, W]
        scoremap = tf.sigmoid(heatmap)  # [B, H, W], S
        peaks, valid = select_peaks(scoremap, self.kernel_size, self.num_keypoints)  # [B, K, 2], [B, K]
        keypoints = soft_argmax(scoremap, peaks, self.kernel_size, self.temperature, border=self.border)  # [B, K, 2]
        scores = sample_points(scoremap[..., None], keypoints)[..., 0]  # [B, K]
        features = tf.cast(features, tf.float32)
        descriptors = sample_points(features, keypoints, self.descriptor_sampling)  # [B, K, F]
        descriptors = tf.math.l2_normalize(descriptors, axis=-1, epsilon=1e-24)  # x / max(‖x‖, 1e-12), as torch
        return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors, "valid": valid,
                "peaks": peaks, "heatmap": heatmap, "scoremap": scoremap, "features": features}

    def get_config(self):
        config = super().get_config()
        config.update(num_keypoints=self.num_keypoints, kernel_size=self.kernel_size, temperature=self.temperature,
                      feature_channels=self.feature_channels, base_width=self.base_width, groups=self.groups,
                      descriptor_sampling=self.descriptor_sampling, border=self.border,
                      align_corners=self.align_corners, heatmap_affine=self.heatmap_affine,
                      initialization=self.initialization)
        return config


def _build_block(layers, shape):
    """Builds a double conv block's layers for an input `shape`; returns the block's output shape."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return tuple(shape)


def _run_block(layers, x):
    """[conv, GroupNorm, ReLU] × 2."""
    for conv, norm in zip(layers[0::2], layers[1::2]):
        x = keras.activations.relu(norm(conv(x)))
    return x


def _check_divisible(input_shape) -> None:
    factor = 2**NUM_POOLINGS
    for name, size in (("H", input_shape[1]), ("W", input_shape[2])):
        if size is not None and size % factor:
            raise ValueError(
                f"UNet: image {name} must be a multiple of {factor} ({NUM_POOLINGS} 2×2 max-pools, each level "
                f"concatenated with its skip connection); got input shape {tuple(input_shape)}"
            )


def _check_positive_int(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a python int >= 1; got {value!r}")
