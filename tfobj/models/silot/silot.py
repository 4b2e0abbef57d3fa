"""SILOT(keras.Model): Scalable, Instance-Level Object Tracking (Crawford & Pineau, AAAI 2020) over videos."""
from __future__ import annotations

import dataclasses
import weakref

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfobj.config import from_dict
from tfobj.models.baselines.conncomp import Track
from tfobj.models.inputs import check_not_empty, checked_videos
from tfobj.models.noise_state import SavesNoiseState
from tfobj.models.silot.silot_cells import DiscoveryModule, PropagationCell
from tfobj.models.silot.silot_config import SILOTConfig
from tfobj.models.silot.silot_math import logit, normal_kl, propagation_kl, select_objects, static_propagation_prior
from tfobj.models.spair.count_prior import count_prior_kl
from tfobj.models.spair.spair_layers import LOGIT_CLIP, ObjectDecoder, positive_std_inverse
from tfobj.rendering.render_sprites import render_sprites, render_sprites_softmax
from tfobj.training.curriculum import VideoCurriculum
from tfobj.training.evaluation import EvaluatesGroundTruth, tracking_scores
from tfobj.training.schedules import PresenceAnnealing
from tfobj.training.strategies import loss_for_replica

__all__ = ["SILOT", "SILOTTrack", "LOSS_KEYS", "SERVING_ALIASES", "SERVING_KEYS"]

tfd = tfp.distributions

# The negative ELBO's terms, each logged as a metric (docs/silot.md, "The loss"). Discovery's terms keep SPAIR's
# names; "prop" terms are against Table 1's static propagation priors, "prior" terms against the learned prior.
LOSS_KEYS = ("loss", "nll", "kl/z_where", "kl/z_what", "kl/z_depth", "kl/z_pres",
             "kl/prop_where", "kl/prop_what", "kl/prop_depth",
             "kl/prior_where", "kl/prior_what", "kl/prior_depth", "kl/prior_pres")
# What the SavedModel's serving_default returns (docs/silot.md, Export): the shared output keys, and the SILOT
# issue's names for two of them, "presence" (= z_pres) and "track_ids" (= ids).
SERVING_ALIASES = {"presence": "z_pres", "track_ids": "ids"}
SERVING_KEYS = ("boxes", "ids", "z_pres", "scores", "num_objects", "reconstruction", *SERVING_ALIASES)

_CELL_KEYS = ("position", "size", "what", "depth", "pres", "hidden")  # a PropagationCell's object set
_DISCOVERY_KEYS = ("where_mean", "where_std", "what_mean", "what_std", "depth_mean", "depth_std", "pres_logits")
_PROPAGATION_KEYS = ("where_mean", "where_std", "size_logit_mean", "what_mean", "what_std", "depth_mean",
                     "depth_std", "pres_logits", "pres_pre_sigmoid")
_PRIOR_KEYS = ("where_mean", "where_std", "what_mean", "what_std", "depth_mean", "depth_std", "pres_logits")


@dataclasses.dataclass(frozen=True)
class SILOTTrack(Track):
    """One video's tracks (`ConnCompTracker`'s `Track`, scored by `tfobj.metrics.clear_mot_many`), with scores:
    per frame the present objects' ids `[n_t]` int32, boxes `[n_t, 4]` and presence probabilities `[n_t]`."""

    scores: list


