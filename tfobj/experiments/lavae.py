"""LAVAE and its β-VAE baseline on multi-MNIST-1k/10k and multi-dSprites: LAVAE's Table 1 (Dittadi & Winther 2019).

An experiment is `model` + `data` + `train`: `LAVAEExperiment` (`LAVAEConfig`, appendix B; `LAVAE_TRAINING`) and
`BetaVAEExperiment` (`ConvVAEConfig`, appendix B's baseline; `BETA_VAE_TRAINING`), both on `MultiObjectData` (the
scenes, the split sizes, the seed). `run_lavae` / `run_beta_vae` train with `fit_model` and return Table 1's metrics
on the test sets:

- `nll`: the 100-sample importance-weighted bound on −log p(x) (`tfobj.metrics.importance_weighted_nll`), nats per
  image, mean over the 0–3-object test set ("The log likelihood lower bound is estimated with 100 importance
  samples", Table 1);
- `count_accuracy` (LAVAE): the fraction of 0–3-object test images whose inferred n̂ (f_count, the posterior mode)
  equals the true count; `count_accuracy_7`: the same on the 7-object test set ("We generated an additional test set
  of 10k images with 7 objects each", section 3); `nll_7` is reported beside it for both models.

Which weights are kept (`LIKELIHOOD`): those of the best (lowest) validation bound, with `VAL_SAMPLES` importance
samples per image, for both models. Table 1's headline metric is that bound; it is unsupervised, as the training is
(the count "ground truth ... is not available during training", Table 1), so the object counts never steer training
or model selection; and it is the one criterion the β-VAE shares, so both rows are selected alike. The validation
count accuracy is logged beside it (History, TensorBoard) for LAVAE, not used.

Data (`MultiObjectData`): the paper's 200k images are 190k training and 10k test images with 0–3 objects, plus 10k
test images with exactly 7 (section 3). The validation split (for the kept weights) is not in the paper: 1,000 more
images drawn like the training ones from their own random stream. The 7-object set is the "test" stream of the
seed `seed + SEVEN_OBJECTS_SEED_OFFSET` with `min_objects = max_objects = 7` (so it is not a re-draw of the 0–3 test
images' positions). multi-MNIST scenes of every split draw their digits from one pool (`shared_pool`, the paper's
protocol; docs/data.md); when the offline digits hold fewer than the pool size, the data module warns and the row's
`setting` names the pool actually used.
"""
from __future__ import annotations

import dataclasses
import logging
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfobj.data.multi_object import MultiDSpritesConfig, MultiMNISTConfig, multi_dsprites, multi_mnist
from tfobj.models.baselines.conv_vae import ConvVAEConfig
from tfobj.models.lavae.lavae_config import LAVAE_TRAINING, LAVAEConfig
from tfobj.training.evaluation import Evaluation, reconstructions_with_points
from tfobj.training.train_config import TrainConfig

__all__ = ["BETA_VAE_TRAINING", "BetaVAEExperiment", "LAVAEExperiment", "LIKELIHOOD", "LIKELIHOOD_WITH_COUNTS",
           "MultiObjectData", "NLL_SAMPLES", "VAL_SAMPLES", "figure_examples", "likelihood_bound", "run_beta_vae",
           "run_lavae", "sprite_boxes"]

log = logging.getLogger(__name__)

NLL_SAMPLES = 100  # Table 1: "estimated with 100 importance samples"
VAL_SAMPLES = 10  # not in the paper: the validation bound that picks the kept weights (cheaper; the same ordering)
SEVEN_OBJECTS_SEED_OFFSET = 7_000_000  # the 7-object test set's scene seed = data.seed + this (module docstring)
_SPLITS = ("train", "val", "test", "test7")

