"""SILOTConfig (the model) and SILOT_TRAINING (its optimisation): every SILOT hyperparameter, defaults from the
supplement's Tables 1 and 2 and section E (Crawford & Pineau, "Exploiting Spatial Invariance for Scalable
Unsupervised Object Tracking", AAAI 2020).

Where the supplement is silent the default follows the original code (e2crawfo/silot, branch aaai_2020, with
e2crawfo/auto_yolo and e2crawfo/dps, branches aaai_2020; marked "original code"); where the two disagree the
supplement is the default and the code's choice an option (docs/silot.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tfobj.config import check_choices
from tfobj.training.train_config import TrainConfig

__all__ = ["SILOTConfig", "SILOT_TRAINING"]


@dataclass(frozen=True)
class SILOTConfig:
    """SILOT hyperparameters."""

    # --- Objects and boxes (Table 1) ---
    num_objects: int = 16  # K, propagated / selected objects
    num_what: int = 64  # A, dimension of the what attribute
    anchor_size: tuple[float, float] = (48.0, 48.0)  # (a_h, a_w) pixels
    cell_size: int = 12  # (c_h, c_w), fixed by the backbone's strides 3, 2, 2
    box_bounds: tuple[float, float] = (-0.5, 1.5)  # (b_min, b_max): discovered centre within its cell, in cells
    object_size: tuple[int, int] = (14, 14)  # (H_obj, W_obj), rendered sprites and glimpses
    hidden_size: int = 128  # p_rnn: GRU(128) (Table 2)

    # --- Discovery (E.1 backbone; Table 2) ---
    backbone_filters: int = 128  # every conv of d_bu: (k4, s3), (k4, s2), (k4, s2), then three 1x1
    backbone_features: int = 128  # the last 1x1 conv (no non-linearity)
    discovery_dropout: float = 0.5  # p_dd: probability of dropping a frame's discovered objects in training
    passthrough_features: int = 64  # features each discovery head passes to the next (original code:
    # n_passthrough_features = 64, e2crawfo/silot aaai_2020 run.py)

    # --- Spatial attention (B; Table 1) ---
    attention_std: float = 0.1  # σ of the Gaussian kernel, in anchor-normalised units (original code: pixels / 48)
    propagation_attention: bool = True  # B.2 on (the seed); original code: off for Scattered MNIST
    attention_features: int = 64  # D, the output of d_spatial, p_id and p_spatial (original code: n_hidden = 64)
    # Weight each object's attention term by its z_pres, so an absent object (z_pres = 0: the empty slots of the
    # first frame, objects that faded) influences no other. Not in B's formulas nor in the original code, whose
    # empty slots sit at (0, 0) and still add their term; False = B's sums as written (docs/silot.md).
    attention_presence_weighted: bool = True

    # --- Component networks (Table 2: FC([N, N]) = two hidden ReLU layers and a linear output) ---
    discovery_spatial_hidden: tuple[int, int] = (64, 64)  # d_spatial
    discovery_fuse_hidden: tuple[int, int] = (100, 100)  # d_fuse
    discovery_where_hidden: tuple[int, int] = (100, 100)  # d_where
    discovery_glimpse_hidden: tuple[int, int] = (256, 128)  # d_obj
    discovery_what_hidden: tuple[int, int] = (100, 100)  # d_what
    discovery_depth_hidden: tuple[int, int] = (100, 100)  # d_depth
    discovery_pres_hidden: tuple[int, int] = (100, 100)  # d_pres
    propagation_object_hidden: tuple[int, int] = (64, 64)  # p_id
    propagation_spatial_hidden: tuple[int, int] = (64, 64)  # p_spatial
    propagation_glimpse_where_hidden: tuple[int, int] = (100, 100)  # p_glimpse
    propagation_first_glimpse_hidden: tuple[int, int] = (256, 128)  # p_bu
    propagation_where_hidden: tuple[int, int] = (100, 100)  # p_where
    propagation_second_glimpse_hidden: tuple[int, int] = (256, 128)  # p_obj
    propagation_what_hidden: tuple[int, int] = (100, 100)  # p_what
    propagation_depth_hidden: tuple[int, int] = (100, 100)  # p_depth
    propagation_pres_hidden: tuple[int, int] = (100, 100)  # p_pres
    decoder_hidden: tuple[int, int] = (128, 256)  # r_obj

    # --- Priors (Table 1): discovery ---
    prior_hw: tuple[float, float] = (-2.2, 0.5)  # (mu, sigma) of z^h, z^w
    prior_yx: tuple[float, float] = (0.0, 1.0)
    prior_what: tuple[float, float] = (0.0, 1.0)
    prior_depth: tuple[float, float] = (0.0, 1.0)
    # --- Priors (Table 1): propagation (on the updates) ---
    propagation_prior_hw: tuple[float, float] = (0.0, 0.3)  # original code: N(-2.197, 0.5) on the absolute logit
    propagation_prior_yx: tuple[float, float] = (0.0, 0.3)
    propagation_prior_what: tuple[float, float] = (0.0, 0.4)
    propagation_prior_depth: tuple[float, float] = (0.0, 1.0)
    # Where the h/w prior applies: "update" (Table 1: on z̃^h, z̃^w) or "absolute" (original code: on the new
    # size's logit, with propagation_prior_hw = (-2.197, 0.5); e2crawfo/silot aaai_2020 propagation.py).
    propagation_size_prior: Literal["update", "absolute"] = "update"
    # The what update: "gated" (A.1 defers to the code: SQAIR's gated mix of the old value, a glimpse-only
    # prediction and a temporal one; original code use_sqair_prop=True) or "additive" (o^what + z̃^what with one
    # head p_what, the original's ObjectPropagationLayer).
    what_update: Literal["gated", "additive"] = "gated"

    # --- z_pres prior (E.1: "a very similar approach to SPAIR"; constants as SPAIR's original code) ---
    count_prior_start: float = 1e6
    count_prior_end: float = 0.0125
    count_prior_decay_rate: float = 0.1
    count_prior_decay_steps: int = 1000
    concrete_temperature: float = 1.0
    training_wheels_steps: int = 1000  # E.1: no gradient through where, depth, pres for the first 1000 steps

    # --- Rendering (A.2; Table 1) ---
    appearance_offset_scale: tuple[float, float] = (0.0, 2.0)  # (mu^beta, sigma^beta): beta = sigm(mu + sigma·logit)
    transparency_offset_scale: tuple[float, float] = (5.0, 0.1)  # (mu^xi, sigma^xi)
    render_temperature: float = 0.25  # lambda
    renderer: Literal["seed", "original"] = "seed"  # seed: softmax e^{gamma/lambda}; original: linear importance
    # (original code: max(alpha·z_pres·depth / lambda, 0.01), SPAIR's compositing; needs lambda = 0.25, the
    # factor 4 of tfobj.render_sprites' "original" importance)
    background: Literal["black", "learn_solid"] = "black"  # original code: black for Scattered MNIST and Shapes;
    # "learn_solid": a learned colour sigmoid(10·logits), as SPAIR

    # --- The model's choices where the supplement is silent (docs/silot.md) ---
    learned_prior: bool = True  # section 3.8, G.1: train the learned propagation prior beside the static one
    # (original code: learn_prior=True); its KL terms are added to the loss
    # q of z_pres in the count-prior KL: "presence" (the probability that each object is present: o^pres_(t-1)·
    # sigm(logit) for a propagated object, 0 for a discovered one whose frame was dropped) or "original" (sigm(logit)
    # of the propagated factor and of every discovered object, dropped or not; auto_yolo aaai_2020 SequentialObjKL).
    pres_kl: Literal["presence", "original"] = "presence"
    # How the model iterates over frames when T is static: "python" (unrolled: one graph copy per frame) or
    # "while" (a tf.while_loop, as always when T is unknown, e.g. the exported SavedModel); docs/silot.md.
    frame_loop: Literal["python", "while"] = "python"

    # --- Initial output biases (tfobj's options for short runs; the defaults are Keras' zero biases, as the
    # original code's). They change where training starts, not the model.
    # The discovered boxes' initial size in pixels: the bias of d_where's h, w logits set to logit(size / anchor).
    # None: logit 0, half the anchor (24 px), two to three times a digit, which a short run does not undo.
    discovery_size_init: float | None = None
    # The initial bias of p_pres's logit. 0: a propagated object's Concrete factor is Uniform(0, 1) at first (it
    # loses half its presence per frame on average); 3: kept with probability sigm(3) = 0.95 per frame.
    propagation_pres_init: float = 0.0
    # True: p_where's standard deviations start at the propagation prior's (Table 1: 0.3), so a carried object's
    # where KL is near 0 at first. False (Keras' zero bias): they start at 2·sigm(0) = 1, a KL of about 15 nats per
    # object and frame that the training wheels keep for their 1,000 steps.
    propagation_where_std_at_prior: bool = False
    # A float s: the posterior propagation starts near the identity. Its where and what nets' last layers start with
    # zero weights, so their outputs are their biases: where and what updates of mean 0 and standard deviation s,
    # and the what gates' logits at +4 (f, i, t = sigm(5) ≈ 0.993: the previous what kept, 0.7 % of the new means). At
    # Keras' initial weights an untrained cell moves an object by about an anchor and redraws its what with std 1
    # in each frame; the reconstruction of later frames then pushes every presence down, through the propagated
    # z_pres = o^pres·factor also frame 0's (docs/silot.md, "Results"). None: Keras' initial weights.
    propagation_identity_init: float | None = None

    # --- Curriculum and early stopping (E.1; Table 1) ---
    curriculum_start_frames: int = 2  # training starts on the first 2 frames of each video ...
    curriculum_step_frames: int = 2  # ... and adds 2 frames ...
    curriculum_steps: int = 40000  # ... every N_curric steps, until the full video
    curriculum_max_frames: int | None = None  # None: the curriculum ends at the full video (E.1); n: at n frames
    # (tfobj's option, for short runs: training never sees more than n frames; evaluation still sees whole videos)
    patience: int = 30000  # steps without a better validation score before an early stop
    stop_lr_divisor: float = 3.0  # on an early stop: back to the best weights, learning rate / 3
    max_stops: int = 3  # training ends at the third early stop

    def __post_init__(self):
        if self.cell_size != 12:
            raise ValueError(f"cell_size must be 12 (fixed by the backbone's strides 3, 2, 2); got {self.cell_size}")
        if not self.box_bounds[0] < self.box_bounds[1]:
            raise ValueError(f"box_bounds must be (min, max) with min < max; got {self.box_bounds}")
        for name in ("num_objects", "num_what", "hidden_size", "backbone_filters", "backbone_features",
                     "passthrough_features", "attention_features",
                     "curriculum_start_frames", "curriculum_step_frames", "curriculum_steps", "patience", "max_stops"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        if not 0.0 <= self.discovery_dropout < 1.0:
            raise ValueError(f"discovery_dropout must be in [0, 1); got {self.discovery_dropout}")
        for name in ("attention_std", "render_temperature", "concrete_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        if self.curriculum_max_frames is not None and (isinstance(self.curriculum_max_frames, bool) or
                                                       not isinstance(self.curriculum_max_frames, int) or
                                                       self.curriculum_max_frames < self.curriculum_start_frames):
            raise ValueError("curriculum_max_frames must be None (the full video) or an integer >= "
                             f"curriculum_start_frames = {self.curriculum_start_frames}; got {self.curriculum_max_frames!r}")
        if self.discovery_size_init is not None and not 0.0 < self.discovery_size_init < min(self.anchor_size):
            raise ValueError("discovery_size_init must be None or a size in pixels in (0, anchor) = (0, "
                             f"{min(self.anchor_size)}); got {self.discovery_size_init}")
        if self.propagation_identity_init is not None:
            if not 0.0 < self.propagation_identity_init < 2.0:
                raise ValueError("propagation_identity_init must be None or a standard deviation in (0, 2) (the range "
                                 f"of 2·sigm); got {self.propagation_identity_init}")
            if self.propagation_where_std_at_prior:
                raise ValueError("propagation_identity_init sets p_where's standard deviations itself; it cannot be "
                                 "combined with propagation_where_std_at_prior = True")
        if not self.stop_lr_divisor >= 1.0:
            raise ValueError(f"stop_lr_divisor must be >= 1; got {self.stop_lr_divisor}")
        check_choices(self)
        if self.renderer == "original" and self.render_temperature != 0.25:
            raise ValueError("renderer 'original' is tfobj.render_sprites' original importance, whose depth factor 4 "
                             f"is 1 / lambda for lambda = 0.25 only; got render_temperature {self.render_temperature}")
        if self.appearance_offset_scale[0] != 0.0:
            raise ValueError("appearance_offset_scale: the object decoder (SPAIR's ObjectDecoder) has no appearance "
                             f"offset; mu^beta must be 0 (Table 1); got {self.appearance_offset_scale}")


# SILOT's optimisation (Table 1: Adam 1e-4, batch 16, gradient norm clipped at 10) and evaluation every 5,000
# steps (original code: eval_step). The run's length is set by the curriculum and the early stops; `steps` is
# only an upper bound (three curriculum stages plus three patience periods and more).
SILOT_TRAINING = TrainConfig(steps=500000, eval_every=5000, batch_size=16, learning_rate=1e-4, global_clipnorm=10.0)
