"""TUSKConfig (the model), its per-dataset presets `TUSK_PRESETS`, and `TUSK_TRAINING` (their optimisation).

Every TUSK hyperparameter, with the seed's appendix as the default (Table 10 per dataset, Tables 7 and 9,
A.1, A.2) and the original code (ubc-vision/TUSK@04ba610, `configs/*.yaml`, `train.py`, `models/*.py`; notes
§4d) where the seed is silent. Where the two disagree the seed is the default and the original's behaviour an
option, named in the field's comment (docs/tusk.md).

The dataclass defaults are the MNIST(-Hard) column of Table 10, so `TUSKConfig()` is the paper's MNIST model;
`TUSK_PRESETS["clevr6"]` and `TUSK_PRESETS["tetrominoes"]` (or `TUSKConfig.preset(name)`) are the others.
CelebA and Human3.6M (Table 10's last two columns) need a perceptual loss and landmark data tfobj does not have.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Literal

from tfobj.config import check_choices
from tfobj.models.tusk.tps import PAIR_PADDING, TPS_PRESETS
from tfobj.training.train_config import TrainConfig

__all__ = ["TPS_PARAMETERS", "TUSKConfig", "TUSK_PRESETS", "TUSK_TRAINING"]

# The order of a TPS tuple: the arguments of `tps.random_tps_params` (the original's `get_tps_para`).
TPS_PARAMETERS = ("scale", "scale_var", "tps_var", "offset_var", "rotation_var")


def _tps(preset: str) -> tuple[float, float, float, float, float]:
    """A `tps.TPS_PRESETS` entry as the config's tuple (order `TPS_PARAMETERS`)."""
    return tuple(float(TPS_PRESETS[preset][name]) for name in TPS_PARAMETERS)


