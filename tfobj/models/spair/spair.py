"""SPAIR(keras.Model): Spatially Invariant Attend, Infer, Repeat (Crawford & Pineau, AAAI 2019)."""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfobj.config import from_dict
from tfobj.layers.padded_conv_backbone import PaddedConvBackbone
from tfobj.models.inputs import checked_images
from tfobj.models.noise_state import SavesNoiseState
from tfobj.models.spair.count_prior import count_prior_kl
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.models.spair.spair_layers import ObjectDecoder, SPAIRCellEncoder
from tfobj.rendering.render_sprites import render_sprites
from tfobj.training.evaluation import DetectionModel
from tfobj.training.schedules import PresenceAnnealing
from tfobj.training.strategies import loss_for_replica

tfd = tfp.distributions

LOSS_KEYS = ("loss", "nll", "kl/z_where", "kl/z_what", "kl/z_depth", "kl/z_pres")
# What the SavedModel's serving_default returns (docs/spair.md, Export).
SERVING_KEYS = ("boxes", "scores", "z_pres", "num_objects", "reconstruction")


@keras.saving.register_keras_serializable(package="tfobj")
class SPAIR(DetectionModel, PresenceAnnealing, SavesNoiseState, keras.Model):
    """SPAIR: a VAE whose latent is a grid of objects, one per 12-pixel cell.

    A right/bottom-padded conv backbone maps the image to an h×w grid; cells are processed in raster
    order, each inferring z_where (box), z_what (appearance code, from a glimpse), z_depth and z_pres
    (Concrete-relaxed during training) conditioned on its processed neighbours; an object decoder
    renders each z_what into a 14×14 sprite with transparency, composited onto the background by the
    differentiable renderer (supplement Alg. 1). The loss is the negative ELBO with the count prior's
    recursive KL for z_pres (supplement A, B). Faithful to the supplement and the aaai_2019 code except
    where docs/spair.md says otherwise. The annealed values (count prior s, training wheels, Concrete
    temperature) follow the optimizer step inside every training step (`tfobj.training.schedules.Annealing`).

    Args:
        config: `SPAIRConfig` (or a dict of its fields). Defaults are the supplement's Table 1.
        seed: seed of the model's noise (`keras.random.SeedGenerator`).
        **kwargs: passed to `keras.Model` (`name`, `dtype` policy).

    Call arguments:
        images: float `[B, H, W, 3]` in [0, 1], H and W multiples of 12; or a dict with key "images".
        training: Keras' flag. Also the default of `sample`.
        sample: draw the latents (True) or use the posterior mode (False, and z_pres hard).

    Returns:
        dict of tensors, float32 but for "num_objects": "reconstruction" `[B, H, W, 3]`; per cell (N = h·w,
        raster order) "boxes" `[B, N, 4]` normalised (y_min, x_min, y_max, x_max), "z_pres" `[B, N]` (relaxed
        when sampling in training, else 0/1), "scores" `[B, N]` = sigmoid(pres logit), "z_what" `[B, N, A]`,
        "z_depth" `[B, N]`, "num_objects" int32 `[B]` = Σ round(z_pres), "appearance" `[B, N, 14, 14, 3]`,
        "alpha" `[B, N, 14, 14, 1]`, and the posterior parameters used by the loss.

    For the objects in each image, call `model.predict_objects(images)`; `model.evaluate(dataset_arrays)` adds
    AP and count accuracy to the loss terms when given the ground truth (`tfobj.training.evaluation.DetectionModel`).

    References:
        Crawford & Pineau, "Spatially Invariant Unsupervised Object Detection with Convolutional Neural
        Networks", AAAI 2019, and its supplementary material (A–D); the original code, e2crawfo/auto_yolo and
        e2crawfo/dps (branches aaai_2019), auto_yolo/models/yolo_air.py. Differences: docs/spair.md.
    """

    def __init__(self, config: SPAIRConfig | dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = from_dict(SPAIRConfig, config)  # strict: unknown keys and wrong types are errors
        self.config = config or SPAIRConfig()
        self.seed = seed
        c = self.config
        # === Layers ===
        self.backbone = PaddedConvBackbone(c.backbone_filters, c.backbone_features, dtype=self.dtype_policy,
                                           name="backbone")
        self.cell_encoder = SPAIRCellEncoder(
            num_what=c.num_what, cell_hidden=c.cell_hidden, passthrough_features=c.passthrough_features,
            encoder_hidden=c.encoder_hidden, object_size=c.object_size, cell_size=c.cell_size,
            anchor_size=c.anchor_size, box_bounds=c.box_bounds, lateral_context=c.lateral_context,
            dtype=self.dtype_policy, name="cell_encoder")
        self.object_decoder = ObjectDecoder(
            decoder_hidden=c.decoder_hidden, object_size=c.object_size, appearance_logit_scale=c.appearance_logit_scale,
            alpha_logit_scale=c.alpha_logit_scale, alpha_logit_bias=c.alpha_logit_bias, dtype=self.dtype_policy,
            name="object_decoder")
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # === Annealed state: assigned from the optimizer step at the start of every training step ===
        self.create_presence_schedules()  # count_prior_s, temperature, wheels
        if c.background == "learn_solid":
            self.background_logits = self.add_weight(name="background_logits", shape=(3,), initializer="zeros")
        # === Metrics: one Mean per ELBO term ===
        self.trackers = {key: keras.metrics.Mean(name=key) for key in LOSS_KEYS}
        self.trackers["num_objects"] = keras.metrics.Mean(name="num_objects")

    # === Forward ===
    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["images"]
        input_shape = tuple(input_shape)
        c = self.config
        self.backbone.build(input_shape)
        self.cell_encoder.build(input_shape, self.backbone.compute_output_shape(input_shape))
        self.object_decoder.build((None, None, c.num_what))
        self.built = True

    def _noise(self, batch, num_cells, sample):
        c = self.config
        shapes = {"where": 4, "what": c.num_what, "depth": 1, "pres": 1}
        if not sample:
            return {key: tf.zeros(tf.stack([batch, num_cells, size])) for key, size in shapes.items()}
        noise = {key: keras.random.normal(tf.stack([batch, num_cells, size]), seed=self.seed_generator)
                 for key, size in shapes.items() if key != "pres"}
        u = keras.random.uniform(tf.stack([batch, num_cells, 1]), minval=1e-6, maxval=1 - 1e-6,
                                 seed=self.seed_generator)
        noise["pres"] = tf.math.log(u) - tf.math.log1p(-u)  # Logistic(0, 1)
        return noise

    def background(self, images):
        """Background image `[B, H, W, 3]`: black, or a learned solid colour sigmoid(10·logits)."""
        if self.config.background == "black":
            return tf.zeros_like(images)
        colour = tf.sigmoid(10.0 * tf.cast(self.background_logits, tf.float32))
        return tf.zeros_like(images) + colour

    def call(self, images, training=False, sample=None):
        if isinstance(images, dict):
            images = images["images"]
        images32 = checked_images(images, "SPAIR", channels=3, multiple=self.config.cell_size)  # [B, H, W, 3]
        sample = bool(training) if sample is None else sample
        features = self.backbone(tf.cast(images32, self.compute_dtype))  # [B, h, w, F]
        shape = tf.shape(features)
        batch, num_cells = shape[0], shape[1] * shape[2]
        hard_pres = tf.constant(not (sample and training))
        cells = self.cell_encoder(images32, features, self._noise(batch, num_cells, sample), hard_pres,
                                  self.temperature, self.wheels)  # dict of [B, N, ...]
        appearance, alpha = self.object_decoder(cells["z_what"])  # [B, N, 14, 14, 3], [.., 1]
        z_pres, z_depth = cells["z_pres"][..., 0], cells["z_depth"][..., 0]  # [B, N]
        background = self.background(images32)
        # Boxes are at most the anchor size (z_h, z_w in (0, 1) scale it): the bound XLA's static renderer needs.
        reconstruction = render_sprites(background, appearance, alpha, cells["boxes"], z_pres, z_depth,
                                        importance=self.config.importance, max_box_size=self.config.anchor_size)
        outputs = dict(cells)
        outputs.update(
            reconstruction=reconstruction, z_pres=z_pres, z_depth=z_depth, appearance=appearance, alpha=alpha,
            scores=tf.sigmoid(cells["pres_logits"][..., 0]),
            num_objects=tf.cast(tf.reduce_sum(tf.round(z_pres), axis=1), tf.int32),
        )
        return outputs

    # === Loss ===
    def loss_terms(self, images, outputs) -> dict:
        """The negative ELBO's terms, each `[B]` float32 (nats per image).

        nll: Bernoulli cross-entropy of the image under the reconstruction (original code; continuous
        targets in [0, 1]), summed over pixels and channels. kl/z_where, kl/z_what, kl/z_depth: analytic
        Normal KLs to the priors, summed over dimensions and weighted by each cell's z_pres. kl/z_pres:
        the count prior's single-sample recursive estimator (supplement B) at the current s.
        """
        c = self.config
        x = tf.cast(images, tf.float32)
        p = tf.clip_by_value(outputs["reconstruction"], 1e-6, 1 - 1e-6)
        nll = -tf.reduce_sum(x * tf.math.log(p) + (1 - x) * tf.math.log1p(-p), axis=[1, 2, 3])
        z_pres = outputs["z_pres"]  # [B, N]

        def normal_kl(mean, std, prior):
            kl = tfd.Normal(mean, std).kl_divergence(tfd.Normal(*(tf.cast(v, tf.float32) for v in prior)))
            return tf.reduce_sum(tf.reduce_sum(kl, -1) * z_pres, -1)

        where_prior = (
            tf.constant([c.prior_yx[0]] * 2 + [c.prior_hw[0]] * 2, tf.float32),
            tf.constant([c.prior_yx[1]] * 2 + [c.prior_hw[1]] * 2, tf.float32),
        )
        return {
            "nll": nll,
            "kl/z_where": normal_kl(outputs["where_mean"], outputs["where_std"], where_prior),
            "kl/z_what": normal_kl(outputs["what_mean"], outputs["what_std"], c.prior_what),
            "kl/z_depth": normal_kl(outputs["depth_mean"], outputs["depth_std"], c.prior_depth),
            "kl/z_pres": count_prior_kl(tf.sigmoid(outputs["pres_logits"][..., 0]), z_pres, self.count_prior_s),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = x["images"] if isinstance(x, dict) else x
        terms = self.loss_terms(images, y_pred)
        terms["loss"] = tf.add_n(list(terms.values()))
        for key in LOSS_KEYS:
            self.trackers[key].update_state(terms[key])
        self.trackers["num_objects"].update_state(y_pred["num_objects"])
        return loss_for_replica(tf.reduce_mean(terms["loss"]))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Serving: the signatures tfobj.export_saved_model writes ===
    def serving_endpoints(self) -> dict:
        """`{name: (function, input_signature)}`; "serve" becomes the SavedModel's `serving_default`.

        serve: `images` float32 `[batch, H, W, 3]` in [0, 1] (batch, H and W unknown; H, W multiples of 12)
        -> `boxes [batch, N, 4]`, `scores [batch, N]`, `z_pres [batch, N]`, `num_objects [batch]`,
        `reconstruction [batch, H, W, 3]` for the N = (H/12)(W/12) cells, in the posterior mode.
        """
        def serve(images):
            outputs = self(images, training=False)
            return {key: outputs[key] for key in SERVING_KEYS}

        return {"serve": (serve, [tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])}

    # === Config ===
    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update(config=dataclasses.asdict(self.config), seed=self.seed)
        return config
