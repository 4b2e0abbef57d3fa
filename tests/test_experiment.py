"""Experiments end to end on tiny configs, checked against an independent scipy pipeline."""
import numpy as np
import pytest
from scipy import ndimage

from tfobj import data, experiment, metrics
from tfobj.models.baselines.conncomp import ConnComp, ConnCompTracker

TINY_DETECTION = experiment.ConnCompDetectionExperiment(
    num_tune_images=40, num_test_images=60, thresholds=(0.05, 0.6, 1.5, 2.9), seed=3
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_detection_counts_and_ap_match_a_scipy_pipeline():
    result = experiment.run_conncomp_detection(TINY_DETECTION)
    tau = result["threshold"]
    assert tau in TINY_DETECTION.thresholds
    assert result["tuning"][tau] == max(result["tuning"].values())
    test = data.scattered_mnist(data.ScatteredMNISTConfig(), "test", 60, seed=3)
    boxes, counts = [], []
    for image in test["images"]:
        labels, count = ndimage.label(np.abs(image).sum(-1) >= tau)
        counts.append(count)
        boxes.append(np.array([[s[0].start / 48, s[1].start / 48, s[0].stop / 48, s[1].stop / 48]
                               for s in ndimage.find_objects(labels)], np.float32).reshape(-1, 4))  # float32, as the layer
    expected_ap = metrics.average_precision(boxes, [np.ones(len(b)) for b in boxes], test["boxes"],
                                            num_gt=test["num_objects"])
    assert result["metrics"]["ap"] == pytest.approx(expected_ap, abs=1e-9)
    assert result["metrics"]["count_accuracy"] == pytest.approx(np.mean(np.array(counts) == test["num_objects"]))
    assert len(result["examples"]["images"]) == 8


def test_tracking_is_perfect_where_each_frame_has_one_component():
    """One digit per video never meets another object, so wherever its ink is a single 4-connected
    component in every frame (checked with scipy), ConnComp must track it perfectly: MOTA 1 and
    MOTP 0 (at a threshold below any ink value, the component's box is the inked extent: IoU 1)."""
    config = data.ScatteredMNISTVideoConfig(max_digits=1)
    videos = data.scattered_mnist_videos(config, "test", 30, seed=1)
    parts = np.array([[ndimage.label(frame.sum(-1) >= 1e-6)[1] for frame in video] for video in videos["videos"]])
    clean = np.flatnonzero((parts == 1).all(axis=1))
    assert len(clean) >= 10  # most digits are 4-connected; enough cases for the test to mean something
    tracker = ConnCompTracker(ConnComp(threshold=1e-6))
    tracks = tracker.track(videos["videos"][clean])
    subset = {key: value[clean] for key, value in videos.items()}
    scores = experiment.tracking_scores(tracks, subset)
    assert scores["mota"] == 1.0 and scores["motp"] == pytest.approx(0.0, abs=1e-12)
    assert scores["num_objects"] == len(clean) * config.num_frames


def test_tracking_experiment_runs_and_picks_the_best_threshold():
    config = experiment.ConnCompTrackingExperiment(num_tune_videos=6, num_test_videos=6, thresholds=(0.05, 2.9))
    result = experiment.run_conncomp_tracking(config)
    assert result["threshold"] == 0.05  # 2.9 of a maximum 3.0 removes nearly all ink
    assert result["tuning"][0.05] > result["tuning"][2.9]
    assert -1.0 <= result["metrics"]["mota"] <= 1.0


def test_best_threshold_prefers_the_smallest_tie():
    assert experiment._best_threshold({0.5: 0.7, 0.1: 0.7, 0.9: 0.2}) == 0.1