@dataclass(frozen=True)
class TUSKConfig:
    """TUSK hyperparameters (Jin et al., NeurIPS 2022); defaults: Table 10's MNIST column."""

    # --- Keypoints (Table 10; A.1) ---
    num_keypoints: int = 9  # K, Table 10 "# Keypoints" (MNIST 9, CLEVR6 6, Tetrominoes 3)
    num_prototypes: int = 10  # M, Table 10 "# Prototypes" (MNIST 10, CLEVR6 48, Tetrominoes 114)
    kernel_size: int = 13  # B, Table 10 "Softmax Kernel Size": the NMS and soft-argmax window (13, 21, 27)
    softmax_temperature: float = 0.2  # τ of eq. 5: a hyperparameter without a value in the seed; original: 0.2
    border: Literal["exclude", "zeros"] = "exclude"  # soft-argmax at the border: seed eq. 5; original "zeros"
    descriptor_sampling: Literal["bilinear", "truncate"] = "bilinear"  # Table 9; original "truncate"

    # --- Architecture (Table 9; the original's models/unet.py and network.py where Table 9 is silent) ---
    feature_channels: int = 32  # F, the feature map's channels = descriptor size d (Table 9: 32)
    base_width: int = 32  # the encoder's and decoder's U-Net first width (original: latent_channel 32)
    groups: int = 32  # GroupNorm groups of both U-Nets (original: 32); must divide base_width
    align_corners: bool = False  # U-Net upsampling: Keras' half-pixel bilinear; original True (PyTorch)
    heatmap_affine: bool = True  # learned scale and shift of the heatmap's GroupNorm(1) (original: gnorm_affine)
    splat_variance: float = 0.05  # px², the Gaussian splat's variance (original: gau_var 0.05; not in the seed)
    alpha_blending: bool = False  # decoder: Table 9's alpha-blending branch (CLEVR, Tetrominoes) or not (MNIST)
    initialization: Literal["keras", "pytorch"] = "keras"  # conv weights: the seed is silent; original "pytorch"
    # (torch's nn.Conv2d default, kernels and biases U(±1/√fan_in)); Keras': Glorot kernels, zero biases
    assignment_temperature: float = 20.0  # softmin(20 · dist) soft assignment (original, hard-coded; not in seed)

    # --- Feature-step losses (Table 10, all datasets but CelebA) ---
    reconstruction_weight: float = 1.0  # "Coef. Recon. Loss" (MSE, the mean over pixels and channels)
    cluster_weight: float = 0.01  # "Coef. Cluster Loss": −mean log p_soft[nearest prototype] (original kmean_loss)
    equivariance_heatmap_weight: float = 0.01  # "Coef. Eqv. Heatmap Loss"
    equivariance_features_weight: float = 100.0  # "Coef. Eqv. Featuremap Loss"
    equivariance_heatmap_map: Literal["heatmap", "scoremap"] = "heatmap"  # seed: H (Table 9's "heatmap");
    # original: S = σ(H) ("scoremap", train.py compares network_diag['score_map'])

    # --- Image pairs of the equivariance losses (original: datasets/dataset_utils.py gen_image_pairs) ---
    tps_warp: tuple[float, float, float, float, float] = _tps("mnist")  # the dataset's second warp (datasets/mnist.py)
    tps_first_warp: tuple[float, float, float, float, float] = _tps("first_warp")  # gen_image_pairs' fixed first warp
    pair_padding: Literal["constant", "reflect"] = PAIR_PADDING["mnist"][0]  # canvas padding before the warps
    pair_padding_value: float = PAIR_PADDING["mnist"][1]  # the constant of "constant" padding (MNIST: 0)
    tps_align_corners: bool = False  # TPS grid placement: one convention (tps.py); original True (its mix)

    # --- Prototype step (Table 7; A.2; Table 10; original train.py and models/loss.py) ---
    inner_prototype_steps: int = 5  # prototype updates per training step (original num_opt_sw: 5 MNIST, 8 others)
    prototype_learning_rate: float = 0.1  # Table 10 "Prototype Learning Rate"
    prototype_beta_1: float = 0.5  # the prototypes' Adam (original: betas (0.5, 0.999))
    prototype_beta_2: float = 0.999
    prototype_epsilon: float = 1e-8  # the prototypes' Adam ε (original: torch's default 1e-8)
    gmm_variance: float = 4e-4  # Σ of eq. 6, Table 10 "Σ in GMM" (original: noise std 1/50)
    num_projections: int = 100  # P, sliced Wasserstein directions (original: 100; not in the seed)
    mixing_exploration: float = 0.0  # added to every α_m: eq. 7 has none; original 0.01
    mixing_variance_about: Literal["mean", "prototype"] = "mean"  # σ_m about D_m's mean (seed); original "prototype"
    normalize_samples: bool = False  # project GMM samples onto the unit sphere: eq. 6 does not; original True
    sample_allocation: Literal["systematic", "original"] = "systematic"  # Table 7's π_m × N samples per prototype,
    # rounded without bias (seed); original: floor(π_m N), the remainder to the last prototype (get_sampled_prototypes)
    prototype_descriptors: Literal["updated", "feature_step"] = "updated"  # descriptors of the prototype step:
    # "updated" = the encoder after this step's update (original: a new forward pass); "feature_step" = those of
    # the feature step's forward pass (one encoder pass fewer; Table 7 is silent on which)

    def __post_init__(self):
        for name in ("num_keypoints", "num_prototypes", "feature_channels", "base_width", "groups",
                     "num_projections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1 \
                or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive integer (a window centred at the peak); got "
                             f"{self.kernel_size!r}")
        if self.base_width % self.groups:
            raise ValueError(f"groups must divide base_width (GroupNorm); got groups={self.groups}, "
                             f"base_width={self.base_width}")
        if isinstance(self.inner_prototype_steps, bool) or not isinstance(self.inner_prototype_steps, int) \
                or self.inner_prototype_steps < 0:
            raise ValueError(f"inner_prototype_steps must be an integer >= 0 (0: fixed prototypes); got "
                             f"{self.inner_prototype_steps!r}")
        for name in ("softmax_temperature", "splat_variance", "assignment_temperature", "prototype_learning_rate",
                     "gmm_variance", "prototype_epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)!r}")
        for name in ("reconstruction_weight", "cluster_weight", "equivariance_heatmap_weight",
                     "equivariance_features_weight", "mixing_exploration"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        for name in ("prototype_beta_1", "prototype_beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)!r}")
        for name in ("tps_warp", "tps_first_warp"):
            value = getattr(self, name)
            if len(value) != len(TPS_PARAMETERS):
                raise ValueError(f"{name} must hold {len(TPS_PARAMETERS)} numbers {TPS_PARAMETERS}; got {value!r}")
            if not value[0] > 0 or any(not v >= 0 for v in value[1:]):
                raise ValueError(f"{name} = {value!r}: scale must be > 0 and the variations >= 0 {TPS_PARAMETERS}")
            object.__setattr__(self, name, tuple(float(v) for v in value))  # as a TOML / JSON round trip gives it
        check_choices(self)

    @classmethod
    def preset(cls, name: str, **changes) -> "TUSKConfig":
        """The Table 10 preset `name` ("mnist", "clevr6", "tetrominoes"), with `changes` applied."""
        if name not in TUSK_PRESETS:
            raise ValueError(f"unknown TUSK preset {name!r}; the presets are {sorted(TUSK_PRESETS)}")
        return dataclasses.replace(TUSK_PRESETS[name], **changes)


# Table 10's columns for the object datasets (CLEVR6 and Tetrominoes differ from MNIST in K, M, B, the decoder,
# the TPS preset and padding of their pairs (original datasets/multi_object.py), and the inner prototype steps).
_MULTI_OBJECT = dict(alpha_blending=True, tps_warp=_tps("multi_object"), pair_padding=PAIR_PADDING["multi_object"][0],
                     pair_padding_value=PAIR_PADDING["multi_object"][1], inner_prototype_steps=8)
TUSK_PRESETS = types.MappingProxyType({
    "mnist": TUSKConfig(),
    "clevr6": TUSKConfig(num_keypoints=6, num_prototypes=48, kernel_size=21, **_MULTI_OBJECT),
    "tetrominoes": TUSKConfig(num_keypoints=3, num_prototypes=114, kernel_size=27, **_MULTI_OBJECT),
})

# TUSK's optimisation per preset: Adam at 1e-3 for the encoder and decoder (Table 10; the prototypes' own Adam is
# in TUSKConfig), batch sizes from Table 10: MNIST 40, CLEVR6 64, Tetrominoes 76 (the seed, the default).
#   * The batch counts *pairs*: each training example becomes two warped images inside the step (TUSK.train_step),
#     so the forward pass sees 2 × batch_size images, as in the original, whose dataset items are pairs.
#   * The original's configs say 120 (MNIST), 32 (CLEVR), 38 (Tetrominoes) per GPU; CLEVR and Tetrominoes ran on
#     two GPUs (A.7), i.e. 64 and 76 in all, Table 10's values; MNIST ran on one GPU with 120, not Table 10's 40
#     (unexplained). Its train.py also multiplies both learning rates by the number of GPUs (2e-3 and
#     0.2 on two GPUs). Option: `dataclasses.replace(TUSK_TRAINING["mnist"], batch_size=120)`.
#   * Run length: not in the seed; the original configures 1000 epochs and keeps its latest weights (no
#     validation-based selection). Steps here are 1000 epochs at the Table 10 batch of the original's training
#     split: Tetrominoes 50,000 images (the first 60,000 records less its 10,000 test) -> 660,000; CLEVR6 about
#     25,000 (the ≤ 6-object records among the first 70,000, about half, less 10,000; an estimate) -> 390,000;
#     MNIST-Hard's training split size is not in either repository: 10,000 images (the size of its evaluated
#     test part) assumed -> 250,000. An evaluation every 5,000 steps picks the kept weights (fit_model).
TUSK_TRAINING = types.MappingProxyType({
    "mnist": TrainConfig(steps=250_000, eval_every=5_000, batch_size=40, learning_rate=1e-3),
    "clevr6": TrainConfig(steps=390_000, eval_every=5_000, batch_size=64, learning_rate=1e-3),
    "tetrominoes": TrainConfig(steps=660_000, eval_every=5_000, batch_size=76, learning_rate=1e-3),
})
