"""The SILOT experiment: its config checks, and a tiny run end to end (slow)."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from tfobj.data import ScatteredMNISTVideoConfig
from tfobj.data.experiment_data import VideoData
from tfobj.experiments.common import tracking_scores
from tfobj.experiments.silot import SILOTExperiment, curriculum_end_step, run_silot
from tfobj.models.silot.silot_config import SILOTConfig
from tfobj.training.train_config import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "silot"))
from test_silot import TINY  # noqa: E402  (the tiny SILOT of the model's tests)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_defaults_are_the_supplement_protocol():
    config = SILOTExperiment()
    assert config.data.scene.image_size == (48, 48) and config.data.scene.num_frames == 8  # D.1
    assert (config.data.scene.min_digits, config.data.scene.max_digits) == (1, 6)
    assert (config.data.num_train_videos, config.data.num_val_videos, config.data.num_test_videos) == (60000, 1000,
                                                                                                         1000)
    assert config.train.batch_size == 16 and config.train.learning_rate == 1e-4  # Table 1
    assert config.train.global_clipnorm == 10.0 and config.train.optimizer == "adam"
    # The early stops start once training is on whole videos: after stages of 2, 4, 6 frames (E.1).
    assert curriculum_end_step(config.model, 8) == 3 * 40000
    assert curriculum_end_step(dataclasses.replace(config.model, curriculum_max_frames=4), 8) == 40000


@pytest.mark.parametrize("change, message", [
    (dict(data=VideoData(scene=ScatteredMNISTVideoConfig(image_size=(50, 48)))), "multiples of model.cell_size"),
    (dict(data=VideoData(scene=ScatteredMNISTVideoConfig(image_size=(36, 36)))), "fewer than model.num_objects"),
    (dict(data=VideoData(num_train_videos=100, num_val_videos=0, num_test_videos=10)), "num_val_videos must be"),
    (dict(data=VideoData(num_train_videos=100, num_val_videos=10, num_test_videos=0)), "num_test_videos must be"),
    (dict(data=VideoData(num_train_videos=8, num_val_videos=10, num_test_videos=10)), "batch_size = 16 is more"),
    (dict(data=VideoData(scene=ScatteredMNISTVideoConfig(num_frames=1), num_val_videos=5)), "num_frames must be"),
    (dict(model=SILOTConfig(curriculum_start_frames=10), data=VideoData(num_val_videos=5)),
     "curriculum_start_frames = 10 is more"),
])
def test_bad_configs_are_refused_with_a_clear_message(change, message):
    with pytest.raises(ValueError, match=message):
        SILOTExperiment(**change)


def test_the_table1_loader_checks_the_whole_config():
    from tfobj.config import from_dict

    with pytest.raises(ValueError, match="multiples of model.cell_size"):
        from_dict(SILOTExperiment, {"data": {"scene": {"image_size": [30, 30]}}})


TINY_EXPERIMENT = SILOTExperiment(
    model=dataclasses.replace(TINY, curriculum_steps=2, training_wheels_steps=1, patience=2, max_stops=1),
    data=VideoData(scene=ScatteredMNISTVideoConfig(image_size=(24, 24), max_digits=2, num_frames=3),
                   num_train_videos=8, num_val_videos=4, num_test_videos=4),
    train=TrainConfig(steps=6, eval_every=2, batch_size=4, learning_rate=1e-3))


@pytest.mark.slow
def test_a_tiny_run_returns_the_tracking_row(tmp_path):
    """6 steps on 3-frame videos (curriculum: 2 frames for 2 steps, then 3), MOTA on validation every 2 steps;
    the test metrics are those of the kept weights' tracks."""
    result = run_silot(TINY_EXPERIMENT, run_dir=tmp_path / "run")
    assert set(result) == {"metrics", "history", "best_step", "early_stops", "setting", "examples"}
    for key in ("mota", "motp", "num_switches", "count_abs_error", "num_objects"):
        assert key in result["metrics"]
    assert [entry["step"] for entry in result["history"]] == [2, 4, 6][:len(result["history"])]
    assert all("val_mota" in entry for entry in result["history"])
    assert result["best_step"] in (2, 4, 6)
    assert len(result["examples"]["videos"]) == 3 and len(result["examples"]["pred_tracks"]) == 3
    assert result["examples"]["outputs"]["boxes"].shape == (3, 3, TINY.num_objects, 4)  # for plot_silot_objects
    assert (tmp_path / "run" / "best.weights.h5").exists() and (tmp_path / "run" / "saved_model").exists()
    assert (tmp_path / "run" / "early_stops" / "early_stops.json").exists()  # the stops' record, for a resume
    test = TINY_EXPERIMENT.data.load("test")
    assert result["metrics"]["num_objects"] == int((test["track_ids"] > 0).sum())
    assert np.isfinite(result["metrics"]["count_abs_error"])
    # The reported scores are those of the kept (best validation MOTA) weights on the test videos.
    from tfobj.models.silot.silot import SILOT

    model = SILOT(TINY_EXPERIMENT.model, seed=0)
    model(test["videos"][:1])
    model.load_weights(tmp_path / "run" / "best.weights.h5")
    np.testing.assert_equal(result["metrics"], tracking_scores(model.predict_objects(test["videos"]), test))  # NaN = NaN
