"""reproduce/tusk_object_discovery.py and reproduce/tusk_mnist_hard.py end to end on tiny configs."""
import json

import pytest

TINY_MODEL = ["model.num_prototypes=4", "model.feature_channels=8", "model.base_width=4", "model.groups=2",
              "model.inner_prototype_steps=1", "model.num_projections=8", "model.kernel_size=5"]
TINY_TRAIN = ["train.steps=1", "train.eval_every=1", "train.batch_size=2"]


def overrides(prefix, items):
    return [arg for item in items for arg in ("--set", prefix + item)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_object_discovery_skips_clevr_naming_the_missing_file(load_script, tmp_path, capsys):
    script = load_script("tusk_object_discovery")
    missing = tmp_path / "nowhere" / "clevr_with_masks_train.tfrecords"
    record = script.main(["--only", "clevr6", "--out", str(tmp_path / "out"), "--set", f"clevr6.data.path={missing}"])
    printed = capsys.readouterr().out
    assert "Skipped clevr6" in printed and str(missing) in printed
    assert record["rows"] == {} and str(missing) in record["skipped"]["clevr6"]


def test_full_mode_configs_are_table_10(load_script):
    discovery, mnist = load_script("tusk_object_discovery"), load_script("tusk_mnist_hard")
    config = discovery.ObjectDiscoveryConfig()
    assert config.tetrominoes.model.num_prototypes == 114 and config.clevr6.model.num_prototypes == 48
    assert config.tetrominoes.train.steps == 660_000 and config.clevr6.data.input_size == 112
    assert list(discovery.ROWS) == ["tetrominoes", "clevr6"] and mnist.main.__module__ == "tusk_mnist_hard"


@pytest.mark.slow  # each traces a TUSK training step: minutes on a loaded 2-core CPU
def test_object_discovery_tetrominoes_end_to_end(load_script, tmp_path, capsys):
    script = load_script("tusk_object_discovery")
    out = tmp_path / "out"
    sizes = ["data.num_train_images=4", "data.num_val_images=2", "data.num_test_images=2", "data.input_size=16"]
    record = script.main(["--only", "tetrominoes", "--out", str(out)]
                         + overrides("tetrominoes.", TINY_MODEL + TINY_TRAIN + sizes))
    printed = capsys.readouterr().out
    assert "Quick mode" in printed and "| tetrominoes (1 steps" in printed and "| ari |" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["tetrominoes"]["data"]["input_size"] == 16
    assert -1 <= saved["rows"]["tetrominoes"]["metrics"]["ari"] <= 1
    assert record["rows"]["tetrominoes"]["metrics"] == saved["rows"]["tetrominoes"]["metrics"]
    assert (out / "tetrominoes.png").stat().st_size > 1000
    for figure in ("tetrominoes_keypoints.png", "tetrominoes_prototypes.png"):  # keypoints and masks; the bank
        assert (out / figure).stat().st_size > 1000


@pytest.mark.slow
def test_mnist_hard_end_to_end(load_script, tmp_path, capsys):
    script = load_script("tusk_mnist_hard")
    out = tmp_path / "out"
    sizes = ["data.num_train_images=4", "data.num_val_images=2", "data.num_test_images=2"]
    record = script.main(["--out", str(out)] + overrides("", TINY_MODEL + TINY_TRAIN + sizes))
    printed = capsys.readouterr().out
    assert "| detection_accuracy |" in printed and "| classification_accuracy |" in printed
    saved = json.loads((out / "results.json").read_text())
    assert 0 <= saved["metrics"]["detection_accuracy"] <= 1 and saved["best_step"] == 1
    assert record["metrics"] == saved["metrics"] and (out / "tusk_mnist_hard.png").stat().st_size > 1000
    assert (out / "tusk_mnist_hard_keypoints.png").stat().st_size > 1000
    assert (out / "tusk_mnist_hard_prototypes.png").stat().st_size > 1000


def test_table1_rows_are_table_10_in_full_mode_and_cut_in_quick_mode(load_script):
    from tfobj.cli import load_config

    table1 = load_script("table1")
    assert {"tusk_mnist_hard", "tusk_tetrominoes"} <= set(table1.ROWS)
    full = table1.Table1Config()
    assert full.tusk_tetrominoes.data.input_size == 112 and full.tusk_tetrominoes.model.kernel_size == 27
    assert full.tusk_mnist_hard.train.batch_size == 40 and full.tusk_mnist_hard.model.num_keypoints == 9
    quick = load_config(table1.Table1Config, table1.cli.ROOT / "configs" / "table1.toml", mode="quick")
    assert quick.tusk_tetrominoes.data.input_size == 40 and quick.tusk_tetrominoes.model.num_prototypes == 114
    # Full mode keeps the seed's choices; quick Tetrominoes takes the original code's two options (docs/tusk.md).
    assert (full.tusk_tetrominoes.model.equivariance_heatmap_map, full.tusk_tetrominoes.model.descriptor_sampling) \
        == ("heatmap", "bilinear")
    assert (quick.tusk_tetrominoes.model.equivariance_heatmap_map, quick.tusk_tetrominoes.model.descriptor_sampling) \
        == ("scoremap", "truncate")
    discovery_quick = load_config(load_script("tusk_object_discovery").ObjectDiscoveryConfig,
                                  table1.cli.ROOT / "configs" / "tusk_object_discovery.toml", mode="quick")
    assert discovery_quick.tetrominoes.model == quick.tusk_tetrominoes.model  # the two quick runs agree
    assert discovery_quick.tetrominoes.train == quick.tusk_tetrominoes.train
    assert quick.tusk_mnist_hard.train.steps == 120 and quick.tusk_mnist_hard.model == full.tusk_mnist_hard.model
    published = table1.cli.published("table1")
    assert set(published["tusk_mnist_hard"]["metrics"]) == {"detection_accuracy", "classification_accuracy"}
    assert "UNVERIFIED" in published["tusk_tetrominoes"]["source"]
