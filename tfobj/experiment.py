"""Experiments as functions: data -> model -> evaluation -> metrics dict.

`reproduce/` scripts and the tests call these, so a table row is one function call with one
config dataclass. Defaults are the papers' protocols (full mode); configs/*.toml cut them down
for quick mode.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tfobj import data, metrics
from tfobj.models.baselines.conncomp import ConnComp, ConnCompTracker, detect
from tfobj.models.spair.spair_config import SPAIRConfig

log = logging.getLogger(__name__)

# The original ConnComp threshold grid (silot@aaai_2020 run.py): 52 values of the summed RGB L1
# distance, which lies in [0, 3] for images in [0, 1].
ORIGINAL_THRESHOLD_GRID = tuple(float(v) for v in np.round(np.linspace(0.0001, 3.0001, 52), 4))

# Scattered Shapes' six saturated colours: ConnComp splits components by nearest palette colour.
SHAPES_PALETTE = tuple(tuple(float(v) for v in colour) for colour in data.PALETTE)


@dataclass(frozen=True)
class ConnCompDetectionExperiment:
    """ConnComp detection on Scattered MNIST images (SPAIR supp. D.3).

    τ is chosen by grid search on training-split images, as the supplement says, maximising
    `tune_metric`; the chosen τ is then evaluated on test-split images.
    """

    image_size: tuple[int, int] = (48, 48)  # SPAIR comparison experiment
    min_digits: int = 1
    max_digits: int = 5
    num_tune_images: int = 1000  # training-split images used for the τ search
    num_test_images: int = 1000  # original code: n_test = 1000
    tune_metric: Literal["ap", "count_accuracy"] = "ap"
    thresholds: tuple[float, ...] = ORIGINAL_THRESHOLD_GRID
    seed: int = 0


@dataclass(frozen=True)
class ConnCompTrackingExperiment:
    """ConnComp tracking on Scattered MNIST or Shapes videos (SILOT supp. C), scored by MOTA."""

    objects: Literal["mnist", "shapes"] = "mnist"
    image_size: tuple[int, int] = (48, 48)  # SILOT supp. D.1
    min_objects: int = 1
    max_objects: int = 6  # SILOT's "trained on 1-6 digits" condition
    num_frames: int = 8  # SILOT supp. D.1
    num_tune_videos: int = 1000  # training-split videos used for the τ search
    num_test_videos: int = 1000  # SILOT supp. D.1: 1000 videos per test condition
    thresholds: tuple[float, ...] = ORIGINAL_THRESHOLD_GRID
    max_distance: float | None = None  # seed: no gate; original code: 30 px
    seed: int = 0


def _scattered_images(config: ConnCompDetectionExperiment, split: str, num_images: int) -> dict:
    image_config = data.ScatteredMNISTConfig(
        image_size=config.image_size, min_digits=config.min_digits, max_digits=config.max_digits
    )
    return data.scattered_mnist(image_config, split=split, num_images=num_images, seed=config.seed)


def _scattered_videos(config: ConnCompTrackingExperiment, split: str, num_videos: int) -> dict:
    if config.objects == "mnist":
        video_config = data.ScatteredMNISTVideoConfig(
            image_size=config.image_size, min_digits=config.min_objects, max_digits=config.max_objects,
            num_frames=config.num_frames,
        )
        return data.scattered_mnist_videos(video_config, split=split, num_videos=num_videos, seed=config.seed)
    video_config = data.ScatteredShapesVideoConfig(
        image_size=config.image_size, min_shapes=config.min_objects, max_shapes=config.max_objects,
        num_frames=config.num_frames,
    )
    return data.scattered_shapes_videos(video_config, split=split, num_videos=num_videos, seed=config.seed)


def detection_scores(detections: list[dict], true_boxes: np.ndarray, num_objects: np.ndarray) -> dict:
    """AP (mean over IoU 0.1…0.9), count accuracy and count absolute error of per-image detections
    against padded ground truth `true_boxes [N, K, 4]`, `num_objects [N]`."""
    truth = [boxes[:n] for boxes, n in zip(true_boxes, num_objects)]
    counts = np.array([len(d["boxes"]) for d in detections])
    return {
        "ap": metrics.average_precision(
            [d["boxes"] for d in detections], [d["scores"] for d in detections], truth
        ),
        "count_accuracy": metrics.count_accuracy(counts, num_objects),
        "count_abs_error": metrics.count_abs_error(counts, num_objects),
    }


def tracking_scores(tracks, videos: dict) -> dict:
    """CLEAR MOT scores of ConnComp tracks against a video dataset's ground truth."""
    sequences = []
    for v, track in enumerate(tracks):
        gt_ids, gt_boxes = [], []
        for t in range(len(track.ids)):
            valid = videos["track_ids"][v, t] > 0
            gt_ids.append(videos["track_ids"][v, t][valid])
            gt_boxes.append(videos["boxes"][v, t][valid])
        sequences.append((gt_ids, gt_boxes, track.ids, track.boxes))
    return metrics.clear_mot_many(sequences)


