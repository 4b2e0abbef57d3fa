"""ConvVAE: the fully convolutional β-VAE, LAVAE's baseline (Dittadi & Winther 2019, appendix B, "Baseline
implementation"; Table 1's "baseline" row), meant also as the fully convolutional VAE that LAVAE's warm-up trains
beside the model (appendix B, "Training warm-up"). That auxiliary VAE is a different network (3 residual blocks
with downsampling between them, an 11 × 11 × 8 latent) which this config cannot express yet: 11 × 11 from 64 × 64
needs "valid" padding or a resize that the paper does not describe (open).

What appendix B fixes for the baseline (quoted): "a fully convolutional β-VAE, where the latent variables are
organized as a 3D tensor"; the encoder is "a convolutional layer with stride 2, followed by 4 residual blocks with
2 convolutional layers each. Between the first two pairs of blocks, a convolutional layer with stride 2 reduces
dimensionality. The resulting tensor has size 64 × 8 × 8, and a final convolutional layer brings the number of
channels to 2 d_VAE / 8²"; the decoder "takes as input a sample z of size d_VAE / 8² × 8 × 8 and outputs the
pixel-wise Bernoulli means. Its architecture loosely mirrors the encoder's, with convolutions being replaced by
transposed convolutions, except for the last upsampling operation which consists of bilinear interpolation and
ordinary convolution. All convolutions and transposed convolutions, except for the ones between two residual
blocks, are followed by Leaky ReLU and batch normalization. The last convolutional layer is only followed by a
sigmoid"; d_VAE = 1024; "we linearly annealed β from 0 to 1 in 100k steps"; "about 1M" parameters.

How tfobj reads it, and what it chose where the paper is silent (each also at its `ConvVAEConfig` field):

* The latent factorisation is the paper's: 2 d_VAE / 8² = 32 channels of [mean | log-variance] at 8 × 8, so the
  latent z is 8 × 8 × 16 = 1024 for a 64 × 64 image (NHWC: `[B, 8, 8, 16]`). The model is fully convolutional: for
  other image sizes the latent is `[B, H/8, W/8, 16]`, so `latent_channels` (16), not d_VAE, is the config value.
* "Between the first two pairs of blocks": the consecutive pairs (block 1, block 2) and (block 2, block 3) each
  have a stride-2 convolution between them. That is the only reading that reaches the stated 8 × 8 from 64 × 64
  (stride-2 stem 64 → 32, then 32 → 16 → 8): stem, block, down, block, down, block, block, latent conv
  (`blocks_per_stage = (1, 1, 2)`).
* The convolutions "between two residual blocks" (the stride-2 ones, and the decoder's stride-2 transposed ones)
  are linear; every other convolution is conv → Leaky ReLU → batch norm (as in the residual blocks, the shared
  `tfobj.layers.residual_block.ResidualBlock`), except the encoder's final convolution, which is linear: it
  outputs a Gaussian's mean and log-variance (the paper says nothing of it; a Leaky ReLU or a batch norm there
  would constrain the posterior).
* The decoder mirrors the encoder: a convolution from the latent to 64 channels (conv → Leaky ReLU → BN), the
  stages in reverse order (2, 1, 1 blocks) with a stride-2 transposed convolution between stages, then the last
  upsampling as "bilinear interpolation and ordinary convolution": a × 2 bilinear resize and one convolution to the
  image's channels, "only followed by a sigmoid" (the model keeps its logits for a stable likelihood). Stride-1
  "transposed convolutions" (inside the residual blocks and the decoder's first layer) are ordinary convolutions
  here: with "same" padding a stride-1 transposed convolution is a convolution with the kernel flipped, the same
  family of functions with the same parameters.
* Kernels: 3 × 3 for stride 1 (LAVAE's networks' choice), 4 × 4 for stride 2 and the transposed stride 2 (a
  kernel divisible by the stride gives every output pixel the same number of taps: no checkerboard pattern).
  Leaky ReLU slope 0.01, batch norm momentum 0.9 / ε 1e-5 (PyTorch's defaults, as LAVAE's networks). With 64
  filters that is 0.885M parameters for one channel ("about 1M"; tested).
* Likelihood and prior: Bernoulli p(x | z) over every pixel and channel (the data are binary; eq. 12), standard
  normal p(z), diagonal Gaussian q(z | x). The loss is NLL + β·KL with the analytic KL, both summed: nats per image.

Dimension letters (docs/conventions.md): B batch, S importance samples, H, W, C image, h = H/8, w = W/8, L the
latent channels (16), F filters (64).
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import keras
import tensorflow as tf

from tfobj.config import from_dict
from tfobj.layers.residual_block import ResidualBlock
from tfobj.models.inputs import checked_images
from tfobj.models.noise_state import SavesNoiseState
from tfobj.training.schedules import Annealing
from tfobj.training.strategies import loss_for_replica

__all__ = ["ConvVAE", "ConvVAEConfig"]

LOSS_KEYS = ("loss", "nll", "kl")


@dataclass(frozen=True)
class ConvVAEConfig:
    """The fully convolutional β-VAE baseline's hyperparameters (LAVAE appendix B, "Baseline implementation")."""

    # --- Data ---
    image_channels: int = 1  # multi-MNIST: 1 (binary grey, tfobj.data.multi_object); multi-dSprites: 3

    # --- Latent (appendix B: d_VAE = 1024 at 8 × 8, i.e. 2·1024/8² = 32 encoder output channels) ---
    latent_channels: int = 16  # L = d_VAE / 8² = 1024 / 64; z is [B, H/8, W/8, L], 8·8·16 = 1024 at 64 × 64

    # --- Networks (appendix B) ---
    filters: int = 64  # "the resulting tensor has size 64 × 8 × 8": every convolution has 64 filters
    blocks_per_stage: tuple[int, ...] = (1, 1, 2)  # 4 residual blocks; stride-2 convs after blocks 1 and 2
    # (with the stride-2 stem: a downsampling of 2^len(blocks_per_stage) = 8; H, W must be multiples of it)
    kernel_size: int = 3  # not in the paper: stride-1 convolutions, as LAVAE's networks (tfobj.layers.residual_block)
    strided_kernel_size: int = 4  # not in the paper: stride-2 (transposed) convolutions; divisible by the stride
    negative_slope: float = 0.01  # not in the paper: PyTorch's nn.LeakyReLU default, as LAVAE's networks
    batch_norm_momentum: float = 0.9  # not in the paper: PyTorch's 0.1 in Keras' convention, as LAVAE's networks
    batch_norm_epsilon: float = 1e-5  # not in the paper: PyTorch's default, as LAVAE's networks

    # --- β annealing (appendix B: "we linearly annealed β from 0 to 1 in 100k steps") ---
    beta_start: float = 0.0
    beta_end: float = 1.0
    beta_anneal_steps: int = 100_000  # β(t) = start + (end − start)·min(t / steps, 1); 0 = β_end throughout

    def __post_init__(self):
        for name in ("image_channels", "latent_channels", "filters", "kernel_size", "strided_kernel_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("beta_anneal_steps", self.beta_anneal_steps, minimum=0)
        if not isinstance(self.blocks_per_stage, tuple) or not self.blocks_per_stage:
            raise ValueError(f"blocks_per_stage must be a non-empty tuple of integers >= 1 (the paper's (1, 1, 2)); "
                             f"got {self.blocks_per_stage!r}")
        for blocks in self.blocks_per_stage:
            _check_int("blocks_per_stage entries", blocks, minimum=1)
        for name in ("beta_start", "beta_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if not 0 < self.batch_norm_momentum < 1 or not self.batch_norm_epsilon > 0:
            raise ValueError(f"batch_norm_momentum must be in (0, 1) and batch_norm_epsilon > 0; got "
                             f"{self.batch_norm_momentum}, {self.batch_norm_epsilon}")

    @property
    def downsampling(self) -> int:
        """H / h: the stride-2 stem and one stride-2 convolution between consecutive stages."""
        return 2 ** len(self.blocks_per_stage)

    def num_latents(self, height: int, width: int) -> int:
        """d_VAE for `height` × `width` images (1024 for the paper's 64 × 64)."""
        return (height // self.downsampling) * (width // self.downsampling) * self.latent_channels


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


@keras.saving.register_keras_serializable(package="tfobj")
class ConvVAE(Annealing, SavesNoiseState, keras.Model):
    """A fully convolutional β-VAE with a spatial Gaussian latent and a Bernoulli likelihood (LAVAE's baseline).

    The encoder maps an image to the mean and standard deviation of q(z | x), a diagonal Gaussian over a
    `[H/8, W/8, L]` latent map; z is drawn by reparameterisation (noise from the model's own seed generator) and
    the decoder maps it to the logits of independent Bernoulli pixels. The loss is the β-weighted negative ELBO,
    NLL + β·KL(q(z | x) ‖ N(0, I)), in nats per image, with β annealed linearly by the optimizer step
    (`tfobj.training.schedules.Annealing`). The architecture is appendix B's; what it leaves open and what tfobj
    chose is in this module's docstring.

    Args:
        config: `ConvVAEConfig` (or a dict of its fields). Defaults are appendix B's baseline.
        seed: seed of the model's noise (`keras.random.SeedGenerator`).
        **kwargs: passed to `keras.Model` (`name`, `dtype` policy).

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1], C = `config.image_channels`, H and W multiples of
            `config.downsampling` (8); or a dict with key "images".
        training: Keras' flag (batch-norm statistics). Also the default of `sample`.
        sample: draw z ~ q(z | x) (True) or decode the posterior mean (False).

    Returns:
        dict of float32 tensors: "reconstruction" `[B, H, W, C]`, the Bernoulli means; "logits" `[B, H, W, C]`,
        their logits; "latent_mean", "latent_std" `[B, h, w, L]`, q(z | x)'s parameters; "z" `[B, h, w, L]`, the
        decoded latent (a sample, or the mean).

    For the likelihood bound of LAVAE's Table 1, `tfobj.metrics.importance_weighted_nll(model, images, 100)` calls
    `importance_log_weights`.

    References:
        Dittadi & Winther, "LAVAE: Disentangling Location and Appearance", 2019, appendix B;
        Higgins et al. 2017 (β-VAE); Kingma & Welling 2014 (reparameterisation, the analytic Gaussian KL).
    """

    def __init__(self, config: ConvVAEConfig | dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = from_dict(ConvVAEConfig, config)  # strict: unknown keys and wrong types are errors
        self.config = config or ConvVAEConfig()
        self.seed = seed
        c = self.config
        policy = self.dtype_policy
        num_stages = len(c.blocks_per_stage)

        def conv(filters, kernel, stride, name):
            return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", dtype=policy, name=name)

        def norm(name):
            return keras.layers.BatchNormalization(momentum=c.batch_norm_momentum, epsilon=c.batch_norm_epsilon,
                                                   dtype=policy, name=name)

        def blocks(prefix, stage):
            return [ResidualBlock(c.filters, c.kernel_size, c.negative_slope, True, c.batch_norm_momentum,
                                  c.batch_norm_epsilon, dtype=policy, name=f"{prefix}_block_{stage}_{index}")
                    for index in range(c.blocks_per_stage[stage])]

        # === Layers ===
        self.activation = keras.layers.LeakyReLU(c.negative_slope, dtype=policy, name="leaky_relu")
        # Encoder: stem (stride 2) → stage 0 → down → stage 1 → down → … → last stage → latent conv.
        self.stem_conv = conv(c.filters, c.strided_kernel_size, 2, "encoder_stem_conv")
        self.stem_norm = norm("encoder_stem_norm")
        self.encoder_stages = [blocks("encoder", stage) for stage in range(num_stages)]
        self.downsample_convs = [conv(c.filters, c.strided_kernel_size, 2, f"encoder_downsample_{stage}")
                                 for stage in range(num_stages - 1)]
        self.latent_conv = conv(2 * c.latent_channels, c.kernel_size, 1, "encoder_latent_conv")
        # Decoder, the mirror: input conv → last stage → up → … → stage 0 → bilinear × 2 → output conv.
        self.decoder_input_conv = conv(c.filters, c.kernel_size, 1, "decoder_input_conv")
        self.decoder_input_norm = norm("decoder_input_norm")
        self.decoder_stages = [blocks("decoder", stage) for stage in reversed(range(num_stages))]
        self.upsample_convs = [
            keras.layers.Conv2DTranspose(c.filters, c.strided_kernel_size, strides=2, padding="same", dtype=policy,
                                         name=f"decoder_upsample_{stage}")
            for stage in reversed(range(num_stages - 1))
        ]
        self.output_conv = conv(c.image_channels, c.kernel_size, 1, "decoder_output_conv")
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # === Annealed state: assigned from the optimizer step at the start of every training step ===
        self.beta = self.annealed_variable("beta", self._beta)
        # === Metrics: one Mean per term ===
        self.trackers = {key: keras.metrics.Mean(name=key) for key in LOSS_KEYS}

    # === Schedule (appendix B: β linear from 0 to 1 in 100k steps) ===
    def _beta(self, step):
        c = self.config
        if c.beta_anneal_steps == 0:
            return tf.constant(c.beta_end, tf.float32)
        progress = tf.minimum(tf.cast(step, tf.float32) / c.beta_anneal_steps, 1.0)
        return c.beta_start + (c.beta_end - c.beta_start) * progress

    def schedules(self):
        return [(self.beta, self._beta)]

    # === Forward ===
    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["images"]
        shape = tuple(input_shape)
        if len(shape) != 4:
            return  # call() rejects it with checked_images' message
        shape = _build(self.stem_conv, shape)
        self.stem_norm.build(shape)
        for stage, blocks in enumerate(self.encoder_stages):
            for block in blocks:
                shape = _build(block, shape)
            if stage < len(self.downsample_convs):
                shape = _build(self.downsample_convs[stage], shape)
        shape = _build(self.latent_conv, shape)
        shape = _build(self.decoder_input_conv, shape[:-1] + (self.config.latent_channels,))
        self.decoder_input_norm.build(shape)
        for stage, blocks in enumerate(self.decoder_stages):
            for block in blocks:
                shape = _build(block, shape)
            if stage < len(self.upsample_convs):
                shape = _build(self.upsample_convs[stage], shape)
        self.output_conv.build(shape)
        self.built = True

    def encode(self, images, training=False):
        """q(z | x): (mean, std), each float32 `[B, h, w, L]`. `images` float `[B, H, W, C]`, already checked."""
        x = tf.cast(images, self.compute_dtype)
        x = self.stem_norm(self.activation(self.stem_conv(x)), training=training)  # [B, H/2, W/2, F]
        for stage, blocks in enumerate(self.encoder_stages):
            for block in blocks:
                x = block(x, training=training)
            if stage < len(self.downsample_convs):
                x = self.downsample_convs[stage](x)  # halves H and W; linear (between two residual blocks)
        moments = tf.cast(self.latent_conv(x), tf.float32)  # [B, h, w, 2L]: [mean | log-variance]
        mean, log_variance = tf.split(moments, 2, axis=-1)  # [B, h, w, L] each
        return mean, tf.exp(0.5 * log_variance)

    def decode(self, z, training=False):
        """p(x | z): the Bernoulli logits, float32 `[B, H, W, C]`, of a latent `[B, h, w, L]`."""
        x = tf.cast(z, self.compute_dtype)
        x = self.decoder_input_norm(self.activation(self.decoder_input_conv(x)), training=training)  # [B, h, w, F]
        for stage, blocks in enumerate(self.decoder_stages):
            for block in blocks:
                x = block(x, training=training)
            if stage < len(self.upsample_convs):
                x = self.upsample_convs[stage](x)  # doubles H and W; linear (between two residual blocks)
        size = 2 * tf.shape(x)[1:3]
        x = tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)  # [B, H, W, F]: the last upsampling
        return tf.cast(self.output_conv(x), tf.float32)  # [B, H, W, C]

    def _checked(self, images):
        c = self.config
        return checked_images(images, "ConvVAE", channels=c.image_channels, multiple=c.downsampling)

    def call(self, images, training=False, sample=None):
        if isinstance(images, dict):
            images = images["images"]
        images32 = self._checked(images)  # [B, H, W, C]
        sample = bool(training) if sample is None else sample
        mean, std = self.encode(images32, training=training)  # [B, h, w, L] each
        z = mean
        if sample:
            z = mean + std * keras.random.normal(tf.shape(mean), seed=self.seed_generator)
        logits = self.decode(z, training=training)  # [B, H, W, C]
        return {"reconstruction": tf.sigmoid(logits), "logits": logits, "latent_mean": mean, "latent_std": std,
                "z": z}

    # === Generation ===
    def sample_prior(self, num_images: int, height: int = 64, width: int = 64) -> dict:
        """Draws from the prior (LAVAE's Figures 2, 4, 10, right): z ~ N(0, I) on the `[h, w, L]` latent map of a
        `height` × `width` image, decoded in inference mode (batch-norm moving statistics).

        Args:
            num_images: N >= 1.
            height, width: the image size, positive multiples of `config.downsampling` (the paper's 64 × 64).

        Returns:
            dict: "images" float32 `[N, height, width, C]` (the Bernoulli means), "z" float32 `[N, h, w, L]`.

        Raises:
            ValueError: `num_images` < 1, or a size that is not a positive multiple of `config.downsampling`.
        """
        c = self.config
        if isinstance(num_images, bool) or not isinstance(num_images, numbers.Integral) or num_images < 1:
            raise ValueError(f"ConvVAE.sample_prior: num_images must be an integer >= 1; got {num_images!r}")
        for name, size in (("height", height), ("width", width)):
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < c.downsampling \
                    or size % c.downsampling:
                raise ValueError(f"ConvVAE.sample_prior: {name} must be a positive multiple of {c.downsampling} "
                                 f"(the model's downsampling); got {size!r}")
        if not self.built:
            self.build((None, int(height), int(width), c.image_channels))
        shape = [int(num_images), int(height) // c.downsampling, int(width) // c.downsampling, c.latent_channels]
        z = keras.random.normal(shape, seed=self.seed_generator)
        return {"images": tf.sigmoid(self.decode(z, training=False)), "z": z}

    # === Loss ===
    def loss_terms(self, images, outputs) -> dict:
        """The negative ELBO's terms, each float32 `[B]` in nats per image.

        nll: −log p(x | z) of the decoded z, Bernoulli, summed over pixels and channels. kl: KL(q(z | x) ‖ N(0, I))
        in closed form, Σ (μ² + σ² − 1)/2 − log σ, summed over the latent map.
        """
        x = tf.cast(images, tf.float32)
        nll = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=outputs["logits"]),
                            axis=[1, 2, 3])
        mean, std = outputs["latent_mean"], outputs["latent_std"]
        kl = tf.reduce_sum(0.5 * (tf.square(mean) + tf.square(std) - 1.0) - tf.math.log(std), axis=[1, 2, 3])
        return {"nll": nll, "kl": kl}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = x["images"] if isinstance(x, dict) else x
        terms = self.loss_terms(images, y_pred)
        terms["loss"] = terms["nll"] + self.beta * terms["kl"]  # β = 1: the negative ELBO
        for key in LOSS_KEYS:
            self.trackers[key].update_state(terms[key])
        return loss_for_replica(tf.reduce_mean(terms["loss"]))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Likelihood bound (tfobj.metrics.importance_weighted_nll's protocol) ===
    def importance_log_weights(self, images, num_samples):
        """log p(x | z_s) + log p(z_s) − log q(z_s | x) for `num_samples` fresh draws z_s ~ q(z | x) per image.

        Every term is summed over pixels, channels and latents (nats per image); inference mode (batch norm's
        moving statistics). The S·B samples are decoded at once: `importance_weighted_nll(..., batch_samples=k)`
        bounds the memory by asking for k at a time; each call draws new noise from the model's seed generator.
        With one sample it is minus the single-sample negative ELBO at β = 1 (the KL estimated by
        log q − log p at that sample, whose expectation is the analytic `kl` of `loss_terms`); from the same
        noise-generator state it draws the z that `call(images, sample=True)` draws.

        Args:
            images: float `[B, H, W, C]` in [0, 1] (or a dict with key "images").
            num_samples: S >= 1.

        Returns:
            float32 `[B, S]`.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1; got {num_samples!r}")
        if isinstance(images, dict):
            images = images["images"]
        x = self._checked(images)  # [B, H, W, C]
        mean, std = self.encode(x, training=False)  # [B, h, w, L]
        latent_shape = tf.shape(mean)
        noise = keras.random.normal(tf.concat([[int(num_samples)], latent_shape], 0),
                                    seed=self.seed_generator)  # [S, B, h, w, L]
        z = mean + std * noise  # [S, B, h, w, L]
        logits = self.decode(tf.reshape(z, tf.concat([[-1], latent_shape[1:]], 0)), training=False)  # [S·B, H, W, C]
        logits = tf.reshape(logits, tf.concat([[int(num_samples)], tf.shape(x)], 0))  # [S, B, H, W, C]
        labels = tf.broadcast_to(x[None], tf.shape(logits))
        log_px = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits),
                                axis=[2, 3, 4])  # [S, B]
        # log N(z; 0, 1) − log N(z; μ, σ) = Σ ε²/2 + log σ − z²/2 (z = μ + σε; the log 2π terms cancel).
        log_pz_over_qz = tf.reduce_sum(0.5 * tf.square(noise) + tf.math.log(std) - 0.5 * tf.square(z),
                                       axis=[2, 3, 4])  # [S, B]
        return tf.transpose(log_px + log_pz_over_qz)  # [B, S]

    # === Serving: the signatures tfobj.export_saved_model writes ===
    def serving_endpoints(self) -> dict:
        """`{name: (function, input_signature)}`; "serve" becomes the SavedModel's `serving_default`.

        serve: `images` float32 `[batch, H, W, C]` in [0, 1] (batch, H and W unknown; multiples of 8) ->
        `reconstruction [batch, H, W, C]`, the Bernoulli means decoded from the posterior mean.
        """
        def serve(images):
            return {"reconstruction": self(images, training=False)["reconstruction"]}

        channels = self.config.image_channels
        return {"serve": (serve, [tf.TensorSpec([None, None, None, channels], tf.float32, name="images")])}

    # === Config ===
    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update(config=dataclasses.asdict(self.config), seed=self.seed)
        return config


def _build(layer, shape):
    layer.build(shape)
    return tuple(layer.compute_output_shape(shape))