_TRACKING_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="tfobj")
class SILOT(EvaluatesGroundTruth, VideoCurriculum, PresenceAnnealing, SavesNoiseState, keras.Model):
    """SILOT: SPAIR's discovery on every frame, propagation of each object to the next frame, selection of the K
    best objects, and a softmax renderer; a VAE over videos whose latent is a set of tracked objects.

    Per frame t (section 3, supplement A, B, E.1):

        propagated = PropagationCell(frame_t, objects_(t−1))          posterior (A.1, B.2); none at t = 0
        prior      = PropagationCell(posterior=False)(objects_(t−1))    the learned prior (3.8, G.1), for its KL
        discovered = DiscoveryModule(frame_t, propagated)              one object per 12-px cell (3.3, B.1);
                     in training, for t > 0, all of a video's discovered objects are dropped with probability p_dd
        objects_t  = the K objects of highest z_pres among [propagated, discovered] (`select_objects`): a
                     propagated object keeps its slot and identity; a discovered one takes a freed slot and, if
                     present, a new identity
        frame_t ≈  render_sprites_softmax(background, r_obj(what), boxes, z_pres, depth, λ)   (A.2)

    The frames are a Python loop when T is static (every training batch; the unrolled graph lets TensorFlow fuse
    the frames' small ops; tracing grows with T) and a `tf.while_loop` when T is unknown (the exported SavedModel)
    or `config.frame_loop == "while"`, both over the same per-frame function (docs/silot.md, "The frame loop").

    The loss is the negative ELBO summed over frames: Bernoulli NLL, Normal KLs of discovered objects (Table 1,
    weighted by z_pres), of propagated objects against Table 1's propagation priors and against the learned prior,
    the Concrete KL of the propagated presence against the learned prior, and SPAIR's count-prior KL over
    [propagated, discovered] z_pres per frame (E.1). The annealed values (count prior s, training wheels, Concrete
    temperature) follow the optimizer step in every training step (`tfobj.training.schedules.Annealing`), and so
    does the curriculum (E.1): a training step sees the first `curriculum_frames` frames of each video
    (`tfobj.training.curriculum.VideoCurriculum`; 2, then 2 more every `config.curriculum_steps` steps).
    Differences from the supplement and the original code: docs/silot.md.

    Args:
        config: `SILOTConfig` (or a dict of its fields). Defaults are the supplement's Tables 1 and 2.
        seed: seed of the model's noise (`keras.random.SeedGenerator`).
        **kwargs: passed to `keras.Model` (`name`, `dtype` policy).

    Call arguments:
        videos: float `[B, T, H, W, 3]` in [0, 1], H and W multiples of 12 with at least K cells
            ((H/12)·(W/12) ≥ K); or a dict with key "videos".
        training: Keras' flag: discovery dropout on, and the default of `sample`.
        sample: draw the latents (True) or use the posterior mode (False: noise zero, z_pres hard).
        prior_from_frame: None, or the first frame t from which the learned prior propagates the objects and
            discovery is off (supplement G.1: 3 of 8 frames). Needs `config.learned_prior`.

    Returns:
        dict of float32 tensors but "ids", "num_objects" (int32) and "is_new" (bool):
        "reconstruction" `[B, T, H, W, 3]`; per slot k < K: "boxes" `[B, T, K, 4]` normalised (y_min, x_min,
        y_max, x_max), "z_pres" `[B, T, K]` (relaxed when sampling in training, else 0/1), "scores" `[B, T, K]`
        (probability of presence), "ids" `[B, T, K]` (the object's identity, 1, 2, ... per video, kept while it is
        propagated; 0 where z_pres ≤ 0.5), "is_new" `[B, T, K]` (the slot took a discovered object), "num_objects"
        `[B, T]` = Σ_k 1[z_pres > 0.5], "z_what" `[B, T, K, A]`, "depth" `[B, T, K]` in (0, 1), "appearance"
        `[B, T, K, h, w, 3]`, "alpha" `[B, T, K, h, w, 1]`; and the loss's inputs: "disc_*" `[B, T, N, ·]` for the
        N = (H/12)(W/12) discovered objects (posterior parameters, "disc_pres" after dropout, "disc_mask" `[B, T]`),
        "prop_*" and "prior_*" `[B, T, K, ·]` for the propagated objects (placeholders at t = 0: means 0,
        standard deviations 1, presence 0, logits −10).

    For tracks call `model.predict_objects(videos)` (figure: `tfobj.plot_silot_objects`); for TF Serving `tfobj.export_saved_model(model, path)`.

    References:
        Crawford & Pineau, "Exploiting Spatial Invariance for Scalable Unsupervised Object Tracking", AAAI 2020,
        and its supplement (A–G); the original code, e2crawfo/silot (branch aaai_2020), silot/silot_model.py.
    """

    def __init__(self, config: SILOTConfig | dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = from_dict(SILOTConfig, config)  # strict: unknown keys and wrong types are errors
        self.config = config or SILOTConfig()
        self.seed = seed
        c = self.config
        policy = self.dtype_policy
        # === Layers ===
        self.discovery = DiscoveryModule(
            num_what=c.num_what, backbone_filters=c.backbone_filters, backbone_features=c.backbone_features,
            spatial_hidden=c.discovery_spatial_hidden, attention_features=c.attention_features,
            attention_std=c.attention_std, presence_weighted=c.attention_presence_weighted,
            fuse_hidden=c.discovery_fuse_hidden, cell_hidden=c.discovery_where_hidden,
            passthrough_features=c.passthrough_features, glimpse_hidden=c.discovery_glimpse_hidden,
            what_hidden=c.discovery_what_hidden, hidden_size=c.hidden_size, object_size=c.object_size,
            cell_size=c.cell_size, anchor_size=c.anchor_size, box_bounds=c.box_bounds, dtype=policy,
            name="discovery")
        propagation = dict(
            num_what=c.num_what, hidden_size=c.hidden_size, attention_features=c.attention_features,
            object_hidden=c.propagation_object_hidden, spatial_hidden=c.propagation_spatial_hidden,
            attention=c.propagation_attention, attention_std=c.attention_std,
            presence_weighted=c.attention_presence_weighted, glimpse_where_hidden=c.propagation_glimpse_where_hidden,
            first_glimpse_hidden=c.propagation_first_glimpse_hidden, where_hidden=c.propagation_where_hidden,
            second_glimpse_hidden=c.propagation_second_glimpse_hidden, what_hidden=c.propagation_what_hidden,
            depth_hidden=c.propagation_depth_hidden, pres_hidden=c.propagation_pres_hidden,
            what_update=c.what_update, object_size=c.object_size, anchor_size=c.anchor_size, dtype=policy)
        self.propagation = PropagationCell(**propagation, posterior=True, name="propagation")
        if c.learned_prior:
            self.prior_propagation = PropagationCell(**propagation, posterior=False, name="prior_propagation")
        mu_xi, sigma_xi = c.transparency_offset_scale
        # r_obj: beta = sigm(sigma^beta·logit), xi = sigm(mu^xi + sigma^xi·logit) (A.2)
        self.object_decoder = ObjectDecoder(
            decoder_hidden=c.decoder_hidden, object_size=c.object_size,
            appearance_logit_scale=c.appearance_offset_scale[1], alpha_logit_scale=sigma_xi, alpha_logit_bias=mu_xi,
            dtype=policy, name="object_decoder")
        if c.background == "learn_solid":
            self.background_logits = self.add_weight(name="background_logits", shape=(3,), initializer="zeros")
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # === Annealed state: assigned from the optimizer step at the start of every training step ===
        self.create_presence_schedules()  # count_prior_s, temperature, wheels
        self.create_curriculum_schedule()  # curriculum_frames: training steps see the first frames only (E.1)
        # === Metrics: one Mean per ELBO term ===
        self.trackers = {key: keras.metrics.Mean(name=key) for key in LOSS_KEYS}
        self.trackers["num_objects"] = keras.metrics.Mean(name="num_objects")
        # Where the objects come from (diagnostics): present objects in frame 0 (all discovered), and present objects
        # discovered in each later frame (new ids; the rest are propagated).
        self.trackers["num_objects_first"] = keras.metrics.Mean(name="num_objects_first")
        self.trackers["num_new_later"] = keras.metrics.Mean(name="num_new_later")

    # === Forward ===
    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["videos"]
        frame_shape = (None,) + tuple(input_shape)[2:]  # [B, H, W, 3]
        c = self.config
        self.discovery.build(frame_shape)
        self.propagation.build(frame_shape)
        if c.learned_prior:
            self.prior_propagation.build(frame_shape)
        self.object_decoder.build((None, None, c.num_what))
        self._initial_biases()
        self.built = True

    def _initial_biases(self):
        """The config's initial output biases (`discovery_size_init`, `propagation_pres_init`,
        `propagation_where_std_at_prior`); loaded weights replace them."""
        c = self.config
        if c.discovery_size_init is not None:
            where = self.discovery.cells.box_net.dense_layers[-1].bias  # [8 + P]: y, x, h, w means first
            size = [c.discovery_size_init / a for a in c.anchor_size]
            value = tf.tensor_scatter_nd_update(tf.cast(where, tf.float32), [[2], [3]], logit(tf.constant(size)))
            where.assign(tf.cast(value, where.dtype))
        if c.propagation_where_std_at_prior:  # positive_std(raw) equal to the prior's std
            where = self.propagation.where_net.dense_layers[-1].bias  # [8]: y, x, h, w means, then their raw stds
            stds = [c.propagation_prior_yx[1]] * 2 + [c.propagation_prior_hw[1]] * 2
            raw = tf.concat([tf.cast(where[:4], tf.float32), positive_std_inverse(stds)], 0)
            where.assign(tf.cast(raw, where.dtype))
        if c.propagation_identity_init is not None:  # near-identity: last layers' outputs = their biases
            raw_std = float(positive_std_inverse(c.propagation_identity_init))
            a = c.num_what
            nets = {self.propagation.where_net: [0.0] * 4 + [raw_std] * 4}  # y, x, h, w means; their stds
            if c.what_update == "gated":  # what_net: temporal mean, std, gates f, i, t; what_input_net: mean, std
                nets[self.propagation.what_net] = [0.0] * a + [raw_std] * a + [4.0] * (3 * a)
                nets[self.propagation.what_input_net] = [0.0] * a + [raw_std] * a
            else:
                nets[self.propagation.what_net] = [0.0] * a + [raw_std] * a
            for net, bias in nets.items():
                layer = net.dense_layers[-1]
                layer.kernel.assign(tf.zeros_like(layer.kernel))
                layer.bias.assign(tf.cast(tf.constant(bias), layer.bias.dtype))
        pres = self.propagation.pres_net.dense_layers[-1].bias  # [1]
        pres.assign(tf.fill(tf.shape(pres), tf.cast(c.propagation_pres_init, pres.dtype)))

    def _noise(self, batch, frames, cells, sample):
        """Standard noise for every frame: discovery `[B, T, N, ·]`, propagation and prior `[B, T, K, ·]`."""
        c = self.config
        groups = {"disc": cells, "prop": c.num_objects, "prior": c.num_objects}
        sizes = {"where": 4, "what": c.num_what, "depth": 1, "pres": 1}
        noise = {}
        for group, count in groups.items():
            for key, size in sizes.items():
                shape = tf.stack([batch, frames, count, size])
                if not sample:
                    noise[f"{group}_{key}"] = tf.zeros(shape)
                elif key == "pres":  # Logistic(0, 1) for the Concrete samples
                    u = keras.random.uniform(shape, minval=1e-6, maxval=1 - 1e-6, seed=self.seed_generator)
                    noise[f"{group}_{key}"] = tf.math.log(u) - tf.math.log1p(-u)
                else:
                    noise[f"{group}_{key}"] = keras.random.normal(shape, seed=self.seed_generator)
        return noise

    def _discovery_mask(self, batch, frames, training):
        """`[B, T]`: 0 where a frame's discovered objects are dropped (training, t > 0, probability p_dd)."""
        ones = tf.ones(tf.stack([batch, frames]))
        if not training or self.config.discovery_dropout == 0:
            return ones
        draws = keras.random.uniform(tf.stack([batch, frames]), seed=self.seed_generator)
        keep = draws >= self.config.discovery_dropout
        first = tf.range(frames)[None, :] == 0
        return tf.where(first, ones, tf.cast(keep, tf.float32))

    def _background(self, frame):
        if self.config.background == "black":
            return tf.zeros_like(frame)
        return tf.zeros_like(frame) + tf.sigmoid(10.0 * tf.cast(self.background_logits, tf.float32))

    def _empty_objects(self, batch):
        """K empty slots (z_pres = 0), the objects before the first frame, and their ids (0) and the next id (1)."""
        c = self.config
        sizes = dict(position=2, size=2, what=c.num_what, depth=1, pres=1, hidden=c.hidden_size)
        if c.learned_prior:
            sizes["prior_hidden"] = c.hidden_size
        state = {key: tf.zeros(tf.stack([batch, c.num_objects, size])) for key, size in sizes.items()}
        state["ids"] = tf.zeros(tf.stack([batch, c.num_objects]), tf.int32)
        state["next_id"] = tf.ones(tf.stack([batch]), tf.int32)
        return state

    def _frame(self, frame, previous, noise, mask, first: bool, use_prior, hard_pres):
        """One frame: propagate, discover, select, render. `frame` `[B, H, W, 3]`; `previous` the carried state
        (the object set of K slots, "ids", "next_id"); `noise` this frame's noise; `mask` `[B]`; `first` a Python
        bool; `use_prior` a bool (Python or tensor) or None. Returns (state, outputs of this frame)."""
        c = self.config
        K = c.num_objects
        controls = (hard_pres, self.temperature, self.wheels)
        batch = tf.shape(frame)[0]
        outputs = {}
        propagated = {key: previous[key] for key in _CELL_KEYS}
        if c.learned_prior:
            propagated["prior_hidden"] = previous["prior_hidden"]
        if first:  # nothing to propagate: the empty slots, with the loss's placeholders
            boxes_prop = tf.zeros(tf.stack([batch, K, 4]))
            prop_prob = tf.zeros(tf.stack([batch, K]))
            zeros = {key: tf.zeros_like(previous["pres"]) for key in ("pres", "previous_pres")}
            outputs.update({f"prop_{key}": value for key, value in zeros.items()})
            for prefix, keys in (("prop", _PROPAGATION_KEYS), ("prior", _PRIOR_KEYS if c.learned_prior else ())):
                for key in keys:
                    size = {"where": 4, "size": 2, "what": c.num_what}.get(key.split("_")[0], 1)
                    fill = 1.0 if key.endswith("std") else (-LOGIT_CLIP if "pres" in key else 0.0)
                    outputs[f"{prefix}_{key}"] = tf.ensure_shape(tf.fill(tf.stack([batch, K, size]), fill),
                                                                 [None, K, size])
        else:
            noise_of = lambda group: {key: noise[f"{group}_{key}"] for key in ("where", "what", "depth", "pres")}
            post = self.propagation(frame, {key: previous[key] for key in _CELL_KEYS}, noise_of("prop"), *controls)
            propagated = {key: post[key] for key in _CELL_KEYS}
            boxes_prop = post["boxes"]
            outputs.update({f"prop_{key}": post[key] for key in _PROPAGATION_KEYS})
            outputs.update(prop_pres=post["pres"], prop_previous_pres=previous["pres"])
            # The probability that the object is present: present before, and kept (its Concrete factor).
            prop_prob = previous["pres"][..., 0] * tf.sigmoid(post["pres_logits"][..., 0])
            if c.learned_prior:
                prior_in = dict({key: previous[key] for key in _CELL_KEYS}, hidden=previous["prior_hidden"])
                prior = self.prior_propagation(frame, prior_in, noise_of("prior"), *controls)
                outputs.update({f"prior_{key}": prior[key] for key in _PRIOR_KEYS})
                propagated["prior_hidden"] = prior["hidden"]
                if use_prior is not None:  # G.1: the prior carries the objects (the posterior's hidden state stays)
                    pick = (lambda a, b: a if use_prior else b) if isinstance(use_prior, bool) else \
                        (lambda a, b: tf.where(use_prior, a, b))
                    for key in ("position", "size", "what", "depth", "pres"):
                        propagated[key] = pick(prior[key], propagated[key])
                    boxes_prop = pick(prior["boxes"], boxes_prop)
                    prop_prob = pick(previous["pres"][..., 0] * tf.sigmoid(prior["pres_logits"][..., 0]), prop_prob)

        # --- discovery, informed of the propagated objects (B.1) ---
        noise_disc = {key: noise[f"disc_{key}"] for key in ("where", "what", "depth", "pres")}
        disc = self.discovery(frame, propagated, noise_disc, *controls)
        outputs.update({f"disc_{key}": disc[key] for key in _DISCOVERY_KEYS})
        discovered = {key: disc[key] for key in _CELL_KEYS}
        discovered["pres"] = disc["pres"] * mask[:, None, None]  # discovery dropout: the frame's objects absent
        if c.learned_prior:
            discovered["prior_hidden"] = disc["hidden"]  # the trainable default state, for both cells
        outputs["disc_pres"] = discovered["pres"]
        disc_prob = tf.sigmoid(disc["pres_logits"][..., 0]) * mask[:, None]

        # --- selection: the K objects of highest presence ---
        source, is_new = select_objects(propagated["pres"][..., 0], discovered["pres"][..., 0], K)  # [B, K] each

        def select(prop_value, disc_value):
            return tf.gather(tf.concat([prop_value, disc_value], axis=1), source, batch_dims=1)

        state = {key: select(propagated[key], discovered[key]) for key in propagated}
        z_pres = state["pres"][..., 0]  # [B, K]
        present = z_pres > 0.5
        # Identities: kept slots keep theirs; a slot that takes a present discovered object gets the next id.
        born = tf.logical_and(is_new, present)
        rank = tf.cumsum(tf.cast(born, tf.int32), axis=1, exclusive=True)  # [B, K]
        ids = tf.where(is_new, tf.where(born, previous["next_id"][:, None] + rank, 0), previous["ids"])
        state["ids"] = ids
        state["next_id"] = previous["next_id"] + tf.reduce_sum(tf.cast(born, tf.int32), axis=1)

        # --- rendering (A.2) ---
        boxes = select(boxes_prop, disc["boxes"])  # [B, K, 4]
        appearance, alpha = self.object_decoder(state["what"])  # [B, K, h, w, 3], [B, K, h, w, 1]
        depth = state["depth"][..., 0]  # [B, K]
        background = self._background(frame)
        if c.renderer == "seed":
            reconstruction = render_sprites_softmax(background, appearance, alpha, boxes, z_pres, depth,
                                                    temperature=c.render_temperature, max_box_size=c.anchor_size)
        else:  # original: max(alpha·z_pres·4·sigm(logit(depth)), 0.01) = max(alpha·z_pres·depth / 0.25, 0.01)
            reconstruction = render_sprites(background, appearance, alpha, boxes, z_pres, logit(depth),
                                            importance="original", max_box_size=c.anchor_size)
        outputs.update(
            reconstruction=reconstruction, boxes=boxes, z_pres=z_pres, scores=select(prop_prob, disc_prob),
            ids=tf.where(present, ids, 0), is_new=is_new, num_objects=tf.reduce_sum(tf.cast(present, tf.int32), 1),
            z_what=state["what"], depth=depth, appearance=appearance, alpha=alpha, disc_mask=mask)
        return state, outputs

    def call(self, videos, training=False, sample=None, prior_from_frame=None):
        if isinstance(videos, dict):
            videos = videos["videos"]
        c = self.config
        videos = checked_videos(videos, "SILOT", channels=3, multiple=c.cell_size)  # [B, T, H, W, 3]
        height, width = videos.shape[2], videos.shape[3]
        static_cells = None if None in (height, width) else (height // c.cell_size) * (width // c.cell_size)
        if static_cells is not None and static_cells < c.num_objects:
            raise ValueError(f"SILOT selects K = {c.num_objects} objects among the propagated ones and one discovered "
                             f"object per 12-pixel cell, so frames need at least K cells; got {height}x{width} "
                             f"({static_cells} cells)")
        if prior_from_frame is not None and not c.learned_prior:
            raise ValueError("prior_from_frame needs the learned prior (config.learned_prior = True)")
        sample = bool(training) if sample is None else sample
        hard_pres = tf.constant(not (sample and training))
        shape = tf.shape(videos)
        batch, frames = shape[0], shape[1]
        cells = (shape[2] // c.cell_size) * (shape[3] // c.cell_size)
        noise = self._noise(batch, frames, cells, sample)  # every frame's noise, drawn before the loop
        masks = self._discovery_mask(batch, frames, bool(training))  # [B, T]

        def use_prior(t):
            if prior_from_frame is None:
                return None
            return t >= prior_from_frame

        def masked(t, mask):
            flag = use_prior(t)
            if flag is None:
                return mask
            return mask * (1.0 - tf.cast(flag, tf.float32))

        def frame(t, state):
            frame_noise = {key: value[:, t] for key, value in noise.items()}
            is_first = isinstance(t, int) and t == 0  # t: a Python int, or a tensor (>= 1) in the graph loop
            return self._frame(videos[:, t], state, frame_noise, masked(t, masks[:, t]), first=is_first,
                               use_prior=None if is_first else use_prior(t), hard_pres=hard_pres)

        state, first = frame(0, self._empty_objects(batch))
        num_frames = videos.shape[1]
        if num_frames is not None and c.frame_loop == "python":  # static T: unrolled, one graph copy per frame
            per_frame = [first]
            for t in range(1, num_frames):
                state, outputs = frame(t, state)
                per_frame.append(outputs)
            return {key: tf.stack([outputs[key] for outputs in per_frame], axis=1) for key in first}
        # Unknown T (a SavedModel's signature) or frame_loop "while": a graph loop over frames 1..T-1, the same
        # frame function. (Eagerly, tf.while_loop runs the body as a Python loop.)
        invariants = {key: tf.TensorShape([None]).concatenate(value.shape[1:]) for key, value in state.items()}
        state = {key: tf.ensure_shape(value, invariants[key]) for key, value in state.items()}
        arrays = {key: tf.TensorArray(value.dtype, size=frames, element_shape=value.shape).write(0, value)
                  for key, value in first.items()}

        def body(t, state, arrays):
            state, outputs = frame(t, state)
            state = {key: tf.ensure_shape(value, invariants[key]) for key, value in state.items()}
            return t + 1, state, {key: arrays[key].write(t, outputs[key]) for key in arrays}

        _, _, arrays = tf.while_loop(lambda t, *_: t < frames, body, (tf.constant(1), state, arrays))
        outputs = {}
        for key, array in arrays.items():
            stacked = array.stack()  # [T, B, ...]
            outputs[key] = tf.transpose(stacked, [1, 0] + list(range(2, stacked.shape.rank)))
        return outputs

    # === Loss ===
    def loss_terms(self, videos, outputs) -> dict:
        """The negative ELBO's terms, each `[B]` float32 (nats per video, summed over frames).

        nll: Bernoulli cross-entropy of every frame under its reconstruction (A.2; continuous targets in [0, 1]).
        kl/z_where, kl/z_what, kl/z_depth: discovered objects' Normal KLs to Table 1's discovery priors, weighted by
        their z_pres (after discovery dropout). kl/prop_*: propagated objects' Normal KLs to Table 1's propagation
        priors on the updates (`silot_math.propagation_kl`), weighted by their new z_pres. kl/prior_*: the same
        against the learned prior (3.8), and for presence the single-sample KL of the two Concrete distributions of
        the propagated factor, weighted by the previous z_pres. kl/z_pres: per frame, SPAIR's count-prior KL
        (`count_prior_kl`, at the annealed s) over the K propagated then the N discovered objects (E.1).
        """
        c = self.config
        x = tf.cast(videos, tf.float32)
        p = tf.clip_by_value(outputs["reconstruction"], 1e-6, 1 - 1e-6)
        nll = -tf.reduce_sum(x * tf.math.log(p) + (1 - x) * tf.math.log1p(-p), axis=[1, 2, 3, 4])

        def weighted(kl, weight):  # kl [B, T, n], weight [B, T, n] -> [B]
            return tf.reduce_sum(kl * weight, axis=[1, 2])

        disc_pres = outputs["disc_pres"][..., 0]  # [B, T, N]
        where_prior = ([c.prior_yx[0]] * 2 + [c.prior_hw[0]] * 2, [c.prior_yx[1]] * 2 + [c.prior_hw[1]] * 2)

        def disc_kl(key, prior):
            kl = normal_kl(outputs[f"disc_{key}_mean"], outputs[f"disc_{key}_std"], tf.constant(prior[0], tf.float32),
                           tf.constant(prior[1], tf.float32))
            return weighted(tf.reduce_sum(kl, -1), disc_pres)

        terms = {"nll": nll, "kl/z_where": disc_kl("where", where_prior), "kl/z_what": disc_kl("what", c.prior_what),
                 "kl/z_depth": disc_kl("depth", c.prior_depth)}

        posterior = {key: outputs[f"prop_{key}"] for key in _PROPAGATION_KEYS}
        prop_pres = outputs["prop_pres"][..., 0]  # [B, T, K]
        static = propagation_kl(posterior, static_propagation_prior(
            c.propagation_prior_yx, c.propagation_prior_hw, c.propagation_prior_what, c.propagation_prior_depth),
            size_prior=c.propagation_size_prior)
        terms.update({f"kl/prop_{key}": weighted(static[key], prop_pres) for key in ("where", "what", "depth")})

        previous_pres = outputs["prop_previous_pres"][..., 0]  # [B, T, K]
        if c.learned_prior:
            learned = propagation_kl(posterior, {key: outputs[f"prior_{key}"] for key in _PRIOR_KEYS}, "update")
            terms.update({f"kl/prior_{key}": weighted(learned[key], prop_pres) for key in ("where", "what", "depth")})
            scale = 1.0 / self.temperature  # the pre-sigmoid Concrete sample is Logistic(logit / T, 1 / T)
            sample = outputs["prop_pres_pre_sigmoid"][..., 0]
            log_q = tfd.Logistic(outputs["prop_pres_logits"][..., 0] * scale, scale).log_prob(sample)
            log_p = tfd.Logistic(outputs["prior_pres_logits"][..., 0] * scale, scale).log_prob(sample)
            terms["kl/prior_pres"] = weighted(log_q - log_p, previous_pres)
        else:
            zero = tf.zeros_like(nll)
            terms.update({f"kl/prior_{key}": zero for key in ("where", "what", "depth", "pres")})

        # z_pres: the count prior over [propagated (K), discovered (N)] in every frame.
        prop_logits, disc_logits = outputs["prop_pres_logits"][..., 0], outputs["disc_pres_logits"][..., 0]
        if c.pres_kl == "presence":
            q = tf.concat([tf.stop_gradient(previous_pres) * tf.sigmoid(prop_logits),
                           outputs["disc_mask"][..., None] * tf.sigmoid(disc_logits)], axis=-1)  # [B, T, K + N]
        else:
            q = tf.sigmoid(tf.concat([prop_logits, disc_logits], axis=-1))
        samples = tf.concat([prop_pres, disc_pres], axis=-1)
        shape = tf.shape(q)
        flat = tf.stack([shape[0] * shape[1], shape[2]])
        kl_pres = count_prior_kl(tf.reshape(q, flat), tf.reshape(samples, flat), self.count_prior_s)  # [B·T]
        terms["kl/z_pres"] = tf.reduce_sum(tf.reshape(kl_pres, shape[:2]), axis=1)
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        videos = x["videos"] if isinstance(x, dict) else x
        terms = self.loss_terms(videos, y_pred)
        terms["loss"] = tf.add_n(list(terms.values()))
        for key in LOSS_KEYS:
            self.trackers[key].update_state(terms[key])
        self.trackers["num_objects"].update_state(tf.cast(y_pred["num_objects"], tf.float32))
        present = y_pred["z_pres"] > 0.5  # [B, T, K]
        self.trackers["num_objects_first"].update_state(tf.reduce_sum(tf.cast(present[:, 0], tf.float32), -1))
        new = tf.reduce_sum(tf.cast(tf.logical_and(y_pred["is_new"][:, 1:], present[:, 1:]), tf.float32), [1, 2])
        later = tf.cast(tf.shape(present)[1] - 1, tf.float32)  # 0 on one-frame videos: weight 0, no NaN
        self.trackers["num_new_later"].update_state(new / tf.maximum(later, 1.0),
                                                    sample_weight=tf.fill(tf.shape(new), tf.minimum(later, 1.0)))
        return loss_for_replica(tf.reduce_mean(terms["loss"]))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Tracking ===
    input_key = "videos"
    truths = {"tracking": frozenset({"track_ids", "boxes"})}  # EvaluatesGroundTruth: what evaluate scores

    def task_scores(self, x, kind, batch_size):
        """`evaluate`'s tracking scores: with `x = {"videos": [N, T, H, W, 3], "track_ids": [N, T, K'], "boxes":
        [N, T, K', 4]}` (a video dataset's arrays, e.g. `tfobj.data.scattered_mnist_videos(...)`), the CLEAR MOT
        scores of the posterior-mode tracks ("mota", "motp", "num_switches", ... and "count_abs_error";
        `tfobj.training.evaluation.tracking_scores`). `evaluate`'s loss terms are those of the posterior mode (hard
        z_pres, posterior means) on the whole videos: higher than the training loss, which averages over sampled,
        relaxed latents on the curriculum's frames."""
        return tracking_scores(self.predict_objects(x["videos"], batch_size=batch_size or 8), x)

    def predict_objects(self, videos, batch_size: int = 8, sample: bool = False,
                        prior_from_frame: int | None = None) -> list[SILOTTrack]:
        """The tracked objects of each video, in the format `tfobj.metrics.clear_mot_many` scores (as
        `ConnCompTracker.track`; `tfobj.training.evaluation.tracking_scores`).

        Args:
            videos: float `[V, T, H, W, 3]` in [0, 1] (numpy or tensor).
            batch_size: videos per forward pass.
            sample: False (default): the posterior mode. True: latents sampled (the original code evaluated
                Scattered MNIST with sampled z_pres).
            prior_from_frame: None (default): the model as trained. t: from frame t on, discovery is off and the
                learned prior propagates the objects (supplement G.1; `call`'s `prior_from_frame`).

        Returns:
            One `SILOTTrack` per video: for each frame, the present objects' (z_pres > 0.5) "ids" int32 `[n_t]`
            (an object keeps its id while propagated), "boxes" float32 `[n_t, 4]` normalised (y_min, x_min, y_max,
            x_max) and "scores" float32 `[n_t]` (presence probabilities).
        """
        check_not_empty(videos, "SILOT", videos=True)
        if self not in _TRACKING_CALLS:
            _TRACKING_CALLS[self] = tf.function(  # s, p: Python values, one trace each
                lambda v, s, p: {key: value for key, value in self(v, training=False, sample=s,
                                                                   prior_from_frame=p).items()
                                 if key in ("boxes", "ids", "scores", "z_pres")}, reduce_retracing=True)
        call = _TRACKING_CALLS[self]
        tracks = []
        for start in range(0, len(videos), batch_size):
            out = {key: value.numpy() for key, value in call(tf.constant(videos[start:start + batch_size]),
                                                             sample, prior_from_frame).items()}
            for v in range(len(out["ids"])):
                present = out["z_pres"][v] > 0.5  # [T, K]
                tracks.append(SILOTTrack(ids=[ids[keep] for ids, keep in zip(out["ids"][v], present)],
                                         boxes=[boxes[keep] for boxes, keep in zip(out["boxes"][v], present)],
                                         scores=[scores[keep] for scores, keep in zip(out["scores"][v], present)]))
        return tracks

    # === Serving: the signatures tfobj.export_saved_model writes ===
    def serving_endpoints(self) -> dict:
        """`{name: (function, input_signature)}`; "serve" becomes the SavedModel's `serving_default`.

        serve: `videos` float32 `[batch, T, H, W, 3]` in [0, 1] (batch, T, H and W unknown; H, W multiples of 12)
        -> `boxes [batch, T, K, 4]`, `ids [batch, T, K]` int32 (0 where no object), `z_pres [batch, T, K]` (0/1),
        `scores [batch, T, K]`, `num_objects [batch, T]` int32, `reconstruction [batch, T, H, W, 3]`, in the
        posterior mode (deterministic); and `track_ids` (= ids) and `presence` (= z_pres), the same tensors
        under the names the SILOT issue gives them.
        """
        def serve(videos):
            outputs = self(videos, training=False)
            outputs.update({alias: outputs[key] for alias, key in SERVING_ALIASES.items()})
            return {key: outputs[key] for key in SERVING_KEYS}

        return {"serve": (serve, [tf.TensorSpec([None, None, None, None, 3], tf.float32, name="videos")])}

    # === Config ===
    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update(config=dataclasses.asdict(self.config), seed=self.seed)
        return config
