"""Experiments end to end on tiny configs, checked against an independent scipy pipeline."""
import numpy as np
import pytest
from scipy import ndimage

from tfobj import data, metrics
from tfobj.data.experiment_data import ImageData, VideoData
from tfobj.experiments.common import best_threshold, tracking_scores
from tfobj.experiments.conncomp import (
    ConnCompDetectionExperiment, ConnCompTrackingExperiment, ThresholdSearch, run_conncomp_detection,
    run_conncomp_tracking)
from tfobj.models.baselines.conncomp import ConnComp, ConnCompTracker

TINY_DETECTION = ConnCompDetectionExperiment(
    data=ImageData(num_train_images=40, num_val_images=0, num_test_images=60, seed=3),
    train=ThresholdSearch(thresholds=(0.05, 0.6, 1.5, 2.9)))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_detection_counts_and_ap_match_a_scipy_pipeline():
    result = run_conncomp_detection(TINY_DETECTION)
    tau = result["threshold"]
    assert tau in TINY_DETECTION.train.thresholds
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
    scores = tracking_scores(tracks, subset)
    assert scores["mota"] == 1.0 and scores["motp"] == pytest.approx(0.0, abs=1e-12)
    assert scores["num_objects"] == len(clean) * config.num_frames


def test_tracking_experiment_picks_the_best_threshold_and_scores_the_test_videos():
    config = ConnCompTrackingExperiment(data=VideoData(num_train_videos=6, num_val_videos=0, num_test_videos=6),
                                        train=ThresholdSearch(thresholds=(0.05, 2.9), metric="mota"))
    result = run_conncomp_tracking(config)
    assert result["threshold"] == 0.05  # 2.9 of a maximum 3.0 removes nearly all ink
    assert result["tuning"][0.05] > result["tuning"][2.9]
    # The reported scores are those of a tracker at the chosen τ on the test videos, and MOTA is
    # 1 - (misses + false positives + switches) / objects (CLEAR MOT).
    test = config.data.load("test")
    expected = tracking_scores(ConnCompTracker(ConnComp(threshold=0.05)).track(test["videos"]), test)
    assert result["metrics"] == expected
    m = result["metrics"]
    assert m["mota"] == pytest.approx(1 - (m["num_misses"] + m["num_false_positives"] + m["num_switches"])
                                      / m["num_objects"])


def test_shapes_videos_track_with_the_palette():
    """Scattered Shapes data: the tracker splits components by the scenes' palette colours."""
    from tfobj.data import ScatteredShapesVideoConfig

    videos = VideoData(scene=ScatteredShapesVideoConfig())
    assert videos.palette == tuple(tuple(float(v) for v in colour) for colour in data.PALETTE)
    assert VideoData().palette is None


def test_best_threshold_prefers_the_smallest_tie():
    assert best_threshold({0.5: 0.7, 0.1: 0.7, 0.9: 0.2}) == 0.1


def test_threshold_metric_must_fit_the_task():
    with pytest.raises(ValueError, match="tunes τ for 'mota'"):
        ConnCompTrackingExperiment(train=ThresholdSearch(metric="ap"))
    with pytest.raises(ValueError, match="tunes τ for 'ap' or 'count_accuracy'"):
        ConnCompDetectionExperiment(train=ThresholdSearch(metric="mota"))