def _best_threshold(scores: dict[float, float]) -> float:
    """The τ with the highest score; ties go to the smallest τ."""
    best = max(scores.values())
    return min(tau for tau, score in scores.items() if score == best)


def run_conncomp_detection(config: ConnCompDetectionExperiment) -> dict:
    """Tunes τ on training images, evaluates on test images.

    Returns:
        dict with "metrics" (ap, count_accuracy, count_abs_error on test), "threshold" (chosen τ),
        "tuning" ({τ: tune score}), and "examples" (test images with true and predicted boxes,
        for figures).
    """
    tune = _scattered_images(config, "train", config.num_tune_images)
    tuning = {}
    for tau in config.thresholds:
        found = detect(ConnComp(threshold=tau), tune["images"])
        tuning[tau] = detection_scores(found, tune["boxes"], tune["num_objects"])[config.tune_metric]
    threshold = _best_threshold(tuning)
    log.info("ConnComp detection: tau = %.4f (%s on %d training images = %.4f)",
             threshold, config.tune_metric, config.num_tune_images, tuning[threshold])

    test = _scattered_images(config, "test", config.num_test_images)
    found = detect(ConnComp(threshold=threshold), test["images"])
    return {
        "metrics": detection_scores(found, test["boxes"], test["num_objects"]),
        "threshold": threshold,
        "setting": f"τ = {threshold:.4g}",
        "tuning": tuning,
        "examples": _examples(test["images"], test["boxes"], test["num_objects"], found),
    }


def _tracker(config: ConnCompTrackingExperiment, threshold: float) -> ConnCompTracker:
    palette = None if config.objects == "mnist" else SHAPES_PALETTE
    return ConnCompTracker(ConnComp(threshold=threshold, palette=palette), max_distance=config.max_distance)


def run_conncomp_tracking(config: ConnCompTrackingExperiment) -> dict:
    """Tunes τ for MOTA on training videos, evaluates on test videos.

    Returns:
        dict with "metrics" (mota, motp, num_switches, … on test), "threshold", "tuning" and
        "examples" (first frames of test videos with boxes).
    """
    tune = _scattered_videos(config, "train", config.num_tune_videos)
    tuning = {}
    for tau in config.thresholds:
        tuning[tau] = tracking_scores(_tracker(config, tau).track(tune["videos"]), tune)["mota"]
    threshold = _best_threshold(tuning)
    log.info("ConnComp tracking (%s): tau = %.4f (MOTA on %d training videos = %.4f)",
             config.objects, threshold, config.num_tune_videos, tuning[threshold])

    test = _scattered_videos(config, "test", config.num_test_videos)
    tracks = _tracker(config, threshold).track(test["videos"])
    first_frames = [{"boxes": track.boxes[0]} for track in tracks]
    return {
        "metrics": tracking_scores(tracks, test),
        "threshold": threshold,
        "setting": f"τ = {threshold:.4g}",
        "tuning": tuning,
        "examples": _examples(test["videos"][:, 0], test["boxes"][:, 0],
                              (test["track_ids"][:, 0] > 0).sum(-1), first_frames),
    }


def _examples(images, true_boxes, num_objects, found, count: int = 8) -> dict:
    return {
        "images": images[:count],
        "true_boxes": [b[:n] for b, n in zip(true_boxes[:count], num_objects[:count])],
        "pred_boxes": [d["boxes"] for d in found[:count]],
    }


@dataclass(frozen=True)
class SPAIRExperiment:
    """SPAIR trained on Scattered MNIST, evaluated by AP and count accuracy on test images.

    Full mode follows the original code: 64,000 training images, Adam 1e-4, batch 32, evaluation
    on 1,000 validation images every 1,000 steps, the best validation AP's weights evaluated on the
    test set. The original ran up to 300k steps with early stopping (patience 50k steps).
    """

    model: SPAIRConfig = field(default_factory=SPAIRConfig)
    image_size: tuple[int, int] = (48, 48)
    min_digits: int = 1
    max_digits: int = 5
    num_train_images: int = 64000  # original code: n_train
    num_val_images: int = 1000
    num_test_images: int = 1000
    steps: int = 300000  # original code: max_steps
    eval_every: int = 1000  # original code: eval_step
    seed: int = 0
    # Runtime (tfobj.training.precision): "auto" = mixed float16 and XLA on a GPU, float32 without XLA on CPU.
    precision: Literal["auto", "float32", "mixed"] = "auto"
    xla: Literal["auto", "on", "off"] = "auto"