# The β-VAE's optimisation is not given in the paper (appendix B gives its architecture and β schedule only):
# tfobj trains it as LAVAE's "rest of the model": Adamax 1e-3, batch 64, and as long (200k steps, eval every 5k;
# β reaches 1 at 100k).
BETA_VAE_TRAINING = LAVAE_TRAINING


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MultiObjectData:
    """multi-MNIST (1k or 10k pool) or multi-dSprites images for Table 1: train, val, test (0–3 objects), test7.

    `scene`'s type picks the generator (`tfobj.data.multi_mnist` or `multi_dsprites`); the default is
    multi-MNIST-1k. `num_test7_images` images with exactly 7 objects form the generalisation test set.
    """

    scene: MultiMNISTConfig | MultiDSpritesConfig = field(default_factory=lambda: MultiMNISTConfig(pool_size=1000))
    num_train_images: int = 190_000  # section 3: "190k images are used for training"
    num_val_images: int = 1_000  # not in the paper: tfobj's validation set (the kept weights)
    num_test_images: int = 10_000  # section 3: "the remaining 10k are left for evaluation"
    num_test7_images: int = 10_000  # section 3: "an additional test set of 10k images with 7 objects each"
    seed: int = 0

    def __post_init__(self):
        for split in _SPLITS:
            value = getattr(self, f"num_{split}_images")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.num_{split}_images must be an integer >= 1 (every split is used); "
                                 f"got {value!r}")
        if self.scene.min_objects != 0 or self.scene.max_objects != 3:
            log.warning("data.scene has %d-%d objects per image; Table 1 trains and tests on 0-3",
                        self.scene.min_objects, self.scene.max_objects)
        dataclasses.replace(self.scene, min_objects=7, max_objects=7)  # the test7 scenes: raises if 7 cannot fit

    @property
    def name(self) -> str:
        """"multi-MNIST-1k", "multi-MNIST-10k" (by the configured pool) or "multi-dSprites"."""
        if isinstance(self.scene, MultiDSpritesConfig):
            return "multi-dSprites"
        size = self.scene.pool_size
        return f"multi-MNIST-{size // 1000}k" if size % 1000 == 0 else f"multi-MNIST (pool {size})"

    def load(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays (cached on disk): images float32 `[N, 64, 64, C]` in {0, 1}, num_objects, boxes, ...
        `split`: "train", "val", "test" (0–3 objects) or "test7" (exactly 7)."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}; got {split!r}")
        scene, stream, seed = self.scene, split, self.seed
        if split == "test7":
            scene = dataclasses.replace(scene, min_objects=7, max_objects=7)
            stream, seed = "test", self.seed + SEVEN_OBJECTS_SEED_OFFSET
        size = getattr(self, f"num_{split}_images")
        if isinstance(scene, MultiDSpritesConfig):
            return multi_dsprites(scene, stream, size, seed=seed)
        return multi_mnist(scene, stream, size, seed=seed)


def _check_data(data: MultiObjectData, channels: int, multiple: int, part: str) -> None:
    expected = 3 if isinstance(data.scene, MultiDSpritesConfig) else 1
    if channels != expected:
        raise ValueError(f"{part}.image_channels must be {expected} for {data.name} images "
                         f"({'RGB' if expected == 3 else 'one binary channel'}); got {channels}")
    if any(size % multiple for size in data.scene.image_size):
        raise ValueError(f"data.scene.image_size must be multiples of {multiple} (the {part}'s downsampling in "
                         f"training); got {data.scene.image_size}")


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class LAVAEExperiment:
    """LAVAE on multi-MNIST-1k (Table 1, first column). Full mode is the paper's protocol: appendix B's model and
    schedules, Adamax, batch 64, 190k training images, the 100-sample bound and the count accuracy on 10k test
    images (0–3 objects) and on 10k with 7; 200k steps (not in the paper: `LAVAE_TRAINING`)."""

    model: LAVAEConfig = field(default_factory=LAVAEConfig)
    data: MultiObjectData = field(default_factory=MultiObjectData)
    train: TrainConfig = field(default_factory=lambda: LAVAE_TRAINING)

    def __post_init__(self):
        # Checked here, when the config is loaded: before any data is generated or any model built.
        _check_data(self.data, self.model.image_channels, self.model.auxiliary_vae_config().downsampling, "model")
        if self.model.max_objects < 7:
            raise ValueError(f"model.max_objects must be >= 7 (M; the 7-object test set needs n = 7); got "
                             f"{self.model.max_objects}")
        if tuple(self.model.image_size) != tuple(self.data.scene.image_size):
            raise ValueError(f"model.image_size {tuple(self.model.image_size)} must equal data.scene.image_size "
                             f"{tuple(self.data.scene.image_size)} (the canvas LAVAE generates)")
        if self.train.optimizer != "adamax":
            log.warning("train.optimizer = %r; appendix B trains LAVAE with Adamax", self.train.optimizer)


