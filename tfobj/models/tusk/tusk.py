"""TUSK(keras.Model): Task-Agnostic Unsupervised Keypoints (Jin, Sun, Hosang, Trulls, Yi, NeurIPS 2022).

Dimension letters (docs/conventions.md): B batch (image pairs in training), H, W image, C = 3 image channels,
K keypoints, F feature channels = d descriptor size, M prototypes, N points of a flattened set.

The building blocks are tested on their own: `tusk_layers.KeypointEncoder` (U-Net, heatmap, NMS, top-K,
soft-argmax, descriptors), `tusk_decoders` (`PrototypeBank`, `SparseDecoder`, `AlphaBlendDecoder`),
`tusk_math` (splat, assignment, mixing ratios, GMM samples), `sliced_wasserstein`, `tps` (warps and the
equivariance loss). This file wires them: the forward pass, the feature step's four losses on thin-plate-spline
image pairs, and the prototype step of Table 7, alternating inside one training step.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from tfobj.config import from_dict
from tfobj.models.inputs import check_not_empty, checked_images
from tfobj.models.tusk.sliced_wasserstein import _stateless_seed, random_projections, sliced_wasserstein
from tfobj.models.tusk.tps import canvas_margin, equivariance_loss, pad_images, random_tps_params, tps_grid, warp
from tfobj.models.tusk.tusk_config import TPS_PARAMETERS, TUSKConfig
from tfobj.models.tusk.tusk_decoders import AlphaBlendDecoder, PrototypeBank, SparseDecoder, alpha_blend
from tfobj.models.tusk.tusk_layers import NUM_POOLINGS, KeypointEncoder
from tfobj.models.tusk.tusk_math import assign_prototypes, gaussian_splat, mixing_ratios, sample_prototypes
from tfobj.training.evaluation import EvaluatesGroundTruth
from tfobj.training.strategies import loss_for_replica

__all__ = ["LOSS_KEYS", "SERVING_KEYS", "TUSK", "image_pairs"]

# The metrics of `fit`/`evaluate`: the feature step's weighted total, its four unweighted terms, and the
# prototype step's sliced Wasserstein distance.
LOSS_KEYS = ("loss", "reconstruction", "cluster", "equivariance_heatmap", "equivariance_features",
             "sliced_wasserstein")
# What the SavedModel's serving_default returns (docs/tusk.md, Export).
SERVING_KEYS = ("keypoints", "scores", "prototype_ids", "valid", "reconstruction")
MULTIPLE = 2**NUM_POOLINGS  # the U-Nets' 3 max-pools: H and W multiples of 8
IMAGE_CHANNELS = 3
# Seed counters of evaluation (`test_step`): negative, so that no training step (counter = optimizer step >= 0)
# draws the same pairs and samples.
EVALUATION_COUNTER = -1


def image_pairs(images, seed, tps_warp, first_warp, padding: str = "constant", padding_value: float = 0.0,
                align_corners: bool = False) -> dict:
    """TUSK's training pairs: each image twice, differently warped, and the warp that relates the two.

    As the original (ubc-vision/TUSK `datasets/dataset_utils.py`, `gen_image_pairs`; `tps.py`'s module
    docstring): the image is padded by m = int(H/5) pixels on every side (`padding`: "constant" with
    `padding_value` for MNIST, "reflect" for CLEVR and Tetrominoes), warped by a mild random TPS (`first_warp`)
    into the first image's canvas, which a second random TPS (`tps_warp`) warps into the second's (bilinear,
    zeros outside the canvas, `grid_sample`'s rule); both canvases are cropped back to H × W. The second warp's
    grid is what the equivariance losses use (`tps.equivariance_loss`). Every image gets its own warps.

    Args:
        images: float `[B, H, W, C]` in [0, 1]; H and W static (the canvas and its grids are built at trace time).
        seed: python int or integer tensor `[]`/`[2]`: TensorFlow's stateless RNG, the same pairs for a seed.
        tps_warp, first_warp: the two warps' parameters, `TUSKConfig.tps_warp`'s order (`TPS_PARAMETERS`).
        padding, padding_value: the canvas padding (`tps.pad_images`).
        align_corners: the TPS grid's pixel placement (`tps.tps_grid`); the warps sample with False.

    Returns:
        dict: "images" float32 `[2B, H, W, C]` (the B first images, then the B second images, in [0, 1]) and
        "grid" float32 `[B, H + 2m, W + 2m, 2]` (the second warp's grid on the canvas).

    Raises:
        ValueError: if H or W is not static, or for the building blocks' argument errors.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(f"image_pairs needs static H and W (the TPS canvas is built at trace time); got shape "
                         f"{images.shape}")
    margin = canvas_margin(height)  # the original pads both axes by int(H/5)
    canvas_size = (height + 2 * margin, width + 2 * margin)
    batch = images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(_stateless_seed(seed), 2)  # [2, 2]: the two warps

    def grid(parameters, index):
        params = random_tps_params(batch, seeds[index], **dict(zip(TPS_PARAMETERS, parameters)))
        return tps_grid(params, *canvas_size, align_corners=align_corners)  # [B, H + 2m, W + 2m, 2]

    canvas = pad_images(images, margin, padding, padding_value)  # [B, H + 2m, W + 2m, C]
    first = warp(canvas, grid(first_warp, 0), "zeros")  # [B, H + 2m, W + 2m, C]
    second_grid = grid(tps_warp, 1)
    second = warp(first, second_grid, "zeros")
    crop = (slice(None), slice(margin, margin + height), slice(margin, margin + width))
    pairs = tf.concat([first[crop], second[crop]], axis=0)  # [2B, H, W, C]
    # A bilinear mix of values in [0, 1] is in [0, 1] up to float rounding, which the input check would refuse.
    return {"images": tf.clip_by_value(pairs, 0.0, 1.0), "grid": second_grid}


@keras.saving.register_keras_serializable(package="tfobj")
class TUSK(EvaluatesGroundTruth, keras.Model):
    """TUSK: keypoints from a score map, descriptors at them, a sparse reconstruction, and learned prototypes.

    The encoder (a U-Net) maps an image to a feature map F and a heatmap H; the keypoints are the K highest
    local maxima of S = σ(H) (NMS, top-K) refined by a soft-argmax in a B×B window (A.1), their descriptors F
    read at them (unit vectors), their scores S there. Every keypoint's descriptor is splatted as a sharp
    Gaussian at its position, and a U-Net decoder reconstructs the image from the summed splat (MNIST), or
    decodes every keypoint's splat to colours and an alpha logit blended by a softmax over the keypoints
    (CLEVR, Tetrominoes: `config.alpha_blending`). M prototypes, learned by a sliced Wasserstein loss between
    a GMM around them and the descriptors (A.2, Table 7), cluster the descriptors: a keypoint's class is its
    nearest prototype. Faithful to the seed's appendix and the original code except where docs/tusk.md says.

    Training alternates inside every step (`train_step`, Table 7 and Sec. 3.3): the encoder and decoder are
    updated with the prototypes fixed, by the compiled optimizer (Adam at TrainConfig's rate, Table 10), on
    reconstruction (MSE) + cluster + the two equivariance losses of pairs of warped copies of each training
    image; then the prototypes alone, by the model's own Adam (`prototype_learning_rate`, betas and ε of the
    config), `inner_prototype_steps` times on the sliced Wasserstein distance.

    Args:
        config: `TUSKConfig` (or a dict of its fields). Defaults: Table 10's MNIST column; `TUSK_PRESETS` for
            CLEVR6 and Tetrominoes.
        seed: seed of the training step's random draws (TPS warps, GMM samples, projections), which are
            stateless functions of (seed, optimizer step), so a resumed run draws what an uninterrupted one
            would. None: a seed drawn from NumPy's global generator (which `keras.utils.set_random_seed`, and
            so `fit_model`, seeds); it is saved with the weights.
        **kwargs: passed to `keras.Model` (`name`, `dtype` policy).

    Call arguments:
        images: float `[B, H, W, 3]` in [0, 1], H and W multiples of 8, H·W >= K; or a dict with key "images".
        training: Keras' flag; TUSK's forward pass is the same either way (GroupNorm, no dropout, no sampling).

    Returns:
        dict of tensors, float32 unless said:
          "keypoints" `[B, K, 2]` (row, col) in pixel-index units (add 0.5 for pixel centres), sub-pixel;
          "scores" `[B, K]` in [0, 1]: S at the keypoint (the keypoint's confidence; also the splat's weight);
          "prototype_ids" int32 `[B, K]`: the nearest prototype of each descriptor (its class);
          "valid" bool `[B, K]`: the slot holds a local maximum of S. An image with fewer than K maxima fills its
              last slots with its highest-scoring non-maxima, flagged False (`KeypointEncoder`); every slot
              enters the reconstruction and the losses, as all K do in the original;
          "reconstruction" `[B, H, W, 3]` in [0, 1];
          "masks" `[B, K, H, W]` (alpha blending only): each keypoint's α, summing to 1 over K;
          "rgb" `[B, K, H, W, 3]` (alpha blending only): each keypoint's colours;
          and what the losses read: "descriptors" `[B, K, F]` (unit), "assignment" `[B, K, M]` (the soft
          assignment softmin(T · dist)), "heatmap" `[B, H, W]` (H), "scoremap" `[B, H, W]` (S), "features"
          `[B, H, W, F]` (F), "peaks" int32 `[B, K, 2]` (the integer NMS + top-K peaks).

    For the keypoints of each image, `model.predict_objects(images)`; `export_saved_model(model, path)` writes
    `serving_endpoints()`.

    References:
        Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, and its appendix A.1–A.5,
        Tables 7, 9, 10; the original code, ubc-vision/TUSK@04ba610 (`train.py`,
        `models/network.py`, `models/loss.py`, `datasets/dataset_utils.py`). Differences: docs/tusk.md.
    """

    def __init__(self, config: TUSKConfig | dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = from_dict(TUSKConfig, config)  # strict: unknown keys and wrong types are errors
        self.config = config or TUSKConfig()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an int or None; got {seed!r}")
        self.seed = None if seed is None else int(seed)
        c = self.config
        policy = self.dtype_policy
        # === Layers ===
        self.encoder = KeypointEncoder(
            num_keypoints=c.num_keypoints, kernel_size=c.kernel_size, temperature=c.softmax_temperature,
            feature_channels=c.feature_channels, base_width=c.base_width, groups=c.groups,
            descriptor_sampling=c.descriptor_sampling, border=c.border, align_corners=c.align_corners,
            heatmap_affine=c.heatmap_affine, initialization=c.initialization, dtype=policy, name="encoder")
        self.prototype_bank = PrototypeBank(c.num_prototypes, c.feature_channels, c.assignment_temperature,
                                            dtype=policy, name="prototype_bank")
        decoder = AlphaBlendDecoder if c.alpha_blending else SparseDecoder
        self.decoder = decoder(base_width=c.base_width, groups=c.groups, align_corners=c.align_corners,
                               image_channels=IMAGE_CHANNELS, initialization=c.initialization, dtype=policy,
                               name="decoder")
        # === The prototypes' own optimiser (Table 7's step 4; Table 10's rate; the original's betas) ===
        self.prototype_optimizer = keras.optimizers.Adam(
            learning_rate=c.prototype_learning_rate, beta_1=c.prototype_beta_1, beta_2=c.prototype_beta_2,
            epsilon=c.prototype_epsilon, name="prototype_optimizer")
        self.prototype_optimizer.build([self.prototype_bank.prototype_weights])
        # === Random draws: stateless in (noise_seed, counter); saved with the weights ===
        base = self.seed if self.seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.noise_seed = self.add_weight(shape=(), dtype="int64", initializer=keras.initializers.Constant(base),
                                          trainable=False, name="noise_seed")
        # === Metrics: one Mean per loss term ===
        self.trackers = {key: keras.metrics.Mean(name=key) for key in LOSS_KEYS}

    # === Forward ===
    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["images"]
        shape = tuple(input_shape)
        if len(shape) != 4 or any(size is not None and size % MULTIPLE for size in shape[1:3]):
            return  # call() rejects it with checked_images' message
        self.encoder.build(shape)
        c = self.config
        if c.alpha_blending:
            self.decoder.build((shape[0], c.num_keypoints) + shape[1:3] + (c.feature_channels,))
        else:
            self.decoder.build(shape[:3] + (c.feature_channels,))
        self.built = True

    def checked(self, images) -> tf.Tensor:
        """`images` as float32 `[B, H, W, 3]`, checked as every tfobj model checks (`tfobj.models.inputs`)."""
        if isinstance(images, dict):
            images = images["images"]
        images32 = checked_images(images, "TUSK", channels=IMAGE_CHANNELS, multiple=MULTIPLE)
        # H·W >= K (the K highest of the H·W scores): static in `build`, at run time here for unknown H, W.
        num_keypoints = self.config.num_keypoints
        shape = tf.shape(images32)
        check = tf.debugging.Assert(shape[1] * shape[2] >= num_keypoints, [
            f"TUSK images must have H·W >= K = {num_keypoints} pixels (config.num_keypoints); got H, W =",
            shape[1], shape[2]])
        with tf.control_dependencies([check]):
            return tf.identity(images32)

    def call(self, images, training=False):
        images32 = self.checked(images)  # [B, H, W, 3]
        c = self.config
        encoded = self.encoder(tf.cast(images32, self.compute_dtype))  # dict, float32, see KeypointEncoder
        probabilities, labels = self.prototype_bank.assign(encoded["descriptors"])  # [B, K, M], [B, K]
        shape = tf.shape(images32)
        height = images32.shape[1] if images32.shape[1] is not None else shape[1]
        width = images32.shape[2] if images32.shape[2] is not None else shape[2]
        splat = gaussian_splat(encoded["keypoints"], encoded["descriptors"], encoded["scores"], height, width,
                               c.splat_variance)
        if c.alpha_blending:
            decoded = self.decoder(splat["per_keypoint"])  # R [B, K, H, W, F] -> reconstruction, masks, rgb
        else:
            decoded = self.decoder(splat["sum"])  # F̃ [B, H, W, F] -> reconstruction
        outputs = dict(encoded)
        outputs.update(decoded)
        outputs.update(prototype_ids=labels, assignment=probabilities)
        return outputs

    # === Loss: the feature step (encoder and decoder; prototypes fixed) ===
    def image_pairs(self, images, seed) -> dict:
        """`image_pairs` with this model's config (the TPS presets and padding of its dataset)."""
        c = self.config
        return image_pairs(images, seed, c.tps_warp, c.tps_first_warp, c.pair_padding, c.pair_padding_value,
                           c.tps_align_corners)

    def loss_terms(self, x, outputs) -> dict:
        """The feature step's terms, unweighted, each a float32 scalar.

        reconstruction: the mean over pixels and channels of (Ĩ − I)² (MSE, Table 10). cluster: −mean over the
        keypoints of log p_soft[nearest prototype] (the original's `kmean_loss`). equivariance_heatmap,
        equivariance_features: `tps.equivariance_loss` of the heatmap H (or S, `equivariance_heatmap_map`) and of
        the feature map F between the first and the second images of the pairs; 0 when `x` has no "grid"
        (unpaired images have no equivariance terms).

        Args:
            x: `image_pairs`' dict ("images" `[2B, H, W, 3]`, "grid" `[B, H + 2m, W + 2m, 2]`), or images
                (a tensor or a dict without "grid").
            outputs: the model's outputs for x's images.
        """
        c = self.config
        grid = x.get("grid") if isinstance(x, dict) else None
        images = tf.cast(x["images"] if isinstance(x, dict) else x, tf.float32)
        reconstruction = tf.reduce_mean(tf.square(outputs["reconstruction"] - images))
        nearest = tf.gather(outputs["assignment"], outputs["prototype_ids"], batch_dims=2)  # [B, K]
        cluster = -tf.reduce_mean(tf.math.log(nearest))  # nearest >= 1/M: finite
        terms = {"reconstruction": reconstruction, "cluster": cluster}
        if grid is None:
            terms.update(equivariance_heatmap=tf.zeros([]), equivariance_features=tf.zeros([]))
            return terms
        margin = canvas_margin(images.shape[1])
        half = tf.shape(images)[0] // 2  # the first images, then the second images

        def equivariance(maps):
            return equivariance_loss(maps[:half], maps[half:], grid, margin=margin, padding="reflect")

        terms["equivariance_heatmap"] = equivariance(outputs[c.equivariance_heatmap_map])
        terms["equivariance_features"] = equivariance(outputs["features"])
        return terms

    def weighted_loss(self, terms) -> tf.Tensor:
        """Σ weight · term over the feature step's terms (Table 10's coefficients)."""
        c = self.config
        return (c.reconstruction_weight * terms["reconstruction"] + c.cluster_weight * terms["cluster"]
                + c.equivariance_heatmap_weight * terms["equivariance_heatmap"]
                + c.equivariance_features_weight * terms["equivariance_features"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The feature step's loss (`loss_terms`, weighted); updates the feature terms' metrics."""
        terms = self.loss_terms(x, y_pred)
        terms["loss"] = self.weighted_loss(terms)
        for key, value in terms.items():
            self.trackers[key].update_state(value)
        return loss_for_replica(terms["loss"])

    # === The prototype step (Table 7; networks fixed) ===
    def prototype_loss(self, descriptors, seed) -> dict:
        """Table 7 steps 1–3 for the current prototypes: the sliced Wasserstein distance between N samples of
        their GMM (eqs. 6–8) and the N descriptors.

        Args:
            descriptors: float `[..., F]`, flattened to N points (TUSK: `[2B, K, F]`, both images of every pair);
                not differentiated. Under a strategy, a replica's share, gathered from all replicas.
            seed: integer `[2]` stateless seed (split for the GMM samples and the projections).

        Returns:
            dict: "loss" scalar (differentiable in the prototype weights), and for inspection "ratios" `[M]` (π),
            "labels" int32 `[N]` (nearest prototypes), "samples" `[N, F]`, "projections" `[P, F]`, "points"
            `[N, F]` (the flattened descriptors).
        """
        c = self.config
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Under a tf.distribute strategy: the descriptors of the whole global batch, as on one device (the
            # distance of a replica's share is another, noisier objective); every replica computes the same loss.
            descriptors = context.all_gather(descriptors, axis=0)
        points = tf.reshape(tf.stop_gradient(tf.cast(descriptors, tf.float32)), [-1, c.feature_channels])  # [N, F]
        count = points.shape[0] if points.shape[0] is not None else tf.shape(points)[0]
        prototypes = self.prototype_bank.prototypes()  # [M, F], unit
        _, labels = assign_prototypes(points, prototypes, c.assignment_temperature)  # [N]
        ratios = mixing_ratios(points, prototypes, labels, c.mixing_exploration, c.mixing_variance_about)  # [M]
        seeds = tf.random.experimental.stateless_split(_stateless_seed(seed), 2)  # [2, 2]
        samples = sample_prototypes(prototypes, tf.stop_gradient(ratios), count, seeds[0], c.gmm_variance,
                                    c.normalize_samples, c.sample_allocation)  # [N, F]
        projections = random_projections(c.num_projections, c.feature_channels, seeds[1])  # [P, F]
        return {"loss": sliced_wasserstein(samples, points, projections), "ratios": ratios, "labels": labels,
                "samples": samples, "projections": projections, "points": points}

    def prototype_step(self, descriptors, seeds) -> tf.Tensor:
        """`inner_prototype_steps` Adam updates of the prototypes alone (Table 7 step 4), each on the
        sliced Wasserstein distance of the current prototypes (`prototype_loss`) with `seeds[i]`.

        Args:
            descriptors: `[..., F]`, fixed during the updates.
            seeds: integer `[S, 2]`, S >= max(1, inner_prototype_steps).

        Returns:
            The distance before the first update (the prototypes as the step found them); with 0 inner steps,
            the distance of the fixed prototypes.
        """
        weights = self.prototype_bank.prototype_weights
        first = None
        for index in range(self.config.inner_prototype_steps):  # a python loop: 5 or 8 unrolled updates
            with tf.GradientTape() as tape:
                loss = self.prototype_loss(descriptors, seeds[index])["loss"]
                replica_loss = loss_for_replica(loss)  # on the tape: its gradient is the one applied
            gradient = tape.gradient(replica_loss, weights)
            self.prototype_optimizer.apply_gradients([(gradient, weights)])
            first = loss if first is None else first
        if first is None:
            first = self.prototype_loss(descriptors, seeds[0])["loss"]
        return first

    def feature_variables(self) -> list:
        """The feature step's variables: every trainable weight but the prototypes."""
        prototypes = self.prototype_bank.prototype_weights
        return [v for v in self.trainable_variables if v is not prototypes]

    def step_seeds(self, counter) -> tf.Tensor:
        """int64 `[1 + S, 2]` stateless seeds of one step: row 0 for the pairs, rows 1.. for the prototype
        updates (S = max(1, inner_prototype_steps)). `counter`: the optimizer step (training) or
        `EVALUATION_COUNTER`."""
        count = 1 + max(1, self.config.inner_prototype_steps)
        base = tf.stack([tf.convert_to_tensor(self.noise_seed, tf.int64), tf.cast(counter, tf.int64)])
        return tf.random.experimental.stateless_split(base, count)

    def train_step(self, data):
        """One TUSK iteration: the feature step, then `inner_prototype_steps` prototype updates (Table 7).

        Keras' default `train_step` (one forward pass, one loss, one optimizer over all trainable weights)
        cannot express this: the network sees a batch made inside the step from the data (each image becomes a
        pair of warped copies related by a known warp, so the forward pass sees 2B images); two optimisers with
        different learning rates and betas update disjoint variables (the compiled one the encoder and decoder,
        the model's own Adam the prototypes, which the feature step must not move even though the cluster loss
        depends on them); and the prototype step runs several updates, each on a new loss of the updated
        prototypes, after the feature step's update and on descriptors of the updated encoder (a second
        forward pass, `prototype_descriptors="updated"`, as the original).
        """
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        seeds = self.step_seeds(self.optimizer.iterations)
        pairs = self.image_pairs(self.checked(x), seeds[0])  # images [2B, H, W, 3], grid [B, ., ., 2]
        variables = self.feature_variables()
        with tf.GradientTape() as tape:
            outputs = self(pairs["images"], training=True)
            loss = self.compute_loss(pairs, None, outputs, training=True)
            scaled = self.optimizer.scale_loss(loss)  # mixed float16: Keras' loss scaling
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        if self.config.prototype_descriptors == "updated":
            descriptors = self.encoder(tf.cast(pairs["images"], self.compute_dtype))["descriptors"]
        else:
            descriptors = outputs["descriptors"]
        self.trackers["sliced_wasserstein"].update_state(self.prototype_step(descriptors, seeds[1:]))
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    def test_step(self, data):
        """The training step's terms without updates: pairs and GMM samples from a fixed seed (the same on every
        evaluation, so two evaluations of the same weights agree), the sliced Wasserstein distance of the
        current prototypes and the pairs' descriptors."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        seeds = self.step_seeds(EVALUATION_COUNTER)
        pairs = self.image_pairs(self.checked(x), seeds[0])
        outputs = self(pairs["images"], training=False)
        self.compute_loss(pairs, None, outputs, training=False)
        self.trackers["sliced_wasserstein"].update_state(self.prototype_loss(outputs["descriptors"], seeds[1])["loss"])
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    def compile(self, *args, **kwargs):
        """Keras' `compile`; then, for a built model, builds the optimizer for the feature step's variables, so
        that the training step is traced once (an optimizer built inside the first trace makes `tf.function`
        trace it twice, which for TUSK's graph costs as much as the rest of a short run)."""
        super().compile(*args, **kwargs)
        if self.built and getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            self.optimizer.build(self.feature_variables())

    def compile_from_config(self, config):
        """Recompiles a loaded model (Keras skips this for models that override `compile` unless they say how)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {key: tracker.result() for key, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # === Prediction ===
    truths = {"keypoints": frozenset({"centres", "radii", "classes"}),  # EvaluatesGroundTruth: what evaluate
              "masks": frozenset({"label_map"})}  # scores (MNIST-Hard; multi-object data)

    def task_scores(self, x, kind, batch_size):
        """`evaluate`'s task scores, the ones `fit_model` logs as `val_*` in the experiments
        (`tfobj.experiments.tusk`): MNIST-Hard's ground truth (`{"images", "centres", "radii", "classes"}`, e.g.
        `tfobj.data.mnist_hard(...)`) gives "detection_accuracy" and "classification_accuracy", multi-object
        data's (`{"images", "label_map"}`, alpha blending) the foreground "ari"."""
        from tfobj.experiments.tusk import KEYPOINT_DETECTION, OBJECT_DISCOVERY  # the experiments import the model

        return (KEYPOINT_DETECTION if kind == "keypoints" else OBJECT_DISCOVERY).metrics(self, x)

    def predict_objects(self, images, batch_size: int = 32) -> list[dict]:
        """The keypoints of each image.

        Args:
            images: float `[I, H, W, 3]` in [0, 1] (numpy or tensor), H and W multiples of 8.
            batch_size: images per forward pass.

        Returns:
            One dict per image, numpy: "keypoints" float32 `[K, 2]` (row, col) in pixel-index units, "scores"
            float32 `[K]`, "prototype_ids" int32 `[K]`, "valid" bool `[K]` (False: the image had fewer than K
            local maxima and the slot holds a non-maximum, see the class docstring). All K slots are returned,
            as TUSK's evaluations use them (MNIST-Hard scores all K = 9).
        """
        check_not_empty(images, "TUSK")
        out = self.predict(images, batch_size=batch_size, verbose=0)
        keys = ("keypoints", "scores", "prototype_ids", "valid")
        return [{key: out[key][index] for key in keys} for index in range(len(out["keypoints"]))]

    def decode_prototypes(self, height: int, width: int, chunk: int = 16) -> tf.Tensor:
        """The prototype bank decoded: the image the decoder draws for each prototype as the only object.

        Prototype m (unit, as the descriptors) is the descriptor of one keypoint of confidence 1 at the canvas
        centre (pixel index (H // 2, W // 2)), splatted as in `call`. The plain decoder (MNIST) decodes that
        splat. The alpha-blending decoder has no background layer (each pixel is a softmax over the K keypoints'
        layers): the prototype's layer is blended with K − 1 empty ones, keypoints of confidence 0 whose splat is
        zero (all alike, so one is decoded and counted K − 1 times). A figure of the bank is
        `tfobj.figures.plot_prototypes`.

        Args:
            height, width: the canvas, multiples of 8 (the U-Nets' poolings), e.g. the training images' size.
            chunk: prototypes decoded per U-Net call (bounds the memory at large canvases and M).

        Returns:
            float32 `[M, H, W, 3]` in [0, 1], in the order of the prototypes (prototype id m is row m).

        Raises:
            ValueError: if height or width is not a positive multiple of 8, or chunk not a positive integer.
        """
        for name, value, multiple, expected in (
                ("height", height, MULTIPLE, f"a positive multiple of {MULTIPLE} (the U-Nets' poolings)"),
                ("width", width, MULTIPLE, f"a positive multiple of {MULTIPLE} (the U-Nets' poolings)"),
                ("chunk", chunk, 1, "a positive integer")):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < multiple \
                    or value % multiple:
                raise ValueError(f"decode_prototypes: {name} must be {expected}; got {value!r}")
        c = self.config
        height, width = int(height), int(width)
        if not self.built:
            self.build((None, height, width, IMAGE_CHANNELS))
        prototypes = self.prototype_bank.prototypes()  # [M, F], unit
        if c.alpha_blending:  # the empty layer: the U-Net on a zero splat, [1, H, W, C + 1]
            empty = tf.cast(self.decoder.unet(tf.zeros([1, height, width, c.feature_channels], self.compute_dtype),
                                              training=False), tf.float32)
        images = []
        for first in range(0, c.num_prototypes, int(chunk)):
            units = prototypes[first:first + int(chunk)]  # [m, F]
            count = tf.shape(units)[0]
            keypoints = tf.tile(tf.constant([[[height // 2, width // 2]]], tf.float32), [count, 1, 1])  # [m, 1, 2]
            splat = gaussian_splat(keypoints, units[:, None], tf.ones([count, 1]), height, width, c.splat_variance)
            if not c.alpha_blending:
                images.append(tf.cast(self.decoder(splat["sum"], training=False)["reconstruction"], tf.float32))
                continue
            layer = tf.cast(self.decoder.unet(splat["per_keypoint"][:, 0], training=False), tf.float32)
            empties = tf.tile(empty, [count, 1, 1, 1])  # [m, H, W, C + 1]
            rgb_logits = tf.stack([layer[..., :IMAGE_CHANNELS], empties[..., :IMAGE_CHANNELS]], axis=1)
            # a softmax over the prototype's layer and K − 1 identical empty ones is one over two layers with the
            # empty layer's logit + ln(K − 1)
            shift = math.log(c.num_keypoints - 1) if c.num_keypoints > 1 else -np.inf
            alpha_logits = tf.stack([layer[..., IMAGE_CHANNELS], empties[..., IMAGE_CHANNELS] + shift], axis=1)
            images.append(alpha_blend(rgb_logits, alpha_logits)["reconstruction"])
        return tf.concat(images, axis=0)

    # === Serving: the signatures tfobj.export_saved_model writes ===
    def serving_endpoints(self) -> dict:
        """`{name: (function, input_signature)}`; "serve" becomes the SavedModel's `serving_default`.

        serve: `images` float32 `[batch, H, W, 3]` in [0, 1] (batch, H and W unknown; H, W multiples of 8, checked
        at run time) -> `keypoints [batch, K, 2]` (row, col, pixel-index units), `scores [batch, K]`,
        `prototype_ids [batch, K]` int32, `valid [batch, K]` bool (False where an image had fewer than K local
        maxima), `reconstruction [batch, H, W, 3]`.
        """
        def serve(images):
            outputs = self(images, training=False)
            return {key: outputs[key] for key in SERVING_KEYS}

        return {"serve": (serve, [tf.TensorSpec([None, None, None, IMAGE_CHANNELS], tf.float32, name="images")])}

    # === Config ===
    def get_config(self):
        config = super().get_config()  # name, trainable, dtype policy
        config.update(config=dataclasses.asdict(self.config), seed=self.seed)
        return config