def run_spair(config: SPAIRExperiment, run_dir: str | None = None) -> dict:
    """Trains SPAIR with `model.fit`, keeps the weights of the best validation AP, evaluates on test.

    With `run_dir`, the run keeps its files there: `tensorboard/` (losses, validation AP, reconstructions
    with boxes), `backup/` (`BackupAndRestore`: run the same command again to resume after a kill),
    `best.weights.h5` and `saved_model/` (the best weights, exported for TF Serving). Without it,
    nothing is kept.

    Returns:
        dict with "metrics" (ap, count_accuracy, count_abs_error on test), "history" (per-eval logs),
        "best_step", and "examples" for figures.
    """
    from tfobj.training.callbacks import predict_detections

    image_config = data.ScatteredMNISTConfig(
        image_size=config.image_size, min_digits=config.min_digits, max_digits=config.max_digits)
    train = data.scattered_mnist(image_config, "train", config.num_train_images, seed=config.seed)
    val = data.scattered_mnist(image_config, "val", config.num_val_images, seed=config.seed)
    test = data.scattered_mnist(image_config, "test", config.num_test_images, seed=config.seed)
    model, history = fit_spair(config, train["images"], val, run_dir=run_dir)
    val_ap = history.history["val_ap"]
    best_step = (1 + val_ap.index(max(val_ap))) * config.eval_every
    found = predict_detections(model, test["images"])
    log.info("SPAIR: best val AP %.4f at step %d", max(val_ap), best_step)
    return {
        "metrics": detection_scores(found, test["boxes"], test["num_objects"]),
        "history": history.history,
        "best_step": best_step,
        "setting": f"{config.steps} steps, best val AP at step {best_step}",
        "examples": _examples(test["images"], test["boxes"], test["num_objects"], found),
    }


def fit_spair(config: SPAIRExperiment, train_images: np.ndarray, val: dict, run_dir: str | None = None):
    """Trains SPAIR on `train_images [N, H, W, 3]` with `model.fit` and loads the weights of the best
    validation AP on `val` (a dict with images, boxes, num_objects). Uses `config`'s model, seed,
    steps and eval_every (not its data fields). `run_dir` as in `run_spair`.

    Returns:
        (model, history): the model with the best validation weights and the `keras.callbacks.History`.
    """
    import keras

    from tfobj.models.spair.spair import SPAIR
    from tfobj.training.callbacks import DetectionEvaluation, SPAIRSchedule, StopOnNaN
    from tfobj.training.optimizers import spair_optimizer
    from tfobj.training.precision import dtype_policy, jit_compile

    keras.utils.set_random_seed(config.seed)
    batches = (data.as_dataset({"images": train_images}, keys=["images"])
               .shuffle(min(len(train_images), 10000), seed=config.seed)
               .repeat().batch(config.model.batch_size, drop_remainder=True).prefetch(2))

    model = SPAIR(config.model, seed=config.seed, dtype=dtype_policy(config.precision))
    model(val["images"][:1])  # build (BackupAndRestore needs a built model)
    model.compile(optimizer=spair_optimizer(config.model, seed=config.seed), jit_compile=jit_compile(config.xla))
    log.info("SPAIR: dtype policy %s, jit_compile %s", model.dtype_policy.name, model.jit_compile)
    with tempfile.TemporaryDirectory() as work:
        directory = Path(run_dir) if run_dir is not None else Path(work)
        best = str(directory / "best.weights.h5")
        callbacks = [SPAIRSchedule(),
                     DetectionEvaluation(val["images"], val["boxes"], val["num_objects"],
                                         log_dir=None if run_dir is None else directory / "tensorboard"),
                     StopOnNaN(),  # before the checkpoints: a NaN step raises before it can be saved
                     keras.callbacks.ModelCheckpoint(best, monitor="val_ap", mode="max", save_best_only=True,
                                                     save_weights_only=True)]
        if run_dir is not None:
            callbacks += [keras.callbacks.TensorBoard(str(directory / "tensorboard")),
                          keras.callbacks.BackupAndRestore(str(directory / "backup"))]
        history = model.fit(batches, steps_per_epoch=config.eval_every,
                            epochs=max(1, config.steps // config.eval_every), verbose=2, callbacks=callbacks)
        model.load_weights(best)
        if run_dir is not None:
            from tfobj.export import export_saved_model

            export_saved_model(model, directory / "saved_model")
    return model, history
