"""LAVAE(keras.Model): the Location-Appearance VAE (Dittadi & Winther 2019, section 2, appendices A and B).

Dimension letters (docs/conventions.md): B batch, S importance samples, H, W, C image, D = H·W locations in raster
order (d = row·W + col), M the maximum number of objects (object axis; entries i ≥ n are padding), L the size of
z_app, h, w the auxiliary VAE's latent map, s the sprite side.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfobj import metrics
from tfobj.config import from_dict
from tfobj.models.baselines.conv_vae import ConvVAE
from tfobj.models.inputs import check_not_empty, checked_images
from tfobj.models.lavae.lavae_config import LAVAEConfig
from tfobj.models.lavae.lavae_layers import AppearanceInferenceNet, LocationInferenceNet, SpriteDecoder
from tfobj.models.lavae.lavae_math import (
    MASKED_LOGIT,
    bernoulli_mean,
    count_objects,
    place_sprites,
    place_sprites_soft,
    sample_locations_gumbel,
)
from tfobj.models.lavae.location import location_log_prob, location_prior_log_prob
from tfobj.models.noise_state import SavesNoiseState
from tfobj.training.evaluation import EvaluatesGroundTruth
from tfobj.training.schedules import Annealing
from tfobj.training.strategies import loss_for_replica

__all__ = ["LAVAE"]

ELBO_KEYS = ("nll", "kl/n", "kl/z_loc", "kl/z_app")
LOSS_KEYS = ("loss", "negative_elbo") + ELBO_KEYS
WARMUP_KEYS = ("warmup/h_loc", "warmup/vae")  # the squared distance to the KL map; the auxiliary VAE's loss
# What the SavedModel's serving_default returns (docs/lavae.md, Export).
SERVING_KEYS = ("num_objects", "locations", "appearance", "reconstruction")


@keras.saving.register_keras_serializable(package="tfobj")
class LAVAE(EvaluatesGroundTruth, Annealing, SavesNoiseState, keras.Model):
    """LAVAE: a VAE whose latent is a count n, n locations drawn without replacement and n appearance vectors.

    Two fully convolutional networks map the image to h_app (2L channels: the mean and log-variance of q(z_app | ·)
    at every pixel) and h_loc (one channel of location logits, × γ). f_count counts the local maxima of h_loc above
    4γ: q(n | x) = δ(n − n̂). n locations are drawn sequentially without replacement from softmax(h_loc) (eq. 11;
    Gumbel-softmax relaxed in training), z_app is read from h_app at each (eq. 9-10) and reparameterised, the sprite
    decoder maps each z_app to an s × s sprite, and λ = Σ_i sprite_i ⊛ z_loc^(i) (eq. 4) is the pixel-wise Bernoulli
    mean (eq. 12). Priors: a learned p(n) = Cat(M + 1, a) (eq. 2), uniform locations without replacement (eq. 3),
    N(0, I) appearances. The loss is the negative ELBO with appendix A's KL terms (each a Keras metric), plus, during
    the warm-up, the squared distance between h_loc and an auxiliary fully convolutional VAE's location-wise KL map,
    and that VAE's own loss (appendix B); n is forced to 1 with an annealed probability in training. Every choice the
    paper leaves open is in docs/lavae.md.

    Why `train_step` is overridden (STYLE §3.7: only where the algorithm is not "one loss, one optimiser"): appendix B
    trains the location inference net at its own learning rate (1e-4 or 5e-4, decayed exponentially ×1/100 over
    100k steps) and the rest of the model at 1e-3, and trains the auxiliary VAE in parallel. Keras 3 has one
    optimizer per model, so the step computes the gradient of the one loss once and applies it with three Adamax
    optimizers: `optimizer` (given to `compile`: the rest of the model, incl. the prior's logits a),
    `location_optimizer` (the location net, `ExponentialDecay` schedule) and `auxiliary_optimizer` (the auxiliary
    VAE). They step together, so their `iterations` agree; the annealed values follow `optimizer.iterations`
    (`Annealing`). The extra optimizers are model attributes, so checkpoints (`save_weights`, `BackupAndRestore`)
    hold their state.

    Args:
        config: `LAVAEConfig` (or a dict of its fields). Defaults are appendix B's multi-MNIST model;
            `LAVAEConfig.preset("multi_dsprites")` the multi-dSprites one.
        seed: seed of the model's noise (`keras.random.SeedGenerator`; the auxiliary VAE's is seed + 1).
        **kwargs: passed to `keras.Model` (`name`, `dtype` policy).

    Call arguments:
        images: float `[B, H, W, C]` in [0, 1], C = `config.image_channels`; any H, W with H·W ≥ M (in training H
            and W must be multiples of the auxiliary VAE's downsampling, 8); or a dict with key "images".
        training: Keras' flag: batch-norm statistics, and n forced to 1 with the annealed probability. Also the
            default of `sample`.
        sample: draw the latents (True) or take the posterior mode (False: the n most probable locations in order,
            which is the most probable sequence of eq. 11, and z_app = the posterior mean). Sampling in training is
            the Gumbel-softmax relaxation (section 2); sampling outside training draws hard locations.

    Returns:
        dict of tensors, float32 but for the int32 ones: "reconstruction" `[B, H, W, C]` (the Bernoulli means);
        "num_objects" int32 `[B]` (the n used: n̂ or a forced 1); "locations" int32 `[B, M, 2]` (row, col; −1 after
        the n-th); "appearance" `[B, M, L]` (posterior means, 0 after the n-th), "appearance_log_variance"
        `[B, M, L]`, "z_app" `[B, M, L]` (the decoded appearance: a sample, or the mean); "sprites"
        `[B, M, s, s, C]`; "location_logits" `[B, H, W]` (h_loc, × γ); "location_indices" int32 `[B, M]` (raster
        index, 0 after the n-th); "count" int32 `[B]` (n̂ = f_count(h_loc)); "forced" bool `[B]`;
        "location_log_q", "location_log_prior" `[B]`: log q(z_loc | n, x) and log p(z_loc | n) of the drawn
        locations (the Monte Carlo kl/z_loc of appendix A is their difference).

    For the objects in each image, call `model.predict_objects(images)`; for images from latents `generate`, from
    the prior `sample_prior`; for Table 1's likelihood bound `tfobj.metrics.importance_weighted_nll(model, images,
    100)`, which calls `importance_log_weights`.

    References:
        Dittadi & Winther, "LAVAE: Disentangling Location and Appearance", 2019: section 2
        (eq. 1-12), appendix A (the KL), appendix B (architecture, optimisation, warm-up, logit rescaling).
    """

    def __init__(self, config: LAVAEConfig | dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = from_dict(LAVAEConfig, config)  # strict: unknown keys and wrong types are errors
        self.config = config or LAVAEConfig()
        self.seed = seed
        c = self.config
        policy = self.dtype_policy
        common = dict(kernel_size=c.kernel_size, negative_slope=c.negative_slope,
                      batch_norm_momentum=c.batch_norm_momentum, batch_norm_epsilon=c.batch_norm_epsilon, dtype=policy)
        # === Layers ===
        self.appearance_net = AppearanceInferenceNet(latent_size=c.appearance_size, filters=c.filters,
                                                     num_blocks=c.inference_blocks, name="appearance_net", **common)
        self.location_net = LocationInferenceNet(gamma=c.gamma, filters=c.filters, num_blocks=c.inference_blocks,
                                                 head_layers=c.location_head_layers, name="location_net", **common)
        self.sprite_decoder = SpriteDecoder(sprite_size=c.sprite_size, num_channels=c.image_channels,
                                            filters=c.filters, initial_size=c.sprite_initial_size,
                                            initial_channels=c.sprite_initial_channels, num_blocks=c.sprite_blocks,
                                            name="sprite_decoder", **common)
        # The warm-up's auxiliary fully convolutional VAE (appendix B): the baseline's implementation (ConvVAE).
        self.auxiliary_vae = ConvVAE(c.auxiliary_vae_config(), seed=None if seed is None else seed + 1, dtype=policy,
                                     name="auxiliary_vae")
        # p(n) = Cat(M + 1, a), a = softmax(count_prior_logits) (eq. 2); uniform at initialisation.
        self.count_prior_logits = self.add_weight(name="count_prior_logits", shape=(c.max_objects + 1,),
                                                  initializer="zeros", dtype="float32")
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # === Annealed state: assigned from the optimizer step at the start of every training step ===
        self.temperature = self.annealed_variable("temperature", self._temperature)
        self.warmup_weight = self.annealed_variable("warmup_weight", self._warmup_weight)
        self.force_one_probability = self.annealed_variable("force_one_probability", self._force_one_probability)
        # === Metrics: one Mean per ELBO term, the warm-up terms, the mean n and the fraction forced to 1 ===
        self.trackers = {key: keras.metrics.Mean(name=key)
                         for key in LOSS_KEYS + WARMUP_KEYS + ("num_objects", "forced_one")}
        self.location_optimizer = None
        self.auxiliary_optimizer = None

    # === Schedules (appendix B) ===
    def _temperature(self, step):
        """τ(t) = τ_0·(τ_end/τ_0)^min(t / T, 1): "exponentially annealed from 0.5 to 0.02 in 100k steps"."""
        c = self.config
        if c.temperature_anneal_steps == 0:
            return tf.constant(c.temperature_end, tf.float32)
        progress = tf.minimum(tf.cast(step, tf.float32) / c.temperature_anneal_steps, 1.0)
        return c.temperature_start * tf.exp(progress * math.log(c.temperature_end / c.temperature_start))

    def _warmup_ramp(self, step, start, end):
        """`start` for the first `warmup_steps`, then linear to `end` over `warmup_anneal_steps`, then `end`."""
        c = self.config
        t = tf.cast(step, tf.float32) - c.warmup_steps
        if c.warmup_anneal_steps == 0:
            progress = tf.cast(t >= 0, tf.float32)
        else:
            progress = tf.clip_by_value(t / c.warmup_anneal_steps, 0.0, 1.0)
        return start + (end - start) * progress

    def _warmup_weight(self, step):
        """The auxiliary loss's weight: 1 for 30k steps, "linearly annealed to 0" in the next 30k."""
        return self._warmup_ramp(step, 1.0, 0.0)

    def _force_one_probability(self, step):
        """P(n forced to 1): "1 during warm-up (30k steps) and then linearly decays to 0.1 in the following 30k"."""
        return self._warmup_ramp(step, self.config.force_one_start, self.config.force_one_end)

    def schedules(self):
        return [(self.temperature, self._temperature), (self.warmup_weight, self._warmup_weight),
                (self.force_one_probability, self._force_one_probability)]

    # === Optimisers (appendix B: Adamax; per-part learning rates) ===
    def compile(self, optimizer="adamax", location_optimizer=None, auxiliary_optimizer=None, **kwargs):
        """Keras' `compile`; `optimizer` trains the rest of the model ("adamax": Keras' Adamax at its default 1e-3,
        appendix B's rate). `location_optimizer` (default: Adamax with `ExponentialDecay(location_learning_rate,
        location_decay_steps, location_decay_rate)`) and `auxiliary_optimizer` (default: Adamax at
        `auxiliary_learning_rate`) train the location net and the auxiliary VAE. A reloaded `.keras` model gets the
        default ones (Keras' compile config records `optimizer` only)."""
        super().compile(optimizer=optimizer, **kwargs)
        c = self.config
        schedule = keras.optimizers.schedules.ExponentialDecay(c.location_learning_rate, c.location_decay_steps,
                                                               c.location_decay_rate)
        self.location_optimizer = location_optimizer or keras.optimizers.Adamax(schedule, name="location_optimizer")
        self.auxiliary_optimizer = auxiliary_optimizer or keras.optimizers.Adamax(c.auxiliary_learning_rate,
                                                                                  name="auxiliary_optimizer")
        if self.built:
            self._build_optimizers()

    def variable_parts(self) -> dict:
        """The trainable variables by optimizer: "location" (the location inference net), "auxiliary" (the auxiliary
        VAE) and "rest" (appearance net, sprite decoder, the prior's logits); together every trainable variable."""
        return {
            "rest": (self.appearance_net.trainable_variables + self.sprite_decoder.trainable_variables
                     + [self.count_prior_logits]),
            "location": self.location_net.trainable_variables,
            "auxiliary": self.auxiliary_vae.trainable_variables,
        }

    def _optimizer_parts(self):
        parts = self.variable_parts()
        return [(self.optimizer, parts["rest"]), (self.location_optimizer, parts["location"]),
                (self.auxiliary_optimizer, parts["auxiliary"])]

    def _build_optimizers(self):
        """Each optimizer's slots for its own variables only, made before the first step (so that checkpoints of a
        compiled model restore into a freshly compiled one, and Keras does not build `optimizer` on every weight)."""
        if self.location_optimizer is None or getattr(self, "optimizer", None) is None:
            return
        for optimizer, variables in self._optimizer_parts():
            if not optimizer.built:
                optimizer.build(variables)

    def train_step(self, data):
        self.anneal(self.optimizer.iterations)
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            loss = self.compute_loss(x=x, y_pred=outputs, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)  # the loss scale of a mixed_float16 LossScaleOptimizer
        parts = self._optimizer_parts()
        variables = [v for _, part in parts for v in part]
        gradients = tape.gradient(scaled_loss, variables)
        # After the warm-up the auxiliary VAE is not evaluated: its gradients are None; zeros keep the optimizers
        # stepping together.
        gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # The main optimizer unscales its own part (and skips non-finite steps); the other parts are unscaled
            # by the same factor and zeroed on a non-finite step.
            scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
            rest = len(parts[0][1])
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients[rest:]])
            gradients = gradients[:rest] + [tf.where(finite, g / tf.cast(scale, g.dtype), tf.zeros_like(g))
                                            for g in gradients[rest:]]
        start = 0
        for optimizer, part in parts:
            optimizer.apply(gradients[start:start + len(part)], part)
            start += len(part)
        return self.compute_metrics(x, None, outputs)

    # === Forward ===
    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["images"]
        shape = tuple(input_shape)
        c = self.config
        if len(shape) != 4 or shape[-1] != c.image_channels:
            return  # call() rejects it with checked_images' message
        self.appearance_net.build(shape)
        self.location_net.build(shape)
        self.sprite_decoder.build((None, c.max_objects, c.appearance_size))
        self.auxiliary_vae.build(shape)
        self.built = True
        self._build_optimizers()

    def _checked(self, images, training=False):
        """`checked_images`, and H·W >= M: the posterior mode takes the M most probable of the H·W locations, and
        n <= M locations are drawn without replacement (statically where H and W are known, else at run time)."""
        c = self.config
        multiple = c.auxiliary_vae_config().downsampling if training else 1  # the auxiliary VAE runs in training
        images32 = checked_images(images, "LAVAE", channels=c.image_channels, multiple=multiple)
        height, width = images32.shape[1], images32.shape[2]
        message = (f"LAVAE images must have H·W >= M = {c.max_objects} pixels (config.max_objects; objects sit at "
                   "distinct pixels)")
        if height is not None and width is not None and height * width < c.max_objects:
            raise ValueError(f"{message}; got shape {images32.shape}")
        shape = tf.shape(images32)
        check = tf.debugging.Assert(shape[1] * shape[2] >= c.max_objects, [f"{message}; got H, W =", shape[1], shape[2]])
        with tf.control_dependencies([check]):
            return tf.identity(images32)

    def _infer(self, images32, training):
        """h_app float32 `[B, H, W, 2L]`, h_loc float32 `[B, H, W]` (× γ), n̂ = f_count(h_loc) int32 `[B]`."""
        c = self.config
        x = tf.cast(images32, self.compute_dtype)
        h_app = self.appearance_net(x, training=training)  # [B, H, W, 2L]
        h_loc = self.location_net(x, training=training)[..., 0]  # [B, H, W]
        return h_app, h_loc, count_objects(h_loc, c.gamma, c.max_objects, c.count_window)

    def _latents(self, h_app, h_loc, num_objects, mode):
        """z_loc and z_app given n, for `mode` "relaxed" (Gumbel-softmax), "sample" (hard draws) or "mode"."""
        c = self.config
        shape = tf.shape(h_loc)
        batch, height, width = shape[0], shape[1], shape[2]
        num_locations = height * width
        logits = tf.reshape(h_loc, tf.stack([batch, num_locations]))  # [B, D], raster order
        features = tf.reshape(h_app, tf.stack([batch, num_locations, 2 * c.appearance_size]))  # [B, D, 2L]
        active = tf.range(c.max_objects)[None, :] < num_objects[:, None]  # i < n, [B, M]
        soft = None
        if mode == "mode":
            # The most probable sequence of eq. 11 is the n highest logits in decreasing order.
            _, indices = tf.math.top_k(logits, k=c.max_objects)  # [B, M]
            indices = tf.where(active, indices, 0)
        else:
            soft, indices = sample_locations_gumbel(logits, num_objects, self.temperature, seed=self.seed_generator,
                                                    hard=c.straight_through, max_objects=c.max_objects)
        if mode == "relaxed":
            # eq. 9 with a relaxed one-hot z_loc: h_app[z_loc] = Σ_d z_loc[d]·h_app[d].
            parameters = tf.einsum("bmd,bdc->bmc", soft, features)  # [B, M, 2L]
        else:
            parameters = tf.gather(features, indices, batch_dims=1)  # [B, M, 2L]
        mean, log_variance = tf.split(parameters, 2, axis=-1)  # [B, M, L] each
        mean = tf.where(active[..., None], mean, 0.0)  # padding objects: N(0, I), never read
        log_variance = tf.where(active[..., None], log_variance, 0.0)
        z_app = mean
        if mode != "mode":
            noise = keras.random.normal(tf.shape(mean), seed=self.seed_generator)
            z_app = tf.where(active[..., None], mean + tf.exp(0.5 * log_variance) * noise, 0.0)
        rows_cols = tf.stack([indices // width, indices % width], axis=-1)  # [B, M, 2]
        locations = tf.where(active[..., None], rows_cols, -1)
        return dict(logits=logits, soft=soft, indices=indices, locations=locations, mean=mean,
                    log_variance=log_variance, z_app=z_app, active=active)

    def _render(self, z_app, num_objects, locations, soft, height, width, training):
        """Sprites `[B, M, s, s, C]` and λ `[B, H, W, C]` (eq. 4): relaxed maps densely, hard ones by scattering."""
        active = tf.range(tf.shape(z_app)[1])[None, :] < num_objects[:, None]  # [B, M]
        sprites = self.sprite_decoder(z_app, object_mask=active, training=training)  # [B, M, s, s, C]
        if soft is not None:
            canvas = place_sprites_soft(sprites, soft, num_objects, height, width)
        else:
            canvas = place_sprites(sprites, locations, num_objects, height, width)
        return sprites, canvas

    def call(self, images, training=False, sample=None):
        if isinstance(images, dict):
            images = images["images"]
        images32 = self._checked(images, training=bool(training))  # [B, H, W, C]
        sample = bool(training) if sample is None else bool(sample)
        mode = ("relaxed" if training else "sample") if sample else "mode"
        shape = tf.shape(images32)
        batch, height, width = shape[0], shape[1], shape[2]
        h_app, h_loc, count = self._infer(images32, training)
        forced = tf.zeros([batch], tf.bool)
        if training:  # appendix B: "randomly force n = 1 during training", independently per image
            forced = keras.random.uniform([batch], seed=self.seed_generator) < self.force_one_probability
        num_objects = tf.where(forced, 1, count)  # [B]
        latents = self._latents(h_app, h_loc, num_objects, mode)
        sprites, canvas = self._render(latents["z_app"], num_objects, latents["locations"],
                                       latents["soft"] if mode == "relaxed" else None, height, width, training)
        log_q = location_log_prob(latents["logits"], latents["indices"], num_objects)  # [B], at the hard draws
        if mode == "relaxed":
            # Value: appendix A's Monte Carlo log q at the drawn locations. Gradient: that of the relaxed
            # log-probability Σ_i Σ_d y_i[d]·log b_i[d] (the Gumbel-softmax path, section 2; docs/lavae.md).
            relaxed = _relaxed_location_log_prob(latents["logits"], latents["soft"], latents["indices"], num_objects)
            log_q = tf.stop_gradient(log_q) + relaxed - tf.stop_gradient(relaxed)
        return {
            "reconstruction": bernoulli_mean(canvas),  # [B, H, W, C]
            "num_objects": num_objects,
            "locations": latents["locations"],
            "appearance": latents["mean"],
            "appearance_log_variance": latents["log_variance"],
            "z_app": latents["z_app"],
            "sprites": sprites,
            "location_logits": h_loc,
            "location_indices": latents["indices"],
            "count": count,
            "forced": forced,
            "location_log_q": log_q,
            "location_log_prior": location_prior_log_prob(height * width, num_objects),
        }

    # === Loss ===
    def count_prior_log_probs(self) -> tf.Tensor:
        """log a, float32 `[M + 1]`: the learned log p(n) (eq. 2)."""
        return tf.nn.log_softmax(tf.cast(self.count_prior_logits, tf.float32))

    def loss_terms(self, images, outputs) -> dict:
        """The negative ELBO's terms, each float32 `[B]` in nats per image (appendix A).

        nll: −log p(x | z) (eq. 12; Bernoulli over every pixel and channel). kl/n: KL(q(n | x) ‖ p(n)) = −log a_n for
        the deterministic q(n | x) = δ(n − n_used). kl/z_loc: the single-sample Monte Carlo Σ_i log q(z_loc^(i) |
        ·) − log p(z_loc^(i) | ·) at the drawn locations (eq. 11 and 3). kl/z_app: Σ_{i<n} KL(N(μ_i, σ_i²) ‖ N(0, I))
        in closed form (inside appendix A's expectation over z_loc).
        """
        x = tf.cast(images, tf.float32)
        nll = _bernoulli_nll(x, outputs["reconstruction"])
        n = outputs["num_objects"]
        kl_n = -tf.gather(self.count_prior_log_probs(), n)
        kl_loc = outputs["location_log_q"] - outputs["location_log_prior"]
        mean, log_variance = outputs["appearance"], outputs["appearance_log_variance"]  # [B, M, L]; 0 when i ≥ n
        kl_app = tf.reduce_sum(0.5 * (tf.square(mean) + tf.exp(log_variance) - 1.0 - log_variance), axis=[1, 2])
        return {"nll": nll, "kl/n": kl_n, "kl/z_loc": kl_loc, "kl/z_app": kl_app}

    def warmup_terms(self, images, outputs) -> dict:
        """The warm-up's terms, each float32 `[B]` (appendix B, "Training warm-up").

        warmup/h_loc: Σ_pixels (h_loc − KL map)², the squared distance between h_loc (× γ) and the auxiliary VAE's
        location-wise KL map (Σ over its latent channels of KL(q ‖ N(0, 1)), bilinearly resized from h × w to H × W;
        a target: no gradient reaches the VAE through it). warmup/vae: the auxiliary VAE's negative ELBO (β = 1),
        which trains it in parallel.
        """
        x = tf.cast(images, tf.float32)
        vae_outputs = self.auxiliary_vae(x, training=True)
        vae_terms = self.auxiliary_vae.loss_terms(x, vae_outputs)
        mean, std = vae_outputs["latent_mean"], vae_outputs["latent_std"]  # [B, h, w, L_aux]
        kl_map = tf.reduce_sum(0.5 * (tf.square(mean) + tf.square(std) - 1.0) - tf.math.log(std), axis=-1,
                               keepdims=True)  # [B, h, w, 1]
        h_loc = outputs["location_logits"]  # [B, H, W]
        kl_map = tf.image.resize(kl_map, tf.shape(h_loc)[1:3], method="bilinear")[..., 0]  # [B, H, W]
        distance = tf.reduce_sum(tf.square(h_loc - tf.stop_gradient(kl_map)), axis=[1, 2])
        return {"warmup/h_loc": distance, "warmup/vae": vae_terms["nll"] + vae_terms["kl"]}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = x["images"] if isinstance(x, dict) else x
        terms = self.loss_terms(images, y_pred)
        terms["negative_elbo"] = tf.add_n([terms[key] for key in ELBO_KEYS])
        terms["loss"] = terms["negative_elbo"]
        if training:
            zeros = tf.zeros_like(terms["nll"])
            if tf.distribute.has_strategy():
                # Under a strategy the batch-norm updates inside a cond branch would need a merge_call, which TF
                # does not allow there: compute the terms always, zeroed once the weight is 0 as the branch below.
                active = self.warmup_weight > 0
                warmup = self.warmup_terms(images, y_pred)
                warmup = {key: tf.where(active, value, zeros) for key, value in warmup.items()}
            else:  # skip the auxiliary VAE once its weight is 0 (after warmup_steps + warmup_anneal_steps)
                warmup = tf.cond(self.warmup_weight > 0, lambda: self.warmup_terms(images, y_pred),
                                 lambda: {key: zeros for key in WARMUP_KEYS})
            terms.update(warmup)
            weight = self.config.warmup_loss_weight * self.warmup_weight
            terms["loss"] = terms["negative_elbo"] + weight * terms["warmup/h_loc"] + terms["warmup/vae"]
            for key in WARMUP_KEYS:
                self.trackers[key].update_state(terms[key])
            self.trackers["forced_one"].update_state(tf.cast(y_pred["forced"], tf.float32))
        for key in LOSS_KEYS:
            self.trackers[key].update_state(terms[key])
        self.trackers["num_objects"].update_state(tf.cast(y_pred["num_objects"], tf.float32))
        return loss_for_replica(tf.reduce_mean(terms["loss"]))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Likelihood bound (tfobj.metrics.importance_weighted_nll's protocol) ===
    def importance_terms(self, images, num_samples) -> dict:
        """The parts of `importance_log_weights` for `num_samples` fresh draws per image, each float32 `[S·B]`
        (sample-major: row s·B + b), with the drawn latents: "log_px", "log_pn", "log_p_loc", "log_p_app",
        "log_q_loc", "log_q_app", "num_objects", "location_indices", "z_app", "appearance",
        "appearance_log_variance", "location_logits" (`[S·B, ...]`). Inference mode; hard location draws."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1; got {num_samples!r}")
        if isinstance(images, dict):
            images = images["images"]
        x = self._checked(images)  # [B, H, W, C]
        shape = tf.shape(x)
        height, width = shape[1], shape[2]
        h_app, h_loc, count = self._infer(x, training=False)

        def repeat(t):  # [B, ...] -> [S·B, ...], sample-major
            return tf.reshape(tf.repeat(t[None], int(num_samples), axis=0), tf.concat([[-1], tf.shape(t)[1:]], 0))

        x, h_app, h_loc, n = repeat(x), repeat(h_app), repeat(h_loc), repeat(count)
        latents = self._latents(h_app, h_loc, n, "sample")
        _, canvas = self._render(latents["z_app"], n, latents["locations"], None, height, width, False)
        z, mean, log_variance = latents["z_app"], latents["mean"], latents["log_variance"]
        active = tf.cast(latents["active"], tf.float32)[..., None]  # [S·B, M, 1]
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        log_p_app = tf.reduce_sum(active * (-0.5 * tf.square(z) - half_log_2pi), axis=[1, 2])
        log_q_app = tf.reduce_sum(active * (-0.5 * tf.square(z - mean) * tf.exp(-log_variance) - 0.5 * log_variance
                                            - half_log_2pi), axis=[1, 2])
        return {
            "log_px": -_bernoulli_nll(x, bernoulli_mean(canvas)),
            "log_pn": tf.gather(self.count_prior_log_probs(), n),
            "log_p_loc": location_prior_log_prob(height * width, n),
            "log_p_app": log_p_app,
            "log_q_loc": location_log_prob(latents["logits"], latents["indices"], n),
            "log_q_app": log_q_app,
            "num_objects": n, "location_indices": latents["indices"], "z_app": z, "appearance": mean,
            "appearance_log_variance": log_variance, "location_logits": h_loc,
        }

    def importance_log_weights(self, images, num_samples):
        """log p(x, n, z_loc, z_app) − log q(n, z_loc, z_app | x) for `num_samples` fresh draws per image.

        n = n̂ (q(n | x) is deterministic, log q(n | x) = 0, and log p(n) = log a_n counts); z_loc drawn hard,
        sequentially without replacement (eq. 11, the Gumbel-max trick), scored by `location_log_prob` and the
        uniform prior (eq. 3); z_app ~ q, scored by Gaussian log-densities; p(x | z) the Bernoulli likelihood of
        every pixel and channel. Inference mode (batch-norm moving statistics). From the same noise-generator state
        a call draws the same latents as `importance_terms` (whose sum this is).

        Args:
            images: float `[B, H, W, C]` in [0, 1] (or a dict with key "images").
            num_samples: S >= 1.

        Returns:
            float32 `[B, S]`.
        """
        terms = self.importance_terms(images, num_samples)
        log_weights = (terms["log_px"] + terms["log_pn"] + terms["log_p_loc"] + terms["log_p_app"]
                       - terms["log_q_loc"] - terms["log_q_app"])  # [S·B]
        return tf.transpose(tf.reshape(log_weights, [int(num_samples), -1]))  # [B, S]

    # === Generation ===
    def generate(self, num_objects, locations, appearance) -> tf.Tensor:
        """Images from latents: the Bernoulli means of eq. 4 and 12 on a `config.image_size` canvas.

        Args:
            num_objects: int `[B]`, n in [0, M'].
            locations: int `[B, M', 2]` (row, col) of each object's sprite centre; entries after the n-th ignored.
            appearance: float `[B, M', L]`, z_app (e.g. `call`'s "appearance"); entries after the n-th ignored.

        Returns:
            float32 `[B, H, W, C]` in (0, 1).

        Raises:
            ValueError: wrong ranks, dtypes or sizes (statically); `tf.errors.InvalidArgumentError` at run time for
                n outside [0, M'] or a non-finite appearance.
        """
        c = self.config
        num_objects, locations = tf.convert_to_tensor(num_objects), tf.convert_to_tensor(locations)
        appearance = tf.convert_to_tensor(appearance)
        if num_objects.shape.rank != 1 or not num_objects.dtype.is_integer:
            raise ValueError(f"num_objects must be an integer tensor [B]; got {num_objects.dtype.name} {num_objects.shape}")
        if locations.shape.rank != 3 or locations.shape[-1] != 2 or not locations.dtype.is_integer:
            raise ValueError(f"locations must be an integer tensor [B, M, 2] (row, col); got {locations.dtype.name} "
                             f"{locations.shape}")
        if appearance.shape.rank != 3 or appearance.shape[-1] != c.appearance_size or not appearance.dtype.is_floating:
            raise ValueError(f"appearance must be a float tensor [B, M, L] with L = {c.appearance_size}; got "
                             f"{appearance.dtype.name} {appearance.shape}")
        num_objects = tf.cast(num_objects, tf.int32)
        max_objects = tf.shape(appearance)[1]
        batch = tf.shape(num_objects)[0]
        same_batch = "LAVAE.generate: num_objects, locations and appearance must have the same batch size B"
        checks = [
            tf.debugging.assert_equal(tf.shape(locations)[0], batch, message=same_batch),
            tf.debugging.assert_equal(tf.shape(appearance)[0], batch, message=same_batch),
            tf.debugging.assert_greater_equal(num_objects, 0, message="LAVAE.generate: num_objects must be >= 0"),
            tf.debugging.assert_less_equal(num_objects, max_objects,
                                           message="LAVAE.generate: num_objects must be <= M (appearance.shape[1])"),
            tf.debugging.assert_all_finite(tf.cast(appearance, tf.float32),
                                           "LAVAE.generate: appearance contains NaN or Inf"),
        ]
        with tf.control_dependencies(checks):
            appearance = tf.identity(tf.cast(appearance, tf.float32))
        height, width = c.image_size
        _, canvas = self._render(appearance, num_objects, tf.cast(locations, tf.int32), None, height, width, False)
        return bernoulli_mean(canvas)

    def sample_prior(self, num_images: int, num_objects_probs=None) -> dict:
        """Draws from the prior (Figures 2, 4, 10): n ~ p(n), n distinct uniform locations (eq. 3), z_app ~ N(0, I).

        Args:
            num_images: N >= 1.
            num_objects_probs: None (default): the learned p(n). Or `[M + 1]` non-negative weights of n = 0..M, used
                instead of it after normalising (Figure 9: 0.5 on n = 4 and on n = 5).

        Returns:
            dict: "images" float32 `[N, H, W, C]` (the Bernoulli means), "num_objects" int32 `[N]`, "locations" int32
            `[N, M, 2]` (−1 after the n-th), "appearance" float32 `[N, M, L]`.

        Raises:
            ValueError: `num_images` < 1, or `num_objects_probs` not M + 1 finite non-negative weights with a
                positive sum.
        """
        c = self.config
        if isinstance(num_images, bool) or not isinstance(num_images, numbers.Integral) or num_images < 1:
            raise ValueError(f"LAVAE.sample_prior: num_images must be an integer >= 1; got {num_images!r}")
        height, width = c.image_size
        if num_objects_probs is None:
            log_probs = self.count_prior_log_probs()  # [M + 1]
        else:
            weights = np.asarray(num_objects_probs, np.float64)
            if weights.shape != (c.max_objects + 1,) or not np.all(np.isfinite(weights)) or np.any(weights < 0) \
                    or not weights.sum() > 0:
                raise ValueError(f"LAVAE.sample_prior: num_objects_probs must be [M + 1] = [{c.max_objects + 1}] "
                                 f"finite non-negative weights of n = 0..M with a positive sum; got shape "
                                 f"{weights.shape}: {np.array2string(weights, threshold=12)}")
            with np.errstate(divide="ignore"):
                log_probs = tf.constant(np.log(weights / weights.sum()), tf.float32)  # -inf where the weight is 0
        logits = tf.tile(log_probs[None], [num_images, 1])  # [N, M + 1]
        n = tf.cast(keras.random.categorical(logits, 1, seed=self.seed_generator)[:, 0], tf.int32)
        n = tf.minimum(n, height * width)
        # Gumbel-max with equal logits: uniform draws without replacement (eq. 3).
        _, indices = sample_locations_gumbel(tf.zeros([num_images, height * width]), n, 1.0, seed=self.seed_generator,
                                             max_objects=c.max_objects)
        active = tf.range(c.max_objects)[None, :] < n[:, None]
        locations = tf.where(active[..., None], tf.stack([indices // width, indices % width], -1), -1)
        z = keras.random.normal([num_images, c.max_objects, c.appearance_size], seed=self.seed_generator)
        z = tf.where(active[..., None], z, 0.0)
        return {"images": self.generate(n, locations, z), "num_objects": n, "locations": locations, "appearance": z}

    # === What a user calls ===
    def predict_objects(self, images, batch_size: int = 32, sample: bool = False) -> list[dict]:
        """The objects the model finds in each image.

        Args:
            images: float `[I, H, W, C]` in [0, 1] (numpy or tensor).
            batch_size: images per forward pass.
            sample: False (default): the posterior mode (n̂, the n̂ most probable locations, the posterior means);
                True: hard location draws and sampled z_app.

        Returns:
            One dict per image: "num_objects" int (n̂), "locations" int32 `[n, 2]` (row, col), "appearance" float32
            `[n, L]` (posterior means).
        """
        check_not_empty(images, "LAVAE")
        found = []
        for start in range(0, len(images), batch_size):
            out = self(images[start:start + batch_size], training=False, sample=sample)
            counts, locations, appearance = (np.asarray(out[key]) for key in ("num_objects", "locations", "appearance"))
            for n, loc, app in zip(counts, locations, appearance):
                found.append({"num_objects": int(n), "locations": loc[:n], "appearance": app[:n]})
        return found

    truths = {"counts": frozenset({"num_objects"})}  # EvaluatesGroundTruth: what evaluate scores

    def task_scores(self, x, kind, batch_size):
        """`evaluate`'s counting scores: with `x = {"images": ..., "num_objects": [N]}`, "count_accuracy" and
        "count_abs_error" of n̂ against the true counts (`validation_data=` given such a dict logs them as
        "val_count_accuracy" and "val_count_abs_error"). `evaluate`'s loss terms are those of the posterior mode
        (n̂, the n̂ most probable locations, the posterior means; no n forced to 1 and no warm-up, so
        `warmup/h_loc`, `warmup/vae` and `forced_one` are 0): the negative ELBO of the most likely latents, not the
        training loss (sampled, relaxed latents) nor Table 1's bound (`tfobj.metrics.importance_weighted_nll`)."""
        counts = self.predict(x["images"], batch_size=batch_size or 32, verbose=0)["num_objects"]
        return {"count_accuracy": metrics.count_accuracy(counts, x["num_objects"]),
                "count_abs_error": metrics.count_abs_error(counts, x["num_objects"])}

    # === Serving: the signatures tfobj.export_saved_model writes ===
    def serving_endpoints(self) -> dict:
        """`{name: (function, input_signature)}`; "serve" becomes the SavedModel's `serving_default`.

        serve: `images` float32 `[batch, H, W, C]` in [0, 1] (batch, H, W unknown) -> `num_objects [batch]` int32,
        `locations [batch, M, 2]` int32 (−1 after the n-th), `appearance [batch, M, L]` (posterior means),
        `reconstruction [batch, H, W, C]`, in the posterior mode.
        generate: `num_objects [batch]` int32, `locations [batch, M, 2]` int32, `appearance [batch, M, L]` float32
        -> `images [batch, H, W, C]` on the `config.image_size` canvas.
        """
        c = self.config

        def serve(images):
            outputs = self(images, training=False)
            return {key: outputs[key] for key in SERVING_KEYS}

        def generate(num_objects, locations, appearance):
            return {"images": self.generate(num_objects, locations, appearance)}

        return {
            "serve": (serve, [tf.TensorSpec([None, None, None, c.image_channels], tf.float32, name="images")]),
            "generate": (generate, [tf.TensorSpec([None], tf.int32, name="num_objects"),
                                    tf.TensorSpec([None, c.max_objects, 2], tf.int32, name="locations"),
                                    tf.TensorSpec([None, c.max_objects, c.appearance_size], tf.float32,
                                                  name="appearance")]),
        }

    # === Config ===
    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update(config=dataclasses.asdict(self.config), seed=self.seed)
        return config


def _bernoulli_nll(images, means) -> tf.Tensor:
    """−Σ log Bernoulli(x; p) over pixels and channels, float32 `[B]`; p in (0, 1) (`bernoulli_mean`)."""
    p = tf.cast(means, tf.float32)
    return -tf.reduce_sum(images * tf.math.log(p) + (1.0 - images) * tf.math.log1p(-p), axis=[1, 2, 3])


def _relaxed_location_log_prob(logits, soft, indices, num_objects) -> tf.Tensor:
    """Σ_{i<n} Σ_d y_i[d]·log b_i[d], float32 `[B]`: eq. 11's log-probability evaluated at the relaxed one-hots y_i
    (`[B, M, D]`), with b_i the softmax of the logits where the hard draws of steps < i are masked (as the sampler
    masks them). Equals `location_log_prob` when every y_i is one-hot at the drawn index."""
    num_locations = tf.shape(logits)[1]
    active = tf.range(tf.shape(indices)[1])[None, :] < num_objects[:, None]  # [B, M]
    one_hot = tf.one_hot(indices, num_locations) * tf.cast(active, tf.float32)[..., None]  # [B, M, D]
    drawn_before = tf.cumsum(one_hot, axis=1, exclusive=True) > 0  # [B, M, D]
    log_b = tf.nn.log_softmax(tf.where(drawn_before, MASKED_LOGIT, logits[:, None, :]), axis=-1)  # [B, M, D]
    # Masked entries have y = 0 exactly (the sampler masks them too); select 0 there rather than 0·(−1e9).
    per_location = tf.where(drawn_before, 0.0, soft * log_b)
    return tf.reduce_sum(per_location, axis=[1, 2])
