"""SPAIRConfig (the model) and SPAIR_TRAINING (its optimisation): every SPAIR hyperparameter, defaults from
the supplement's Table 1 and D.2.

Where the supplement is silent the default follows the original `auto_yolo@aaai_2019` code (marked
"original code"); where the two disagree the supplement is the default and the code's choice is an
option (see docs/spair.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tfobj.config import check_choices
from tfobj.training.train_config import TrainConfig


@dataclass(frozen=True)
class SPAIRConfig:
    """SPAIR hyperparameters (Crawford & Pineau, AAAI 2019)."""

    # --- Grid and boxes (supplement Table 1) ---
    cell_size: int = 12  # (c_h, c_w), pixels; fixed by the backbone's strides 2·2·3
    anchor_size: tuple[float, float] = (48.0, 48.0)  # (a_h, a_w), pixels: z_h, z_w scale this
    box_bounds: tuple[float, float] = (-0.5, 1.5)  # (b_min, b_max): centre offset within its cell, in cells
    object_size: tuple[int, int] = (14, 14)  # (H_obj, W_obj): rendered sprites and glimpses
    num_what: int = 50  # A, dimension of z_what

    # --- Backbone (supplement D.2) ---
    backbone_filters: int = 128
    backbone_features: int = 100  # the final 1x1 conv's filters

    # --- Per-cell networks (original code: yolo_air.py, networks) ---
    cell_hidden: tuple[int, int] = (100, 100)  # box / depth / pres MLPs
    passthrough_features: int = 100  # features the box and depth nets pass to the next head
    encoder_hidden: tuple[int, int] = (512, 256)  # object encoder MLP
    decoder_hidden: tuple[int, int] = (256, 512)  # object decoder MLP
    lateral_context: bool = True  # condition each cell on its 4 processed neighbours (n_lookback = 1)

    # --- Priors (supplement Table 1) ---
    prior_yx: tuple[float, float] = (0.0, 1.0)  # (mu, sigma) of z_y, z_x (logit space)
    prior_hw: tuple[float, float] = (-2.2, 0.5)  # (mu, sigma) of z_h, z_w; original code: log(0.1/0.9) = -2.197
    prior_depth: tuple[float, float] = (0.0, 1.0)
    prior_what: tuple[float, float] = (0.0, 1.0)

    # --- Decoder output scaling (original code) ---
    appearance_logit_scale: float = 2.0  # appearance = sigmoid(2 · logit)
    alpha_logit_scale: float = 0.1  # alpha = sigmoid(0.1 · logit + 5): alpha starts near 1
    alpha_logit_bias: float = 5.0

    # --- z_pres (supplement A/B, D.2; schedule constants from the original code) ---
    concrete_temperature: float = 1.0  # original code: obj_concrete_temp
    count_prior_start: float = 1e6  # v(0); s = 1 - sigmoid(log v): near 0 early, no penalty on many objects
    count_prior_end: float = 0.0125  # v(inf); s -> 0.9877, the supplement's "≈ 0.99"
    count_prior_decay_rate: float = 0.1
    count_prior_decay_steps: int = 1000  # v(t) = (start - end) · rate^(t / steps) + end
    training_wheels_steps: int = 1000  # no gradient into where/depth/pres for these many steps (original code)

    # --- Rendering (supplement C; importance "original": e2crawfo/auto_yolo aaai_2019, yolo_air.py) ---
    importance: Literal["seed", "original"] = "seed"  # seed: α·z_pres·σ(−z_depth); original: max(α·z_pres·4σ(z), 0.01)
    background: Literal["black", "learn_solid"] = "black"  # original: "none" (zeros) for the comparison runs

    def __post_init__(self):
        if self.cell_size != 12:
            raise ValueError(f"cell_size must be 12 (fixed by the backbone's strides 2, 2, 3); got {self.cell_size}")
        if not self.box_bounds[0] < self.box_bounds[1]:
            raise ValueError(f"box_bounds must be (min, max) with min < max; got {self.box_bounds}")
        for name in ("num_what", "backbone_filters", "backbone_features", "passthrough_features"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        check_choices(self)
        if self.concrete_temperature <= 0:
            raise ValueError(f"concrete_temperature must be > 0; got {self.concrete_temperature}")


# SPAIR's optimisation (supplement Table 1: Adam 1e-4, batch 32, gradient norm clipped at 1.0) and run length
# (original code: up to 300k steps, evaluation every 1,000). The original code also added gradient noise
# (e2crawfo/dps aaai_2019, build_gradient_train_op): `gradient_noise=1e-3` turns it on (decay 0.1 per 1,000 steps, the TrainConfig default).
SPAIR_TRAINING = TrainConfig(steps=300000, eval_every=1000, batch_size=32, learning_rate=1e-4, global_clipnorm=1.0)