@dataclass(frozen=True)
class BetaVAEExperiment:
    """The fully convolutional β-VAE baseline on multi-MNIST-1k (Table 1, "baseline"): appendix B's network
    (d_VAE = 1024, β 0 → 1 over 100k steps), trained and evaluated as `LAVAEExperiment`."""

    model: ConvVAEConfig = field(default_factory=ConvVAEConfig)
    data: MultiObjectData = field(default_factory=MultiObjectData)
    train: TrainConfig = field(default_factory=lambda: BETA_VAE_TRAINING)

    def __post_init__(self):
        _check_data(self.data, self.model.image_channels, self.model.downsampling, "model")


# --------------------------------------------------------------------------- metrics


def likelihood_bound(model, images: np.ndarray, num_samples: int = NLL_SAMPLES, batch_size: int = 25,
                     batch_samples: int = 20) -> np.ndarray:
    """The importance-weighted bound on −log p(x) of each image, float64 `[N]` nats (`importance_weighted_nll`), in
    batches of `batch_size` images and `batch_samples` samples (B·S·M sprites are decoded at once for LAVAE), each
    through one `tf.function` of the model's `importance_log_weights`."""
    import tensorflow as tf

    from tfobj.metrics import importance_weighted_nll

    weights = tf.function(model.importance_log_weights)

    class _Compiled:  # the metric's protocol, on the traced function
        @staticmethod
        def importance_log_weights(x, samples):
            return weights(x, samples)

    return np.concatenate([
        importance_weighted_nll(_Compiled, tf.constant(images[start:start + batch_size]), num_samples,
                                batch_samples=batch_samples)
        for start in range(0, len(images), batch_size)])


