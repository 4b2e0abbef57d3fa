"""LAVAEConfig (the model), its per-dataset presets `LAVAE_PRESETS`, and `LAVAE_TRAINING` (its optimisation).

Every LAVAE hyperparameter, with appendix B of the paper (Dittadi & Winther 2019) as the
default. No public LAVAE code exists: where the paper is silent the value is
tfobj's, marked "not in the paper", with its reason here or in docs/lavae.md.

The dataclass defaults are the multi-MNIST model (1k and 10k alike), so `LAVAEConfig()` is the paper's multi-MNIST
LAVAE; `LAVAE_PRESETS["multi_dsprites"]` (or `LAVAEConfig.preset("multi_dsprites")`) differs in the image
channels (3 Bernoulli terms per pixel, section 3.2), the sprite size (21 × 21) and the location net's learning rate
(5e-4), all three from appendix B.
"""
from __future__ import annotations

import dataclasses
import numbers
import types
from dataclasses import dataclass

from tfobj.models.baselines.conv_vae import ConvVAEConfig
from tfobj.training.train_config import TrainConfig

__all__ = ["LAVAEConfig", "LAVAE_PRESETS", "LAVAE_TRAINING"]


@dataclass(frozen=True)
class LAVAEConfig:
    """LAVAE hyperparameters (Dittadi & Winther 2019); defaults: appendix B, multi-MNIST."""

    # --- Data (section 3) ---
    image_channels: int = 1  # multi-MNIST: 1 binary channel; multi-dSprites: 3 ("3D terms in the likelihood", 3.2)
    image_size: tuple[int, int] = (64, 64)  # section 3: 64 × 64 canvases; the size `generate`/`sample_prior` draw
    # (inference is fully convolutional and takes any size)

    # --- Latents (section 2; appendix B) ---
    max_objects: int = 10  # M, appendix B: "We fix the maximum number of objects per image to M = 10"
    appearance_size: int = 32  # L, appendix B: "The latent space for each appearance variable has L = 32"
    gamma: float = 4.0  # γ, appendix B: h_loc = γ · logits, "γ = 4 ≈ 1/2 log D"; f_count's threshold is 4γ.
    # For canvases other than 64 × 64 use `lavae_math.logit_scale(H·W)` (appendix B's log D rule).
    count_window: int = 3  # not in the paper: f_count's local-maximum window (lavae_math module docstring)

    # --- Networks (appendix B; the sizes the paper leaves open: tfobj/models/lavae/lavae_layers.py) ---
    filters: int = 46  # not in the paper: F of all three networks, for "about 500k" parameters split evenly
    inference_blocks: int = 4  # "a residual network with 4 blocks having 2 convolutional layers each"
    location_head_layers: int = 3  # "a 3-layer convolutional network with one output channel"
    sprite_size: int = 17  # "17 × 17" for multi-MNIST; 21 × 21 for multi-dSprites
    sprite_initial_size: int = 5  # not in the paper: f_sprite's dense layer outputs a 5 × 5 map
    sprite_initial_channels: int = 32  # not in the paper: … with 32 channels
    sprite_blocks: int = 3  # "3 residual blocks with 2 convolutional layers each"
    kernel_size: int = 3  # not in the paper: 3 × 3 convolutions
    negative_slope: float = 0.01  # not in the paper: PyTorch's LeakyReLU default
    batch_norm_momentum: float = 0.9  # not in the paper: PyTorch's BatchNorm momentum 0.1, in Keras' convention
    batch_norm_epsilon: float = 1e-5  # not in the paper: PyTorch's default

    # --- Gumbel-softmax (section 2; appendix B) ---
    temperature_start: float = 0.5  # "τ is exponentially annealed from 0.5 to 0.02 in 100k steps"
    temperature_end: float = 0.02
    temperature_anneal_steps: int = 100_000  # τ(t) = start·(end/start)^min(t/steps, 1), then held at the end
    straight_through: bool = False  # not in the paper (it uses the relaxed sample): True = straight-through one-hots

    # --- Per-part learning rates (appendix B; the rest of the model: the optimizer given to `compile`, 1e-3) ---
    location_learning_rate: float = 1e-4  # "1e-4 or 5e-4 for the location inference network" (MNIST, dSprites)
    location_decay_rate: float = 0.01  # "exponentially decayed by a factor of 100 in 100k steps"
    location_decay_steps: int = 100_000  # lr(t) = lr·rate^(t / steps) (Keras ExponentialDecay, not clamped)
    auxiliary_learning_rate: float = 1e-3  # not in the paper: the auxiliary VAE's Adamax, at "the rest"'s rate

    # --- Warm-up (appendix B, "Training warm-up") ---
    warmup_steps: int = 30_000  # the auxiliary loss at full weight and n forced to 1 with probability 1 ...
    warmup_anneal_steps: int = 30_000  # ... then "linearly annealed to 0" / "linearly decays to 0.1" over 30k
    warmup_loss_weight: float = 1.0  # not in the paper: the squared distance enters the loss unweighted
    force_one_start: float = 1.0  # P(force n = 1) "is 1 during warm-up (30k steps) ...
    force_one_end: float = 0.1  # ... and then linearly decays to 0.1"; held at 0.1 afterwards (the literal reading)

    # --- The auxiliary fully convolutional VAE (appendix B), a `ConvVAE` ---
    auxiliary_latent_channels: int = 8  # "latent variables arranged as a 3D tensor with size 11 × 11 × 8"
    auxiliary_blocks_per_stage: tuple[int, ...] = (1, 1, 1)  # "3 residual blocks with downsampling between blocks";
    # with ConvVAE's stride-2 stem that is an 8 × 8 latent at 64 × 64, the nearest ConvVAE map to the paper's 11 × 11
    # (docs/lavae.md)
    auxiliary_filters: int = 64  # not in the paper: ConvVAE's (the baseline's) width

    def __post_init__(self):
        for name in ("image_channels", "max_objects", "appearance_size", "filters", "inference_blocks",
                     "location_head_layers", "sprite_size", "sprite_initial_size", "sprite_initial_channels",
                     "sprite_blocks", "kernel_size", "location_decay_steps", "auxiliary_latent_channels",
                     "auxiliary_filters"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("temperature_anneal_steps", "warmup_steps", "warmup_anneal_steps"):
            _check_int(name, getattr(self, name), minimum=0)
        if (not isinstance(self.count_window, int) or isinstance(self.count_window, bool) or self.count_window < 1
                or self.count_window % 2 == 0):
            raise ValueError(f"count_window must be an odd integer >= 1; got {self.count_window!r}")
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be (H, W); got {self.image_size!r}")
        for value in self.image_size:
            _check_int("image_size entries", value, minimum=1)
        for name in ("gamma", "temperature_start", "temperature_end", "location_learning_rate",
                     "location_decay_rate", "auxiliary_learning_rate"):
            _check_number(name, getattr(self, name), lambda v: v > 0, "> 0")
        _check_number("warmup_loss_weight", self.warmup_loss_weight, lambda v: v >= 0, ">= 0")
        for name in ("force_one_start", "force_one_end"):
            _check_number(name, getattr(self, name), lambda v: 0 <= v <= 1, "in [0, 1]")
        if not 0 < self.batch_norm_momentum < 1 or not self.batch_norm_epsilon > 0:
            raise ValueError(f"batch_norm_momentum must be in (0, 1) and batch_norm_epsilon > 0; got "
                             f"{self.batch_norm_momentum}, {self.batch_norm_epsilon}")
        self.auxiliary_vae_config()  # the auxiliary VAE's own checks

    def auxiliary_vae_config(self) -> ConvVAEConfig:
        """The auxiliary VAE's `ConvVAEConfig`: the paper's 8 latent channels, β = 1 throughout (a plain VAE: "We
        train a fully-convolutional VAE in parallel"), the kernels and normalisation of LAVAE's own networks."""
        return ConvVAEConfig(image_channels=self.image_channels, latent_channels=self.auxiliary_latent_channels,
                             filters=self.auxiliary_filters, blocks_per_stage=tuple(self.auxiliary_blocks_per_stage),
                             kernel_size=self.kernel_size, negative_slope=self.negative_slope,
                             batch_norm_momentum=self.batch_norm_momentum, batch_norm_epsilon=self.batch_norm_epsilon,
                             beta_start=1.0, beta_end=1.0, beta_anneal_steps=0)

    @classmethod
    def preset(cls, name: str, **changes) -> "LAVAEConfig":
        """The preset `name` ("multi_mnist", "multi_dsprites"), with `changes` applied."""
        if name not in LAVAE_PRESETS:
            raise ValueError(f"unknown LAVAE preset {name!r}; the presets are {sorted(LAVAE_PRESETS)}")
        return dataclasses.replace(LAVAE_PRESETS[name], **changes)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_number(name, value, ok, expected):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
        raise ValueError(f"{name} must be a number {expected}; got {value!r}")


# Appendix B's per-dataset values: multi-MNIST (1k and 10k) is the default; multi-dSprites has RGB images, 21 × 21
# sprites and the location net's 5e-4.
LAVAE_PRESETS = types.MappingProxyType({
    "multi_mnist": LAVAEConfig(),
    "multi_dsprites": LAVAEConfig(image_channels=3, sprite_size=21, location_learning_rate=5e-4),
})

# LAVAE's optimisation (appendix B): Adamax, batch 64, 1e-3 for "the rest of the model" (this optimizer; the location
# net's and the auxiliary VAE's are built by LAVAE.compile from LAVAEConfig). No gradient clipping is mentioned.
# Run length: not in the paper. 200k steps (eval every 5k) is tfobj's choice: twice the longest schedule (τ and the
# location learning rate reach their ends at 100k; the warm-up ends at 60k), ≈ 67 epochs of the 190k training images.
LAVAE_TRAINING = TrainConfig(steps=200_000, eval_every=5_000, batch_size=64, optimizer="adamax", learning_rate=1e-3)
