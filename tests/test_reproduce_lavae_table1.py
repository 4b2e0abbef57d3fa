"""reproduce/lavae_table1.py (and table1.py's lavae / beta_vae rows) end to end on tiny settings: the table beside
the published numbers, results.json, the figures, the full-mode protocol and the quick cuts, strict keys."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ["model.filters=4", "model.inference_blocks=1", "model.location_head_layers=2", "model.appearance_size=4",
              "model.sprite_blocks=1", "model.sprite_initial_channels=4", "model.auxiliary_filters=4",
              "model.auxiliary_latent_channels=2"]
TINY_VAE = ["model.filters=4", "model.latent_channels=2", "model.blocks_per_stage=[1, 1, 1]"]
TINY_RUN = ["train.steps=1", "train.eval_every=1", "train.batch_size=2", "data.num_train_images=4",
            "data.num_val_images=2", "data.num_test_images=2", "data.num_test7_images=2"]


def overrides(prefix, items):
    return [arg for item in items for arg in ("--set", f"{prefix}.{item}")]


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("lavae_table1")


def test_full_mode_is_the_papers_protocol_and_quick_cuts_it(script):
    from tfobj.config import load_config

    full = load_config(script.LAVAETable1Config, ROOT / "configs" / "lavae_table1.toml", mode="full")
    assert full == script.LAVAETable1Config()
    assert full.multi_mnist_1k.lavae.data.scene.pool_size == 1000
    assert full.multi_mnist_10k.beta_vae.data.scene.pool_size == 10000
    dsprites = full.multi_dsprites.lavae
    assert (dsprites.model.image_channels, dsprites.model.sprite_size, dsprites.model.location_learning_rate) == (
        3, 21, 5e-4)
    assert full.multi_dsprites.beta_vae.model.image_channels == 3
    for column in (full.multi_mnist_1k, full.multi_mnist_10k, full.multi_dsprites):
        assert column.lavae.train.steps == 200_000 and column.lavae.data.num_train_images == 190_000
        assert column.lavae.model.warmup_steps == 30_000 and column.beta_vae.model.beta_anneal_steps == 100_000
    quick = load_config(script.LAVAETable1Config, ROOT / "configs" / "lavae_table1.toml", mode="quick")
    for column in (quick.multi_mnist_1k, quick.multi_mnist_10k, quick.multi_dsprites):
        lavae, vae = column.lavae, column.beta_vae
        # Every schedule scaled by the run length's factor (1,200 / 200,000).
        factor = lavae.train.steps / 200_000
        assert lavae.model.warmup_steps == lavae.model.warmup_anneal_steps == round(30_000 * factor)
        assert lavae.model.temperature_anneal_steps == lavae.model.location_decay_steps == round(100_000 * factor)
        assert vae.model.beta_anneal_steps == round(100_000 * factor) and vae.train == lavae.train
        assert vae.data == lavae.data
    assert quick.repeats == 2


def test_published_numbers_are_table_1(script):
    from tfobj import cli

    published = cli.published("lavae_table1")
    assert published["multi_mnist_1k"]["lavae"]["metrics"] == {"nll": 42.2, "count_accuracy": 0.999}
    assert script.paper_cell(published["multi_mnist_10k"]["lavae"], "nll") == "60.4 ± 2.8"
    assert script.paper_cell(published["multi_dsprites"]["beta_vae"], "nll") == "45.8 ± 0.7"
    assert script.paper_cell(published["multi_dsprites"]["lavae"], "count_accuracy") == "≥ 0.999"
    assert script.paper_cell(published["multi_dsprites"]["beta_vae"], "count_accuracy") == "—"


def test_summary_is_mean_and_sample_standard_deviation(script):
    assert script.summary([1.0, 2.0, 3.0]) == "2.000 ± 1.000"
    assert script.summary([0.5]) == "0.500"


def test_table_names_the_data_each_run_used(script):
    from tfobj import cli

    setting = "multi-MNIST-10k (pool of 4000 digits: the source is short), 1200 steps, best val bound at step 1000"
    runs = {"multi_mnist_10k": {"lavae": [{"metrics": {"nll": 400.0, "count_accuracy": 0.99}, "setting": setting,
                                           "wall_seconds": 690.0},
                                          {"metrics": {"nll": 320.0, "count_accuracy": 1.0}, "setting": setting}]}}
    table = script.markdown_table(runs, cli.published("lavae_table1"), "# header")
    assert "| multi-MNIST-10k | LAVAE | nll | 360.000 ± 56.569 | 60.4 ± 2.8 | Table 1 |" in table
    assert f"- multi_mnist_10k, lavae, seed 0: {setting}; 11.5 min" in table
    assert f"- multi_mnist_10k, lavae, seed 1: {setting}\n" in table
    runs["multi_mnist_10k"]["lavae"] = [dict(runs["multi_mnist_10k"]["lavae"][0], seed=3)]  # a run of first_seed=3
    assert f"- multi_mnist_10k, lavae, seed 3: {setting}; 11.5 min" in script.markdown_table(runs, cli.published("lavae_table1"), "#")


def test_first_seed_must_be_a_nonnegative_integer(script):
    assert script.LAVAETable1Config(first_seed=2).first_seed == 2
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="first_seed must be an integer >= 0"):
            script.LAVAETable1Config(first_seed=bad)


def test_main_trains_seeds_first_seed_onwards_and_names_them(script, tmp_path, monkeypatch, capsys):
    """main's seed loop without training: fake runs record the seed each experiment was given."""
    given = []

    def fake_run(experiment):
        given.append(experiment.train.seed)
        return {"metrics": {"nll": float(experiment.train.seed)}, "setting": "fake",
                "examples": dict.fromkeys(("images", "true_boxes", "pred_boxes"))}

    monkeypatch.setattr(script, "MODELS", {"lavae": fake_run, "beta_vae": fake_run})
    monkeypatch.setattr(script.figures, "plot_detections", lambda *args, **kwargs: None)
    monkeypatch.setattr(script.figures, "plot_lavae_figures", lambda *args, **kwargs: None)
    record = script.main(["--only", "multi_dsprites", "--out", str(tmp_path), "--set", "repeats=2",
                          "--set", "first_seed=2"])
    assert given == [2, 3, 2, 3]  # LAVAE's seeds, then the beta-VAE's
    runs = record["runs"]["multi_dsprites"]
    assert [r["seed"] for r in runs["lavae"]] == [r["seed"] for r in runs["beta_vae"]] == [2, 3]
    printed = capsys.readouterr().out
    assert "(quick mode, seeds 2-3)" in printed and "- multi_dsprites, lavae, seed 3: fake" in printed
    assert "| multi-dSprites | LAVAE | nll | 2.500 ± 0.707 |" in printed


