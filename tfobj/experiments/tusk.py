"""TUSK experiments: MNIST-Hard detection and classification, object discovery (foreground ARI) on Tetrominoes.

Config: `model` (`TUSKConfig`, Table 10's preset of the data set), `data` (`MNISTHardData` or `TetrominoesData`:
the scenes, split sizes and, for Tetrominoes, the network's input size) and `train` (`TrainConfig`; default
`TUSK_TRAINING[preset]`: Adam 1e-3, Table 10's batch of image pairs, 1000 of the original's epochs, an evaluation
every 5,000 steps). The original keeps its last weights (no validation); tfobj keeps the weights of the best
validation score, stated per experiment (`KEYPOINT_DETECTION`: MNIST-Hard detection accuracy;
`OBJECT_DISCOVERY`: foreground ARI), as every tfobj experiment does (`fit_model`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfobj.data.mnist_hard import MNISTHardConfig, mnist_hard
from tfobj.data.multi_object_records import _nearest_indices
from tfobj.data.tetrominoes import TetrominoesConfig, tetrominoes
from tfobj.metrics.ari import adjusted_rand_index
from tfobj.metrics.keypoint_detection import (
    DETECTION_BOX_SIZE, classification_accuracy, detection_accuracy, match_keypoints)
from tfobj.models.tusk.tusk_config import TUSK_TRAINING, TUSKConfig
from tfobj.training.evaluation import Evaluation, reconstructions_with_points
from tfobj.training.train_config import TrainConfig

__all__ = ["CLEVRData", "KEYPOINT_DETECTION", "MNISTHardData", "OBJECT_DISCOVERY", "TUSKCLEVRExperiment",
           "TUSKMNISTHardExperiment", "TUSKTetrominoesExperiment", "TetrominoesData", "attribute_accuracies",
           "figure_examples", "fit_tusk", "keypoint_boxes", "keypoint_scores", "object_discovery_scores",
           "predict_keypoints", "run_tusk_clevr", "run_tusk_mnist_hard", "run_tusk_tetrominoes"]

log = logging.getLogger(__name__)

MULTIPLE = 8  # TUSK's U-Nets pool three times: H and W multiples of 8


def _check_sizes(data) -> None:
    for split in ("train", "val", "test"):
        value = getattr(data, f"num_{split}_images")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(data).__name__}.num_{split}_images must be an integer >= 1 (TUSK is trained, "
                             f"its kept weights chosen and its scores measured on them); got {value!r}")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MNISTHardData:
    """Procedural MNIST-Hard (`tfobj.data.mnist_hard`): 80×80 images of 9 digits, the network's input as is."""

    scene: MNISTHardConfig = field(default_factory=MNISTHardConfig)
    num_train_images: int = 10_000  # assumed: the original's training split size is not public (TUSK_TRAINING)
    num_val_images: int = 1_000  # tfobj: picks the kept weights (the original keeps its last weights)
    num_test_images: int = 10_000  # the original's evaluate_mnist.py scores the first 10,000 test images
    seed: int = 0

    def __post_init__(self):
        _check_sizes(self)

    def load(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays (cached on disk): images `[N, 80, 80, 3]`, centres, radii, classes, boxes, ..."""
        return mnist_hard(self.scene, split, getattr(self, f"num_{split}_images"), seed=self.seed)


@dataclass(frozen=True)
class TetrominoesData:
    """Procedural Tetrominoes (`tfobj.data.tetrominoes`, 35×35 scenes of 3 pieces), nearest-resized to
    `input_size` × `input_size` for the network (TUSK: 35 → 112 with PyTorch's nearest index rule, images and
    true masks alike; ARI is measured at that size, as the original's `average_ari`). The scenes do not change
    with `input_size`; only how many pixels each 5×5 block covers."""

    scene: TetrominoesConfig = field(default_factory=TetrominoesConfig)
    num_train_images: int = 50_000  # the original: the first 60,000 records less its 10,000 test images
    num_val_images: int = 1_000  # tfobj: picks the kept weights (the original keeps its last weights)
    num_test_images: int = 10_000  # the original: the last 10,000 of its 60,000
    input_size: int = 112  # the original's multi_object.py resize (nearest)
    seed: int = 0

    def __post_init__(self):
        _check_sizes(self)
        size = self.input_size
        if isinstance(size, bool) or not isinstance(size, int) or size < MULTIPLE or size % MULTIPLE:
            raise ValueError(f"TetrominoesData.input_size must be a positive multiple of {MULTIPLE} (TUSK's U-Nets); "
                             f"got {size!r}")

    def load(self, split: str) -> dict[str, np.ndarray]:
        """The split's "images" `[N, S, S, 3]` and "label_map" int32 `[N, S, S]` (0 background, k piece k),
        S = `input_size`, plus the scenes' "shape" and "color_index" `[N, 4]`."""
        scenes = tetrominoes(self.scene, split, getattr(self, f"num_{split}_images"), seed=self.seed)
        rows = _nearest_indices(scenes["image"].shape[1], self.input_size)
        cols = _nearest_indices(scenes["image"].shape[2], self.input_size)
        return {"images": scenes["image"][:, rows][:, :, cols], "label_map": scenes["label_map"][:, rows][:, :, cols],
                "shape": scenes["shape"], "color_index": scenes["color_index"]}


# --------------------------------------------------------------------------- experiments


def _check_model(model: TUSKConfig, image_size, alpha_blending: bool, name: str) -> None:
    if any(size % MULTIPLE for size in image_size):
        raise ValueError(f"{name}: TUSK needs image sides that are multiples of {MULTIPLE}; got {tuple(image_size)}")
    if model.alpha_blending != alpha_blending:
        raise ValueError(f"{name}: model.alpha_blending must be {alpha_blending} (Table 9: "
                         f"{'per-keypoint RGBA and alpha blending' if alpha_blending else 'one decoder'} here)")
    if model.kernel_size > min(image_size):
        raise ValueError(f"{name}: model.kernel_size = {model.kernel_size} exceeds the image side {min(image_size)}")


@dataclass(frozen=True)
class TUSKMNISTHardExperiment:
    """TUSK on MNIST-Hard (Table 10's MNIST column): K = 9 keypoints, M = 10 prototypes, scored by detection
    accuracy (20×20 boxes at the keypoints, IoU > 0.5) and classification accuracy (majority mapping), as TUSK's
    `evaluate_mnist.py`. The kept weights: the best validation detection accuracy."""

    model: TUSKConfig = field(default_factory=lambda: TUSKConfig.preset("mnist"))
    data: MNISTHardData = field(default_factory=MNISTHardData)
    train: TrainConfig = field(default_factory=lambda: TUSK_TRAINING["mnist"])

    def __post_init__(self):
        # Checked here, when the config is loaded: before any data is generated or any model built.
        _check_model(self.model, self.data.scene.image_size, False, type(self).__name__)


@dataclass(frozen=True)
class TUSKTetrominoesExperiment:
    """TUSK on Tetrominoes (Table 10's Tetrominoes column): K = 3, M = 114, alpha blending, scored by the
    foreground ARI of the alpha masks' argmax over the keypoints against the true pieces. The kept weights: the
    best validation foreground ARI."""

    model: TUSKConfig = field(default_factory=lambda: TUSKConfig.preset("tetrominoes"))
    data: TetrominoesData = field(default_factory=TetrominoesData)
    train: TrainConfig = field(default_factory=lambda: TUSK_TRAINING["tetrominoes"])

    def __post_init__(self):
        size = self.data.input_size
        _check_model(self.model, (size, size), True, type(self).__name__)


# --------------------------------------------------------------------------- prediction and scores


def predict_keypoints(model, images, batch_size: int = 32, keys=("keypoints", "prototype_ids")) -> dict:
    """`model.predict` in batches, only `keys` kept (numpy)."""
    out = model.predict(images, batch_size=batch_size, verbose=0)
    return {key: np.asarray(out[key]) for key in keys}


def figure_examples(model, images: np.ndarray, prototype_ids: np.ndarray) -> dict:
    """What `tfobj.figures.plot_tusk_figures` draws: the model's outputs on `images` `[N, H, W, 3]` (keypoints,
    prototype ids, valid, reconstruction, and the alpha masks where the decoder has them), the decoded prototype
    bank (`TUSK.decode_prototypes` at the images' size) and the keypoints per prototype among `prototype_ids`
    (int, any shape; e.g. the test set's)."""
    out = model.predict(images, verbose=0)
    keys = ("keypoints", "prototype_ids", "valid", "reconstruction") + (("masks",) if "masks" in out else ())
    num_prototypes = model.config.num_prototypes
    return {"outputs": {key: np.asarray(out[key]) for key in keys},
            "prototype_images": np.asarray(model.decode_prototypes(*images.shape[1:3])),
            "prototype_counts": np.bincount(np.asarray(prototype_ids).ravel(), minlength=num_prototypes)}


def keypoint_scores(keypoints, prototype_ids, data: dict, num_prototypes: int) -> dict:
    """MNIST-Hard's `detection_accuracy` and `classification_accuracy` (cls_acc: majority mapping, over the
    correct detections) of keypoints `[N, K, 2]` (row, col pixel indices; +0.5 for pixel centres, as
    `tfobj.metrics.keypoint_detection` expects) against `data`'s centres, radii and classes."""
    centres = keypoints + 0.5
    matches = match_keypoints(centres, data["centres"], data["radii"])
    classified = classification_accuracy(prototype_ids, data["classes"], matches, num_prototypes=num_prototypes,
                                         num_classes=10)
    return {"detection_accuracy": detection_accuracy(centres, data["centres"], data["radii"]),
            "classification_accuracy": classified["cls_acc"]}


def object_discovery_scores(masks, label_map) -> dict:
    """Foreground ARI (mean over images) of the argmax over the K alpha masks `[N, K, H, W]` against the true
    label maps `[N, H, W]` (0 background), as TUSK's `average_ari(foreground_only=True)`."""
    predicted = np.argmax(masks, axis=1)  # [N, H, W]
    return {"ari": float(np.mean(adjusted_rand_index(label_map, predicted, foreground_only=True)))}


def _mnist_metrics(model, val) -> dict:
    out = predict_keypoints(model, val["images"])
    return keypoint_scores(out["keypoints"], out["prototype_ids"], val, model.config.num_prototypes)


def _discovery_metrics(model, val) -> dict:
    out = predict_keypoints(model, val["images"], keys=("masks",))
    return object_discovery_scores(out["masks"], val["label_map"])


def _reconstructions_with_keypoints(model, val, count: int = 4) -> dict:
    """TensorBoard: the first `count` validation images beside their reconstructions, a 5-px square around each
    valid keypoint (TUSK)."""
    images = val["images"][:count]
    out = model(images, training=False)
    return reconstructions_with_points(images, out["reconstruction"], out["keypoints"], out["valid"], half_size=2.5)


KEYPOINT_DETECTION = Evaluation(metrics=_mnist_metrics, monitor="detection_accuracy", mode="max",
                                images=_reconstructions_with_keypoints)
"""MNIST-Hard: detection and classification accuracy on the validation set; the best detection accuracy is kept."""
OBJECT_DISCOVERY = Evaluation(metrics=_discovery_metrics, monitor="ari", mode="max",
                               images=_reconstructions_with_keypoints)
"""Multi-object data: foreground ARI on the validation set; the best is kept."""


def keypoint_boxes(keypoints, image_size, box_size: float = DETECTION_BOX_SIZE) -> np.ndarray:
    """Fixed-size square boxes `[..., 4]` (normalised y_min, x_min, y_max, x_max) centred at keypoints `[..., 2]`
    (row, col pixel indices), for `tfobj.figures.plot_detections`: MNIST-Hard's 20×20 boxes of the metric."""
    height, width = image_size
    centres = np.asarray(keypoints, np.float32) + 0.5
    half = box_size / 2.0
    scale = np.array([height, width, height, width], np.float32)
    return np.concatenate([centres - half, centres + half], axis=-1) / scale


# --------------------------------------------------------------------------- runs


def fit_tusk(model: TUSKConfig, train: TrainConfig, train_images: np.ndarray, val: dict, evaluation: Evaluation,
             run_dir: str | Path | None = None):
    """Trains TUSK on `train_images [N, H, W, 3]` with `fit_model`, keeping the weights of the best `evaluation`
    on `val`. Returns the `FitResult`."""
    from tfobj.models.tusk.tusk import TUSK
    from tfobj.training.fit import fit_model
    from tfobj.training.precision import dtype_policy

    return fit_model(lambda: TUSK(model, seed=train.seed, dtype=dtype_policy(train.precision)),
                     {"images": train_images}, val, train, run_dir=run_dir, evaluation=evaluation)


def run_tusk_mnist_hard(config: TUSKMNISTHardExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains TUSK on MNIST-Hard, keeps the weights of the best validation detection accuracy, scores the test
    split.

    Returns:
        dict with "metrics" (detection_accuracy, classification_accuracy on test), "history", "best_step",
        "setting", and "examples" (test images, true 2·radius boxes, 20×20 boxes at the keypoints; "tusk":
        `figure_examples` for the keypoint and prototype figures).
    """
    train, val, test = (config.data.load(split) for split in ("train", "val", "test"))
    result = fit_tusk(config.model, config.train, train["images"], val, KEYPOINT_DETECTION, run_dir=run_dir)
    out = predict_keypoints(result.model, test["images"])
    size = config.data.scene.image_size
    count = min(8, len(test["images"]))
    true_boxes = np.concatenate([test["centres"] - test["radii"][..., None],
                                 test["centres"] + test["radii"][..., None]], axis=-1) / np.tile(size, 2)
    return {
        "metrics": keypoint_scores(out["keypoints"], out["prototype_ids"], test, config.model.num_prototypes),
        "history": result.history,
        "best_step": result.best_step,
        "setting": f"{config.train.steps} steps, best val detection accuracy at step {result.best_step}",
        "examples": {"images": test["images"][:count], "true_boxes": list(true_boxes[:count]),
                     "pred_boxes": list(keypoint_boxes(out["keypoints"][:count], size)),
                     "tusk": figure_examples(result.model, test["images"][:count], out["prototype_ids"])},
    }


def run_tusk_tetrominoes(config: TUSKTetrominoesExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains TUSK on Tetrominoes, keeps the weights of the best validation foreground ARI, scores the test split.

    Returns:
        dict with "metrics" (ari: foreground ARI on test), "history", "best_step", "setting", and "examples"
        (test images; boxes of 1/8 of the image side at the keypoints, no true boxes; "tusk": `figure_examples`).
    """
    train, val, test = (config.data.load(split) for split in ("train", "val", "test"))
    result = fit_tusk(config.model, config.train, train["images"], val, OBJECT_DISCOVERY, run_dir=run_dir)
    out = predict_keypoints(result.model, test["images"], keys=("keypoints", "masks", "prototype_ids"))
    size = config.data.input_size
    count = min(8, len(test["images"]))
    return {
        "metrics": object_discovery_scores(out["masks"], test["label_map"]),
        "history": result.history,
        "best_step": result.best_step,
        "setting": f"{config.train.steps} steps, best val ARI at step {result.best_step}",
        "examples": {"images": test["images"][:count], "true_boxes": None,
                     "pred_boxes": list(keypoint_boxes(out["keypoints"][:count], (size, size), size / 8)),
                     "tusk": figure_examples(result.model, test["images"][:count], out["prototype_ids"])},
    }


# --------------------------------------------------------------------------- CLEVR6 / CLEVR10 (Table 8), real data only

CLEVR_ATTRIBUTES = ("shape", "color", "size")


@dataclass(frozen=True)
class CLEVRData:
    """DeepMind's CLEVR (with masks) TFRecord file, as TUSK uses it (`read_clevr_with_masks`): of the first
    `max_records` records the images with at most 6 objects (CLEVR6), centre-cropped to 192 and nearest-resized to
    `input_size`; the last `num_test_images` of them are the CLEVR6 test set, the `num_val_images` before those pick
    the kept weights, the rest train. CLEVR10 test: the `num_test_images` records after the first `max_records`,
    all object counts (assumed: the original's CLEVR10 split is not in its code; these are unseen in training)."""

    path: str = "data/clevr_with_masks_train.tfrecords"  # the user's copy of multi_object_datasets' file
    max_records: int = 70_000  # the original: the first 70,000 records
    num_val_images: int = 1_000  # tfobj: picks the kept weights
    num_test_images: int = 10_000  # the original: the last 10,000 kept
    input_size: int = 112  # the original's resize after the 192 crop

    def __post_init__(self):
        for name in ("max_records", "num_val_images", "num_test_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CLEVRData.{name} must be an integer >= 1; got {value!r}")
        size = self.input_size
        if isinstance(size, bool) or not isinstance(size, int) or size < MULTIPLE or size % MULTIPLE:
            raise ValueError(f"CLEVRData.input_size must be a positive multiple of {MULTIPLE}; got {size!r}")

    def check_exists(self) -> None:
        """Raises FileNotFoundError naming `path` when the user does not have the file."""
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"CLEVR TFRecord file not found: {self.path!r}. Download clevr_with_masks_train.tfrecords from "
                "DeepMind's multi_object_datasets (gs://multi-object-datasets/clevr_with_masks/) and pass its path "
                "with --set <row>.data.path=...")

    def _arrays(self, dataset) -> dict[str, np.ndarray]:
        keys = ("image", "label_map") + CLEVR_ATTRIBUTES
        rows = {key: [] for key in keys}
        for example in dataset.as_numpy_iterator():
            for key in keys:
                rows[key].append(example[key])
        arrays = {key: np.stack(value) if value else np.zeros((0,)) for key, value in rows.items()}
        arrays["images"] = arrays.pop("image")
        return arrays

    def load(self) -> dict[str, dict[str, np.ndarray]]:
        """{"train", "val", "test" (CLEVR6), "test_clevr10"}: "images" `[N, S, S, 3]`, "label_map" `[N, S, S]`,
        "shape", "color", "size" `[N, 11]` codes (0: no object)."""
        from tfobj.data.multi_object_records import TUSK_CLEVR_CROP_SIZE, read_clevr_with_masks

        self.check_exists()
        kept = self._arrays(read_clevr_with_masks(self.path, max_objects=6, crop_size=TUSK_CLEVR_CROP_SIZE,
                                                  resize_to=self.input_size, max_records=self.max_records))
        count = len(kept["images"])
        if count <= self.num_val_images + self.num_test_images:
            raise ValueError(f"{self.path!r}: {count} CLEVR6 images among the first {self.max_records} records, not "
                             f"more than num_val_images + num_test_images = "
                             f"{self.num_val_images + self.num_test_images}")
        test_start, val_start = count - self.num_test_images, count - self.num_test_images - self.num_val_images
        splits = {name: {key: value[start:stop] for key, value in kept.items()}
                  for name, start, stop in (("train", 0, val_start), ("val", val_start, test_start),
                                            ("test", test_start, count))}
        clevr10 = read_clevr_with_masks(self.path, crop_size=TUSK_CLEVR_CROP_SIZE, resize_to=self.input_size,
                                        max_records=self.max_records + self.num_test_images)
        splits["test_clevr10"] = self._arrays(clevr10.skip(self.max_records))  # max_objects None: no filter
        return splits


@dataclass(frozen=True)
class TUSKCLEVRExperiment:
    """TUSK trained on CLEVR6 (Table 10's CLEVR6 column), scored on CLEVR6 and CLEVR10 as Table 8: foreground ARI
    and the shape, colour and size accuracies of the prototypes (`attribute_accuracies`). Needs the real file."""

    model: TUSKConfig = field(default_factory=lambda: TUSKConfig.preset("clevr6"))
    data: CLEVRData = field(default_factory=CLEVRData)
    train: TrainConfig = field(default_factory=lambda: TUSK_TRAINING["clevr6"])

    def __post_init__(self):
        size = self.data.input_size
        _check_model(self.model, (size, size), True, type(self).__name__)


def attribute_accuracies(masks, prototype_ids, label_map, attributes: dict, alpha_threshold: float = 0.8,
                         coverage: float = 0.5) -> dict:
    """Table 8's classification accuracies, as the original's `inference_multi_objects.py`: keypoint
    k is matched to object o when its mask α_k > `alpha_threshold` covers more than `coverage` of o's pixels; each
    prototype is mapped to the majority value of each attribute among its matched objects; accuracy = correctly
    mapped matches / matches.

    Args:
        masks: `[N, K, H, W]` alpha masks; prototype_ids: int `[N, K]`; label_map: int `[N, H, W]` (entity ids);
        attributes: {name: int `[N, E]` codes per entity}.

    Returns:
        {f"{name}_accuracy": float} (0.0 when no keypoint is matched), and "matched": the number of matches.
    """
    pairs = []  # (image, keypoint, entity)
    for n in range(len(masks)):
        entities = [e for e in np.unique(label_map[n]) if e > 0]
        for k in range(masks.shape[1]):
            on = masks[n, k] > alpha_threshold
            for e in entities:
                region = label_map[n] == e
                if np.count_nonzero(on & region) > coverage * np.count_nonzero(region):
                    pairs.append((n, k, e))
                    break
    scores = {"matched": len(pairs)}
    for name, codes in attributes.items():
        if not pairs:
            scores[f"{name}_accuracy"] = 0.0
            continue
        protos = np.array([prototype_ids[n, k] for n, k, _ in pairs])
        values = np.array([codes[n, e] for n, _, e in pairs])
        confusion = np.zeros((protos.max() + 1, values.max() + 1), np.int64)
        np.add.at(confusion, (protos, values), 1)
        scores[f"{name}_accuracy"] = float(confusion.max(axis=1).sum() / len(pairs))
    return scores


def run_tusk_clevr(config: TUSKCLEVRExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains TUSK on CLEVR6 (best validation foreground ARI kept), scores CLEVR6 and CLEVR10 test as Table 8.

    Raises:
        FileNotFoundError: naming `config.data.path` when the file is missing (before anything is built).

    Returns:
        dict with "metrics" ({clevr6,clevr10}_{ari,shape_accuracy,color_accuracy,size_accuracy}), "history",
        "best_step", "setting", "examples".
    """
    splits = config.data.load()
    result = fit_tusk(config.model, config.train, splits["train"]["images"], splits["val"], OBJECT_DISCOVERY,
                      run_dir=run_dir)
    metrics, predicted_ids = {}, {}
    for name, split in (("clevr6", splits["test"]), ("clevr10", splits["test_clevr10"])):
        out = predict_keypoints(result.model, split["images"], keys=("keypoints", "masks", "prototype_ids"))
        predicted_ids[name] = out["prototype_ids"]
        metrics[f"{name}_ari"] = object_discovery_scores(out["masks"], split["label_map"])["ari"]
        found = attribute_accuracies(out["masks"], out["prototype_ids"], split["label_map"],
                                     {key: split[key] for key in CLEVR_ATTRIBUTES})
        metrics.update({f"{name}_{key}": value for key, value in found.items() if key != "matched"})
    size, count = config.data.input_size, min(8, len(splits["test"]["images"]))
    images = splits["test"]["images"][:count]
    tusk_figures = figure_examples(result.model, images, predicted_ids["clevr6"])  # holds the images' keypoints
    return {
        "metrics": metrics, "history": result.history, "best_step": result.best_step,
        "setting": f"{config.train.steps} steps, best val ARI at step {result.best_step}",
        "examples": {"images": images, "true_boxes": None,
                     "pred_boxes": list(keypoint_boxes(tusk_figures["outputs"]["keypoints"], (size, size), size / 8)),
                     "tusk": tusk_figures},
    }
