"""ConnComp experiments: detection on Scattered MNIST images (SPAIR supp. D.3) and tracking on Scattered MNIST
or Shapes videos (SILOT supp. C). The threshold τ is tuned on training-split data, then tested.

Config: `data` (scenes and split sizes; the training split is the tuning set), `train` (the τ grid and the
score it maximises: ConnComp's only "training"), and for tracking `model` (the tracker's gate).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tfobj.data.experiment_data import ImageData, VideoData
from tfobj.experiments.common import (ap_by_threshold, best_threshold, detection_scores, examples, track_examples,
                                     tracking_scores)
from tfobj.models.baselines.conncomp import ConnComp, ConnCompTracker, detect

__all__ = ["ConnCompDetectionExperiment", "ConnCompTrackingExperiment", "ThresholdSearch", "TrackerConfig",
           "ORIGINAL_THRESHOLD_GRID", "run_conncomp_detection", "run_conncomp_tracking", "tune_tracker"]

log = logging.getLogger(__name__)

# The original ConnComp threshold grid (silot@aaai_2020 run.py): 52 values of the summed RGB L1
# distance, which lies in [0, 3] for images in [0, 1].
ORIGINAL_THRESHOLD_GRID = tuple(float(v) for v in np.round(np.linspace(0.0001, 3.0001, 52), 4))


@dataclass(frozen=True)
class ThresholdSearch:
    """ConnComp's "training": the τ grid searched on the training split for the best `metric`
    (supp. D.3: "chosen by grid search"); ties go to the smallest τ."""

    thresholds: tuple[float, ...] = ORIGINAL_THRESHOLD_GRID
    metric: Literal["ap", "count_accuracy", "mota"] = "ap"


@dataclass(frozen=True)
class TrackerConfig:
    """The ConnComp tracker's matching gate (SILOT supp. C)."""

    max_distance: float | None = None  # pixels between centroids; seed: no gate; original code: 30


@dataclass(frozen=True)
class ConnCompDetectionExperiment:
    """ConnComp detection on Scattered MNIST 48×48 images with 1–5 digits (SPAIR's comparison setting)."""

    # τ is searched on num_train_images training-split images; original code: n_test = 1000.
    data: ImageData = field(default_factory=lambda: ImageData(num_train_images=1000, num_val_images=0,
                                                              num_test_images=1000))
    train: ThresholdSearch = field(default_factory=ThresholdSearch)

    def __post_init__(self):
        if self.train.metric == "mota":
            raise ValueError("ConnComp detection tunes τ for 'ap' or 'count_accuracy'; got train.metric = 'mota'")


@dataclass(frozen=True)
class ConnCompTrackingExperiment:
    """ConnComp tracking on Scattered MNIST videos (48×48, 8 frames, 1–6 digits; SILOT supp. D.1) by default."""

    model: TrackerConfig = field(default_factory=TrackerConfig)
    data: VideoData = field(default_factory=lambda: VideoData(num_train_videos=1000, num_val_videos=0,
                                                              num_test_videos=1000))
    train: ThresholdSearch = field(default_factory=lambda: ThresholdSearch(metric="mota"))

    def __post_init__(self):
        if self.train.metric != "mota":
            raise ValueError(f"ConnComp tracking tunes τ for 'mota'; got train.metric = {self.train.metric!r}")


def run_conncomp_detection(config: ConnCompDetectionExperiment) -> dict:
    """Tunes τ on training images, evaluates on test images.

    Returns:
        dict with "metrics" (ap, count_accuracy, count_abs_error on test), "ap_by_threshold" (the AP at each
        IoU threshold, `tfobj.experiments.common.ap_by_threshold`), "threshold" (chosen τ),
        "setting", "tuning" ({τ: tune score}), and "examples" (test images with true and predicted boxes).
    """
    tune = config.data.load("train")
    tuning = {}
    for tau in config.train.thresholds:
        found = detect(ConnComp(threshold=tau), tune["images"])
        tuning[tau] = detection_scores(found, tune["boxes"], tune["num_objects"])[config.train.metric]
    threshold = best_threshold(tuning)
    log.info("ConnComp detection: tau = %.4f (%s on %d training images = %.4f)",
             threshold, config.train.metric, len(tune["images"]), tuning[threshold])

    test = config.data.load("test")
    found = detect(ConnComp(threshold=threshold), test["images"])
    return {
        "metrics": detection_scores(found, test["boxes"], test["num_objects"]),
        "ap_by_threshold": ap_by_threshold(found, test["boxes"], test["num_objects"]),
        "threshold": threshold,
        "setting": f"τ = {threshold:.4g}",
        "tuning": tuning,
        "examples": examples(test["images"], test["boxes"], test["num_objects"], found),
    }


def _tracker(config: ConnCompTrackingExperiment, threshold: float) -> ConnCompTracker:
    return ConnCompTracker(ConnComp(threshold=threshold, palette=config.data.palette),
                           max_distance=config.model.max_distance)


def tune_tracker(config: ConnCompTrackingExperiment) -> tuple[ConnCompTracker, float, dict]:
    """The tracker with τ tuned for MOTA on the training videos (ties to the smallest τ).

    Returns:
        `(tracker, τ, {τ: training MOTA})`.
    """
    tune = config.data.load("train")
    tuning = {}
    for tau in config.train.thresholds:
        tuning[tau] = tracking_scores(_tracker(config, tau).track(tune["videos"]), tune)["mota"]
    threshold = best_threshold(tuning)
    log.info("ConnComp tracking (%s): tau = %.4f (MOTA on %d training videos = %.4f)",
             type(config.data.scene).__name__, threshold, len(tune["videos"]), tuning[threshold])
    return _tracker(config, threshold), threshold, tuning


def run_conncomp_tracking(config: ConnCompTrackingExperiment) -> dict:
    """Tunes τ for MOTA on training videos, evaluates on test videos.

    Returns:
        dict with "metrics" (mota, motp, num_switches, … on test), "threshold", "setting", "tuning" and
        "examples" (first frames of test videos with boxes).
    """
    tracker, threshold, tuning = tune_tracker(config)
    test = config.data.load("test")
    tracks = tracker.track(test["videos"])
    return {
        "metrics": tracking_scores(tracks, test),
        "threshold": threshold,
        "setting": f"τ = {threshold:.4g}",
        "tuning": tuning,
        "examples": track_examples(test, tracks),
    }