def test_check_resolves_the_quick_config_without_running(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        script.main(["--check", "--out", str(tmp_path), "--set", "multi_dsprites.lavae.train.steps=400",
                     "--set", "multi_dsprites.lavae.train.eval_every=200"])
    assert stop.value.code == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["repeats"] == 2 and resolved["multi_dsprites"]["lavae"]["train"]["steps"] == 400
    assert resolved["multi_mnist_10k"]["beta_vae"]["data"]["num_train_images"] == 10000
    assert not (tmp_path / "results.json").exists()


def test_unknown_key_is_rejected(script, tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        script.main(["--out", str(tmp_path), "--set", "multi_mnist_1k.lavae.data.num_tset_images=3"])


@pytest.mark.slow  # 4 tiny trainings and bounds: ~1 min unloaded, mostly tracing
def test_tiny_run_writes_table_results_and_figures(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = (["--only", "multi_dsprites", "--out", str(out), "--set", "repeats=2"]
            + overrides("multi_dsprites.lavae", TINY_MODEL + TINY_RUN)
            + overrides("multi_dsprites.beta_vae", TINY_VAE + TINY_RUN))
    record = script.main(args)
    printed = capsys.readouterr().out
    assert "Quick mode" in printed and "multi_dsprites.lavae.train.steps: 200000 -> 1" in printed
    assert "| multi-dSprites | LAVAE | nll |" in printed and "| 43.9 ± 1.0 |" in printed
    assert "| multi-dSprites | LAVAE | count_accuracy_7 |" in printed and "| 45.8 ± 0.7 |" in printed
    saved = json.loads((out / "results.json").read_text())
    runs = saved["runs"]["multi_dsprites"]
    assert len(runs["lavae"]) == len(runs["beta_vae"]) == 2 and record["runs"]["multi_dsprites"] == runs
    assert set(runs["beta_vae"][1]["metrics"]) == {"nll", "nll_7"}
    assert (out / "multi_dsprites_lavae.png").stat().st_size > 1000
    assert (out / "multi_dsprites_beta_vae.png").stat().st_size > 1000
    for figure in ("lavae_inference", "lavae_samples", "lavae_fixed_count", "beta_vae_samples"):  # the first seed's
        assert (out / f"multi_dsprites_{figure}.png").stat().st_size > 1000


@pytest.mark.slow  # 2 tiny trainings (tests/experiments runs the same functions in the default suite)
def test_table1_rows_run_on_tiny_settings(load_script, tmp_path, monkeypatch, capsys):
    table1 = load_script("table1")
    config = table1.Table1Config()
    assert config.lavae == type(config.lavae)() and config.lavae.data.scene.pool_size == 1000
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    record = table1.main(["--only", "lavae,beta_vae", "--out", str(out)] + overrides("lavae", TINY_MODEL + TINY_RUN)
                         + overrides("beta_vae", TINY_VAE + TINY_RUN))
    printed = capsys.readouterr().out
    assert "| LAVAE (multi-MNIST-1k, 1 steps" in printed and "| count_accuracy_7 |" in printed
    assert "| 42.200 |" in printed and "| 51.600 |" in printed
    rows = record["rows"]
    assert set(rows["lavae"]["metrics"]) == {"nll", "count_accuracy", "nll_7", "count_accuracy_7"}
    assert (out / "lavae.png").stat().st_size > 1000 and (out / "beta_vae.png").stat().st_size > 1000
    assert (out / "lavae_inference.png").stat().st_size > 1000 and (out / "beta_vae_samples.png").stat().st_size > 1000
