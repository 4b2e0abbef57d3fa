"""reproduce/spair_transfer.py end to end on a tiny config: table, results.json, PNG, strict keys."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.backbone_filters=8", "model.backbone_features=8", "model.cell_hidden=[8, 8]",
        "model.passthrough_features=4", "model.encoder_hidden=[8, 8]", "model.decoder_hidden=[8, 8]",
        "model.num_what=4", "train.batch_size=4", "image_size=36", "crop_size=24", "crops_per_image=2",
        "training_conditions=[[1, 2]]", "test_counts=[1, 3]", "num_train_images=4", "num_val_images=2",
        "num_test_images=4", "repeats=2", "train.steps=2", "train.eval_every=1", "conncomp_tune_images=4",
        "conncomp.thresholds=[0.1, 1.0]"]


@pytest.fixture(scope="module")
def transfer(load_script):
    return load_script("spair_transfer")


def overrides(items):
    return [arg for item in items for arg in ("--set", item)]


def test_unknown_key_is_rejected(transfer, tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['num_tset_images'\]"):
        transfer.main(["--out", str(tmp_path)] + overrides(["num_tset_images=3"]))


def test_defaults_are_the_original_protocol_and_quick_cuts_them(transfer):
    from tfobj.config import load_config

    full = load_config(transfer.TransferConfig, ROOT / "configs" / "spair_transfer.toml", mode="full")
    assert full == transfer.TransferConfig()
    assert full.training_conditions == ((1, 5), (6, 10), (11, 15)) and full.test_counts == tuple(range(1, 21))
    assert (full.image_size, full.crop_size, full.crops_per_image, full.num_train_images, full.repeats) == (
        84, 48, 4, 25000, 8)
    quick = load_config(transfer.TransferConfig, ROOT / "configs" / "spair_transfer.toml", mode="quick")
    assert quick.training_conditions == ((1, 5),) and quick.test_counts == (1, 5, 10, 15, 20)
    assert quick.repeats == 1 and quick.train.steps == 3000 and quick.train.batch_size == 32


def test_markdown_table(transfer):
    curves = {"SPAIR 1–5": {"ap": ([0.5, 0.25], [0.1, 0.0]), "count_abs_error": ([0.0, 1.0], [0.0, 0.5]),
                            "count_01_error": ([0.0, 0.5], [0.0, 0.25])},
              "ConnComp": {"ap": ([0.75, 0.5], [0.0, 0.0]), "count_abs_error": ([0.0, 2.0], [0.0, 0.0]),
                           "count_01_error": ([0.0, 1.0], [0.0, 0.0])}}
    table = transfer.markdown_table([1, 7], curves, "# header")
    assert "| n | SPAIR 1–5 AP | SPAIR 1–5 count abs error | SPAIR 1–5 count 0-1 error | ConnComp AP |" in table
    assert "| 7 | 0.250 ± 0.000 | 1.000 ± 0.500 | 0.500 ± 0.250 | 0.500 | 2.000 | 1.000 |" in table


@pytest.mark.slow
def test_tiny_run_writes_table_results_and_figure(transfer, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    record = transfer.main(["--out", str(out)] + overrides(TINY))
    printed = capsys.readouterr().out
    assert "Quick mode" in printed and "num_train_images: 25000 -> 4" in printed and "figure only" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["mode"] == "quick" and saved["packages"]["tensorflow"] and saved["git_commit"] is not None
    assert saved["config"]["crop_size"] == 24 and saved["config"]["training_conditions"] == [[1, 2]]
    spair = saved["results"]["SPAIR 1–2"]["repeats"]
    assert len(spair) == 2 and set(spair[0]["scores"]) == {"1", "3"}
    for name in ("SPAIR 1–2", "ConnComp"):
        summary = saved["summary"][name]
        assert set(summary) == {"ap", "count_abs_error", "count_01_error"}
        assert all(0 <= v <= 1 for v in summary["ap"]["mean"] + summary["count_01_error"]["mean"])
        assert len(summary["ap"]["mean"]) == 2
    assert saved["results"]["ConnComp"]["threshold"] in (0.1, 1.0)
    assert record["summary"] == saved["summary"]
    table = (out / "spair_transfer.md").read_text()
    assert table.count("\n| 1 |") == 1 and table.count("\n| 3 |") == 1 and " ± " in table
    assert (out / "spair_transfer.png").stat().st_size > 5000
