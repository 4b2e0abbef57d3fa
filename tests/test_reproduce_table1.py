"""reproduce/table1.py end to end on a tiny config: table, results.json, PNG, errors."""
import json
import math

import numpy as np

import pytest


@pytest.fixture(scope="module")
def table1(load_script):
    return load_script("table1")


TINY = ["conncomp_detection.data.num_train_images=20", "conncomp_detection.data.num_test_images=20",
        "conncomp_detection.train.thresholds=[0.1, 1.0]"]


def test_quick_run_writes_table_results_and_figure(table1, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    record = table1.main(["--only", "conncomp_detection", "--out", str(out)] + sum((["--set", s] for s in TINY), []))
    printed = capsys.readouterr().out
    assert "Quick mode" in printed and "conncomp_detection.data.num_test_images: 1000 -> 20" in printed
    assert "| ConnComp (detection)" in printed and "figure only" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["mode"] == "quick" and saved["packages"]["tensorflow"]
    assert saved["config"]["conncomp_detection"]["data"]["num_test_images"] == 20
    row = saved["rows"]["conncomp_detection"]
    assert 0 <= row["metrics"]["ap"] <= 1 and row["threshold"] in (0.1, 1.0)
    assert record["rows"]["conncomp_detection"]["metrics"] == row["metrics"]
    assert (out / "conncomp_detection.png").stat().st_size > 1000
    by_threshold = row["ap_by_threshold"]  # the table's ap is their mean
    assert list(by_threshold) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert np.mean(list(by_threshold.values())) == pytest.approx(row["metrics"]["ap"], abs=1e-12)
    markdown = (out / "table1.md").read_text()
    assert markdown.count("| ConnComp (detection)") == 3  # ap and count_accuracy rows, then its AP per threshold
    assert "| system | 0.1 | 0.2 |" in markdown and f"| {by_threshold['0.9']:.3f} |" in markdown
    assert 0 < row["wall_seconds"] <= saved["wall_time_seconds"] + 0.1  # the row's time, within the run's (rounded)
    assert f"conncomp_detection {row['wall_seconds'] / 60:.1f} min" in markdown


def test_markdown_gap_column(table1):
    published = {"row": {"system": "S", "benchmark": "B", "source": "src", "metrics": {"ap": 0.5, "mota": math.nan}}}
    results = {"row": {"setting": "τ = 0.200", "metrics": {"ap": 0.75, "mota": 0.25}}}
    table = table1.markdown_table(results, published)
    assert "| ap | 0.750 | 0.500 | +0.250 |" in table
    assert "| mota | 0.250 | figure only | n/a |" in table


def test_unknown_row_and_key_are_rejected(table1, tmp_path):
    with pytest.raises(SystemExit):
        table1.main(["--only", "spiar", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown config key"):
        table1.main(["--only", "conncomp_detection", "--set", "conncomp_detection.data.num_tset_images=3",
                     "--out", str(tmp_path)])


def test_full_mode_rows_are_the_papers_protocols(table1):
    """The row configs (ROWS, one entry per row) in full mode: the SPAIR issue's and SILOT's settings."""
    config = table1.Table1Config()
    assert list(table1.ROWS) == ["spair", "conncomp_detection", "conncomp_tracking_mnist", "conncomp_tracking_shapes",
                                 "silot", "lavae", "beta_vae", "tusk_mnist_hard", "tusk_tetrominoes"]
    assert config.lavae.train.batch_size == 64 and config.lavae.train.optimizer == "adamax"  # LAVAE appendix B
    assert config.tusk_mnist_hard.train.batch_size == 40 and config.tusk_tetrominoes.train.batch_size == 76  # Table 10
    assert config.tusk_tetrominoes.model.num_keypoints == 3 and config.tusk_tetrominoes.model.kernel_size == 27
    assert config.spair.train.steps == 300000 and config.spair.train.batch_size == 32
    assert config.spair.data.num_train_images == 64000 and config.spair.data.scene.image_size == (48, 48)
    silot = config.silot  # SILOT supp. D.1, E.1, Table 1
    assert silot.data.scene.num_frames == 8 and silot.data.scene.max_digits == 6 and silot.data.num_train_videos == 60000
    assert silot.train.batch_size == 16 and silot.model.curriculum_steps == 40000 and silot.model.patience == 30000
    shapes = config.conncomp_tracking_shapes.data
    assert type(shapes.scene).__name__ == "ScatteredShapesVideoConfig" and shapes.scene.image_size == (96, 96)
    assert shapes.scene.max_shapes == 10 and shapes.palette is not None
