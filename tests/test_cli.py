"""What every reproduce script shares (tfobj/cli.py): the whole config checked before any data is made, a
config error as one line, and a run directory that refuses a run of another config."""
import json
import re

import pytest

from tfobj import cli
from tfobj.experiments.spair import SPAIRExperiment


@pytest.fixture(scope="module")
def train_spair(load_script):
    return load_script("train_spair")


@pytest.mark.parametrize("override, message", [
    ("data.scene.image_size=[50, 50]", r"data.scene.image_size must be multiples of model.cell_size = 12"),
    ("train.steps=3", r"train.steps must be a multiple of train.eval_every"),
    ("train.eval_every=7000", r"train.steps must be a multiple of train.eval_every"),
    ("data.num_val_images=0", r"data.num_val_images must be at least 1"),
    ("train.strategy=gpus", r"config key 'train.strategy' must be one of"),
    ("model.num_wat=3", r"unknown config key\(s\) \['model.num_wat'\]"),
])
def test_config_errors_come_before_any_data_as_one_line(train_spair, tmp_path, monkeypatch, capsys, override, message):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TFOBJ_CACHE", str(cache))
    with pytest.raises(SystemExit) as exit_info:
        cli.entry(lambda: train_spair.main(["--run-dir", str(tmp_path / "run"), "--set", override]))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ")
    assert re.search(message, error), error
    assert not cache.exists() and not (tmp_path / "run").exists()  # nothing generated, nothing written


def test_a_run_directory_refuses_another_config_unless_restarted(tmp_path):
    run = tmp_path / "run"
    first = SPAIRExperiment()
    cli.prepare_run_dir(run, first)
    (run / "config.json").write_text(json.dumps({"config": cli.to_dict(first)}))
    (run / "backup").mkdir()
    (run / "best.json").write_text("{}")
    cli.prepare_run_dir(run, first)  # the same config: resumes, keeps its files
    assert (run / "backup").exists()
    other = cli.load_config(SPAIRExperiment, overrides=["train.learning_rate=3e-4", "model.num_what=8"])
    with pytest.raises(cli.ConfigError, match=r"differing keys: model.num_what, train.learning_rate\); use another"):
        cli.prepare_run_dir(run, other)
    assert (run / "backup").exists()
    cli.prepare_run_dir(run, other, restart=True)
    assert not any(run.iterdir())  # the earlier run's files are gone