def _counts_and_locations(model, images: np.ndarray, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """LAVAE's posterior mode: n̂ int `[N]` and the locations int `[N, M, 2]` (row, col; −1 after the n̂-th)."""
    out = model.predict(images, batch_size=batch_size, verbose=0)
    return out["num_objects"].astype(np.int64), out["locations"]


def count_confusion(true_counts: np.ndarray, counts: np.ndarray, max_objects: int) -> list[list[int]]:
    """Rows: the true number of objects 0..M; columns: the inferred n̂ 0..M; entries: images (ints).

    Where count accuracy (its diagonal's share) is lost: over- or undercounting, and at which true count.
    """
    true_counts, counts = np.asarray(true_counts, np.int64), np.asarray(counts, np.int64)
    if true_counts.shape != counts.shape or true_counts.ndim != 1:
        raise ValueError(f"true_counts and counts must be 1-D of one length; got {true_counts.shape}, {counts.shape}")
    size = max_objects + 1
    for name, values in (("true_counts", true_counts), ("counts", counts)):
        if values.size and (values.min() < 0 or values.max() > max_objects):
            raise ValueError(f"{name} must lie in [0, max_objects = {max_objects}]; got {values.min()}..{values.max()}")
    return np.bincount(true_counts * size + counts, minlength=size * size).reshape(size, size).tolist()


def _likelihood_metrics(model, val) -> dict:
    return {"nll": float(np.mean(likelihood_bound(model, val["images"], VAL_SAMPLES)))}


def _likelihood_and_count_metrics(model, val) -> dict:
    counts, _ = _counts_and_locations(model, val["images"])
    return dict(_likelihood_metrics(model, val), count_accuracy=float(np.mean(counts == val["num_objects"])))


def _reconstructions_with_locations(model, val, count: int = 4) -> dict:
    """TensorBoard: the first `count` validation images beside their reconstructions, a sprite-sized square around
    each inferred location (LAVAE)."""
    images = val["images"][:count]
    out = model(images, training=False)
    return reconstructions_with_points(images, out["reconstruction"], out["locations"], out["locations"][..., 0] >= 0,
                                       half_size=model.config.sprite_size / 2)


# The kept weights: the lowest validation bound (VAL_SAMPLES importance samples), for LAVAE and the β-VAE alike
# (module docstring: why). Generic for any model with `importance_log_weights`; LAVAE's adds its images.
LIKELIHOOD = Evaluation(metrics=_likelihood_metrics, monitor="nll", mode="min")
LIKELIHOOD_WITH_COUNTS = Evaluation(metrics=_likelihood_and_count_metrics, monitor="nll", mode="min",
                                    images=_reconstructions_with_locations)


# --------------------------------------------------------------------------- runs


def sprite_boxes(locations: np.ndarray, num_objects: int, sprite_size: int, image_size) -> np.ndarray:
    """Normalised boxes `[n, 4]` (y_min, x_min, y_max, x_max) of the s × s sprites LAVAE places at `locations`
    (`[≥ n, 2]` row, col): sprite pixel ((s − 1) // 2, (s − 1) // 2) sits on the location pixel, clipped to the
    canvas."""
    height, width = image_size
    corner = np.asarray(locations[:num_objects], np.float64) - (sprite_size - 1) // 2  # [n, 2] top-left pixel
    boxes = np.concatenate([corner, corner + sprite_size], axis=1) / np.array([height, width, height, width])
    return np.clip(boxes, 0.0, 1.0).astype(np.float32).reshape(-1, 4)


def _side_by_side(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """`[N, H, 2W + 2, 3]`: input | reconstruction, grey channels repeated to RGB (figures need 3 channels)."""
    gap = np.ones_like(images[:, :, :2])
    both = np.concatenate([images, gap, reconstructions], axis=2)
    return np.repeat(both, 3, axis=-1) if both.shape[-1] == 1 else both


def _examples(model, test: dict, pred_boxes=None, count: int = 8) -> dict:
    """The first `count` test images as input | reconstruction, with the true boxes (and LAVAE's sprite boxes) on
    the input half, for `tfobj.figures.plot_detections`."""
    images = test["images"][:count]
    out = model.predict(images, verbose=0)
    width = images.shape[2]
    scale = np.array([1.0, width / (2 * width + 2)] * 2, np.float32)  # x on the left half of the wider image
    true = [b[:n] * scale for b, n in zip(test["boxes"][:count], test["num_objects"][:count])]
    pred = [np.zeros((0, 4), np.float32)] * len(images) if pred_boxes is None else [b * scale for b in pred_boxes]
    return {"images": _side_by_side(images, np.asarray(out["reconstruction"])), "true_boxes": true,
            "pred_boxes": pred[:count]}


def figure_examples(model, test: dict, test7: dict, count: int = 4, steps: int = 7, samples: int = 16) -> dict:
    """What LAVAE's qualitative figures show (the paper's Figures 1–3 and 9), computed from a trained `model` on the
    test sets; `tfobj.figures.plot_lavae_figures` draws them. The inference panels use the posterior mode (n̂, the
    n̂ most probable locations, the posterior means); every image is a Bernoulli mean (`LAVAE.generate`).

    Keys, by figure (a panel the model's outputs cannot fill is left out: "fixed_count*" when M < 5, "swap_*"
    when no image has n̂ ≥ 2, "location_traversal*" when n̂ = 0 on the 7-object image, "appearance_*" when no
    object is found in the first 100 test images):

    - Figure 1 (5 for multi-dSprites), the first `count` test images with at least one object (the first `count`
      images if none has one): "images",
      "reconstructions" `[count, H, W, C]`, "location_maps" `[count, H, W]` (1 at each inferred location, the
      paper's white pixels on black), "sprites" `[count, M, s, s, C]` (f_sprite of each z_app, clipped to [0, 1];
      only the first n̂ are objects), "num_objects" `[count]`.
    - Figure 2, left: "prior", `samples` images from p(z_loc | n) p(z_app | n) p(n) with the learned p(n);
      "prior_num_objects" their n.
    - Figure 9: "fixed_count", `samples` images from the prior with p(n) = 1/2 on n = 4 and on n = 5 (needs M ≥ 5;
      absent otherwise); "fixed_count_num_objects" their n.
    - Figure 3, top right, the first `count` of the first 100 test images with n̂ ≥ 2: "swap_original" (the
      reconstruction) and "swap_swapped" (object i drawn at object i + 1's location, the last at the first's: the
      sequence of z_loc rotated by one), `[count', H, W, C]`.
    - Figure 3, left (and 8): "location_traversal", the first 7-object test image's first object moved along its
      row to `steps` columns evenly spaced over the canvas, everything else fixed: `[steps, H, W, C]`;
      "location_traversal_image" the test image.
    - Figure 3, bottom right: "appearance_traversal", the first swapped image (else the first of the 100 with an
      object), its first object's z_app set to −3 … 3 ("appearance_values", `steps` values) along one dimension
      per row, the other objects fixed: `[rows, steps, H, W, C]`; the dimensions ("appearance_dimensions", up to
      4) are those whose posterior means vary most over the objects inferred in the first 100 test images (the
      paper picks its rows by eye).

    Args:
        model: a trained `LAVAE`.
        test, test7: the 0–3-object and 7-object test splits (`MultiObjectData.load`: "images", "num_objects").
        count, steps, samples: images per panel, traversal steps, prior samples (integers >= 1).

    Returns:
        dict of numpy arrays, keys as above.

    Raises:
        ValueError: `count`, `steps` or `samples` not an integer >= 1, or an empty test set.
    """
    import tensorflow as tf

    for name, value in (("count", count), ("steps", steps), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"figure_examples: {name} must be an integer >= 1; got {value!r}")
    for name, split in (("test", test), ("test7", test7)):
        if len(split["images"]) == 0:
            raise ValueError(f"figure_examples: {name}['images'] is empty; the figures need at least one image")

    height, width = model.config.image_size
    max_objects = model.config.max_objects

    def mode(images):
        out = model(tf.constant(images), training=False)
        return {key: np.asarray(out[key]) for key in ("reconstruction", "num_objects", "locations", "appearance",
                                                        "sprites")}

    def generate(n, locations, appearance):
        return np.asarray(model.generate(np.asarray(n, np.int32), np.asarray(locations, np.int32),
                                         np.asarray(appearance, np.float32)))

    examples = {}
    with_objects = np.flatnonzero(test["num_objects"] > 0)[:count]
    if not len(with_objects):  # a test set of empty images: show them anyway
        with_objects = np.arange(min(count, len(test["images"])))
    images = test["images"][with_objects]
    out = mode(images)
    maps = np.zeros(images.shape[:3], np.float32)
    for b, (n, locations) in enumerate(zip(out["num_objects"], out["locations"])):
        maps[b, locations[:n, 0], locations[:n, 1]] = 1.0
    examples.update(images=images, reconstructions=out["reconstruction"], location_maps=maps,
                    sprites=np.clip(out["sprites"], 0.0, 1.0), num_objects=out["num_objects"])

    prior = model.sample_prior(samples)
    examples.update(prior=np.asarray(prior["images"]), prior_num_objects=np.asarray(prior["num_objects"]))
    if max_objects >= 5:
        probs = np.zeros(max_objects + 1)
        probs[[4, 5]] = 0.5
        fixed = model.sample_prior(samples, num_objects_probs=probs)
        examples.update(fixed_count=np.asarray(fixed["images"]),
                        fixed_count_num_objects=np.asarray(fixed["num_objects"]))

    first = test["images"][:100]
    found = mode(first)
    several = np.flatnonzero(found["num_objects"] >= 2)[:count]
    if len(several):
        n, locations, appearance = (found[key][several] for key in ("num_objects", "locations", "appearance"))
        swapped = locations.copy()
        for b, k in enumerate(n):
            swapped[b, :k] = np.roll(locations[b, :k], -1, axis=0)
        examples.update(swap_original=generate(n, locations, appearance),
                        swap_swapped=generate(n, swapped, appearance))

    seven = mode(test7["images"][:1])
    if seven["num_objects"][0] >= 1:
        columns = np.linspace(0, width - 1, steps).round().astype(np.int32)
        locations = np.repeat(seven["locations"], steps, axis=0)
        locations[:, 0, 1] = columns
        examples.update(location_traversal=generate(np.repeat(seven["num_objects"], steps), locations,
                                                    np.repeat(seven["appearance"], steps, axis=0)),
                        location_traversal_image=test7["images"][0])

    pick = several[:1] if len(several) else np.flatnonzero(found["num_objects"] >= 1)[:1]
    if len(pick):
        used = np.concatenate([a[:k] for a, k in zip(found["appearance"], found["num_objects"])])
        dimensions = np.argsort(-used.std(axis=0))[:4]
        values = np.linspace(-3.0, 3.0, steps, dtype=np.float32)
        n, locations, appearance = (found[key][pick] for key in ("num_objects", "locations", "appearance"))
        rows = []
        for d in dimensions:
            z = np.repeat(appearance, steps, axis=0)
            z[:, 0, d] = values
            rows.append(generate(np.repeat(n, steps), np.repeat(locations, steps, axis=0), z))
        examples.update(appearance_traversal=np.stack(rows), appearance_dimensions=dimensions,
                        appearance_values=values)
    return examples


def _pool_note(data: MultiObjectData, train: dict) -> str:
    if isinstance(data.scene, MultiDSpritesConfig):
        return data.name
    used = int(train["pool_size"][0])
    return data.name if used == data.scene.pool_size else f"{data.name} (pool of {used} digits: the source is short)"


def _fit(build, experiment, evaluation, run_dir):
    from tfobj.training.fit import fit_model

    data = experiment.data
    train, val = data.load("train"), data.load("val")
    result = fit_model(build, {"images": train["images"]},
                       {"images": val["images"], "num_objects": val["num_objects"]}, experiment.train,
                       run_dir=run_dir, evaluation=evaluation)
    return result, _pool_note(data, train)


def run_lavae(config: LAVAEExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains LAVAE, keeps the weights of the best validation bound, evaluates them on both test sets.

    Returns:
        dict with "metrics" (nll, count_accuracy on the 0–3-object test set; nll_7, count_accuracy_7 on the
        7-object one), "history" (per evaluation period), "best_step", "count_confusion" (per test set,
        `count_confusion`'s table of true n against n̂), "setting" and "examples" (test images with the true boxes
        and the s × s boxes of the inferred sprites; under "lavae", `figure_examples`' arrays for the paper's
        Figures 1–3 and 9).
    """
    from tfobj.models.lavae.lavae import LAVAE
    from tfobj.training.precision import dtype_policy

    train = config.train
    result, data_name = _fit(lambda: LAVAE(config.model, seed=train.seed, dtype=dtype_policy(train.precision)),
                             config, LIKELIHOOD_WITH_COUNTS, run_dir)
    model, metrics, tests, confusion = result.model, {}, {}, {}
    for split, suffix in (("test", ""), ("test7", "_7")):
        tests[split] = data = config.data.load(split)
        counts, locations = _counts_and_locations(model, data["images"])
        metrics[f"nll{suffix}"] = float(np.mean(likelihood_bound(model, data["images"])))
        metrics[f"count_accuracy{suffix}"] = float(np.mean(counts == data["num_objects"]))
        confusion[split] = count_confusion(data["num_objects"], counts, config.model.max_objects)
        log.info("LAVAE %s counts, rows true n = 0..M, columns n̂ = 0..M: %s", split, confusion[split])
        if split == "test":
            boxes = [sprite_boxes(loc, n, config.model.sprite_size, data["images"].shape[1:3])
                     for loc, n in zip(locations[:8], counts[:8])]
    return {
        "metrics": metrics,
        "history": result.history,
        "best_step": result.best_step,
        "count_confusion": confusion,
        "setting": f"{data_name}, {train.steps} steps, best val bound at step {result.best_step}",
        "examples": dict(_examples(model, tests["test"], boxes),
                         lavae=figure_examples(model, tests["test"], tests["test7"])),
    }


def run_beta_vae(config: BetaVAEExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains the β-VAE baseline, keeps the weights of the best validation bound, evaluates them on both test sets.

    Returns:
        dict with "metrics" (nll on the 0–3-object test set, nll_7 on the 7-object one), "history", "best_step",
        "setting" and "examples" (test images | reconstructions, with the true boxes; the baseline finds no objects;
        under "beta_vae", {"prior": 16 images `[16, H, W, C]` from z ~ N(0, I)}, Figure 2's right half).
    """
    from tfobj.models.baselines.conv_vae import ConvVAE
    from tfobj.training.precision import dtype_policy

    train = config.train
    result, data_name = _fit(lambda: ConvVAE(config.model, seed=train.seed, dtype=dtype_policy(train.precision)),
                             config, LIKELIHOOD, run_dir)
    model, metrics, tests = result.model, {}, {}
    for split, suffix in (("test", ""), ("test7", "_7")):
        tests[split] = data = config.data.load(split)
        metrics[f"nll{suffix}"] = float(np.mean(likelihood_bound(model, data["images"])))
    return {
        "metrics": metrics,
        "history": result.history,
        "best_step": result.best_step,
        "setting": f"{data_name}, {train.steps} steps, best val bound at step {result.best_step}; no objects",
        "examples": dict(_examples(model, tests["test"]),
                         beta_vae={"prior": np.asarray(model.sample_prior(16, *tests["test"]["images"].shape[1:3])
                                                       ["images"])}),
    }
