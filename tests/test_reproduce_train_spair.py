"""reproduce/train_spair.py: strict config, run directory contents, resume by re-running."""
import json

import numpy as np
import pytest
import tensorflow as tf

TINY = ["model.backbone_filters=8", "model.backbone_features=8", "model.cell_hidden=[8, 8]",
        "model.passthrough_features=4", "model.encoder_hidden=[8, 8]", "model.decoder_hidden=[8, 8]",
        "model.num_what=4", "data.scene.image_size=[24, 24]", "data.scene.max_digits=2", "data.num_train_images=16",
        "data.num_val_images=4", "data.num_test_images=4", "train.steps=4", "train.eval_every=2",
        "train.batch_size=4"]


@pytest.fixture(scope="module")
def train_spair(load_script):
    return load_script("train_spair")


def overrides(items):
    return [arg for item in items for arg in ("--set", item)]


def test_unknown_key_is_rejected(train_spair, tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['model.learing_rate'\]"):
        train_spair.main(["--run-dir", str(tmp_path)] + overrides(["model.learing_rate=1e-3"]))


@pytest.mark.slow
def test_run_directory_holds_config_results_tensorboard_and_saved_model(train_spair, tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    result = train_spair.main(["--run-dir", str(run_dir)] + overrides(TINY))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["train"]["steps"] == 4 and config["config"]["model"]["num_what"] == 4
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["metrics"] == pytest.approx(result["metrics"])
    assert [entry["step"] for entry in saved["history"]] == [2, 4] and "val_ap" in saved["history"][0]
    assert saved["best_step"] in (2, 4) and saved["git_commit"]
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    serve = tf.saved_model.load(str(run_dir / "saved_model")).signatures["serving_default"]
    out = serve(images=tf.zeros([1, 24, 24, 3]))
    assert out["boxes"].shape == (1, 4, 4) and np.isfinite(out["reconstruction"].numpy()).all()
