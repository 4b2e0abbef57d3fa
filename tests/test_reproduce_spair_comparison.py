"""reproduce/spair_comparison.py on a tiny config: table, JSON, figure; the CI formula."""
import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

TINY = ["digit_counts=[1, 2]", "repeats=2",
        "spair.model.backbone_filters=8", "spair.model.backbone_features=8", "spair.model.cell_hidden=[8, 8]",
        "spair.model.passthrough_features=4", "spair.model.encoder_hidden=[8, 8]",
        "spair.model.decoder_hidden=[8, 8]", "spair.model.num_what=4", "spair.train.batch_size=4",
        "spair.data.scene.image_size=[24, 24]", "spair.data.num_train_images=8", "spair.data.num_val_images=4",
        "spair.data.num_test_images=4", "spair.train.steps=2", "spair.train.eval_every=1",
        "conncomp.data.scene.image_size=[24, 24]", "conncomp.data.num_train_images=6",
        "conncomp.data.num_test_images=6", "conncomp.train.thresholds=[0.1, 1.0]"]


@pytest.fixture(scope="module")
def comparison(load_script):
    return load_script("spair_comparison")


def test_mean_and_ci_is_the_student_t_95_interval(comparison):
    """The original figures' error bars: scipy's t.interval(0.95, n - 1, mean, sem)."""
    values = np.array([0.5, 0.7, 0.6, 0.9])
    mean, half_width = comparison.mean_and_ci(values)
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(0.675) and half_width == pytest.approx((high - low) / 2, rel=1e-9)
    assert half_width == pytest.approx(3.182446 * values.std(ddof=1) / 2, rel=1e-6)  # t_{0.975, 3}
    assert comparison.mean_and_ci([0.4]) == (0.4, 0.0)


def test_rebuild_from_results_json(comparison, tmp_path, capsys):
    """--from-results writes the table and figure from a finished run's record, and says so."""
    config = comparison.load_config(comparison.ComparisonConfig, comparison.DEFAULT_CONFIG, mode="quick")
    config = dataclasses.replace(config, digit_counts=(1, 3))
    record = {"command": "python reproduce/spair_comparison.py", "mode": "quick", "git_commit": "abcdef123456",
              "wall_time_seconds": 12.0, "config": dataclasses.asdict(config),
              "ap": {"spair": {"1": [0.5, 0.7], "3": [0.4, 0.4]}, "conncomp": {"1": [0.9, 0.9], "3": [0.8, 0.6]}}}
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    comparison.main(["--from-results", str(path)])
    table = (path.parent / "spair_comparison.md").read_text()
    assert "| 1 | 0.600 ± {:.3f} | 0.900 ± 0.000 |".format(12.706205 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2)) in table
    assert "| 3 | 0.400 ± 0.000 |" in table and "commit abcdef1" in table and "repeats: 6 -> 2" in table
    assert (path.parent / "spair_comparison.png").stat().st_size > 1000
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a spair_comparison results.json"):
        comparison.main(["--from-results", str(path)])


@pytest.mark.slow
def test_tiny_run_writes_table_json_and_figure(comparison, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    record = comparison.main(["--out", str(out)] + [arg for item in TINY for arg in ("--set", item)])
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["ap"]["spair"]) == {"1", "2"} and all(len(v) == 2 for v in saved["ap"]["conncomp"].values())
    assert record["ap"] == saved["ap"]
    table = (out / "spair_comparison.md").read_text()
    spair_1 = saved["ap"]["spair"]["1"]
    assert "| 1 | {:.3f} ± {:.3f} |".format(*comparison.mean_and_ci(spair_1)) in table
    assert "repeats: 6 -> 2" in table and "figure only" in table
    assert (out / "spair_comparison.png").stat().st_size > 1000


def test_unknown_key_is_rejected(comparison, tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        comparison.main(["--out", str(tmp_path), "--set", "spair.train.stpes=3"])


def test_each_condition_has_exactly_n_digits_and_the_repeat_s_seeds(comparison):
    config = comparison.ComparisonConfig()
    spair = comparison.condition(config.spair, 7, 3)
    assert (spair.data.scene.min_digits, spair.data.scene.max_digits, spair.data.seed, spair.train.seed) == (7, 7, 3, 3)
    assert spair.model == config.spair.model and spair.train.steps == config.spair.train.steps
    conncomp = comparison.condition(config.conncomp, 1, 0)
    assert (conncomp.data.scene.min_digits, conncomp.data.scene.max_digits, conncomp.data.seed) == (1, 1, 0)
