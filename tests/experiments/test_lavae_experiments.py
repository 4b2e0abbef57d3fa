"""tfobj.experiments.lavae: configs checked before any data, the data splits (7-object set), the sprite boxes, the
batched likelihood bound against a model with known weights, and both runs end to end on tiny settings."""
import dataclasses
import math

import numpy as np
import pytest
from scipy import special

from tfobj.data.multi_object import MultiDSpritesConfig, MultiMNISTConfig
from tfobj.experiments import lavae
from tfobj.models.baselines.conv_vae import ConvVAEConfig
from tfobj.models.lavae.lavae_config import LAVAEConfig
from tfobj.training.train_config import TrainConfig

TINY_DATA = lavae.MultiObjectData(num_train_images=8, num_val_images=2, num_test_images=3, num_test7_images=2)
TINY_LAVAE = LAVAEConfig(filters=4, inference_blocks=1, location_head_layers=2, appearance_size=4, sprite_blocks=1,
                         sprite_initial_channels=4, auxiliary_filters=4, auxiliary_latent_channels=2, max_objects=7,
                         warmup_steps=1, warmup_anneal_steps=1)
TINY_VAE = ConvVAEConfig(filters=4, latent_channels=2, blocks_per_stage=(1, 1, 1))
TINY_TRAIN = TrainConfig(steps=2, eval_every=1, batch_size=2, optimizer="adamax")


def test_full_mode_is_the_papers_protocol():
    experiment = lavae.LAVAEExperiment()
    assert experiment.model == LAVAEConfig() and experiment.train.batch_size == 64
    assert experiment.train.optimizer == "adamax" and experiment.train.learning_rate == 1e-3
    data = experiment.data
    assert (data.num_train_images, data.num_test_images, data.num_test7_images) == (190_000, 10_000, 10_000)
    assert isinstance(data.scene, MultiMNISTConfig) and data.scene.pool_size == 1000 and data.name == "multi-MNIST-1k"
    assert (data.scene.min_objects, data.scene.max_objects, data.scene.image_size) == (0, 3, (64, 64))
    baseline = lavae.BetaVAEExperiment()
    assert baseline.model == ConvVAEConfig() and baseline.data == data and baseline.train == experiment.train


@pytest.mark.parametrize("make, message", [
    (lambda: lavae.LAVAEExperiment(model=LAVAEConfig(image_channels=3)), "must be 1 for multi-MNIST-1k"),
    (lambda: lavae.BetaVAEExperiment(data=lavae.MultiObjectData(scene=MultiDSpritesConfig())),
     "must be 3 for multi-dSprites"),
    (lambda: lavae.LAVAEExperiment(model=LAVAEConfig(max_objects=6)), "max_objects must be >= 7"),
    (lambda: lavae.LAVAEExperiment(model=LAVAEConfig(image_size=(32, 32))), "must equal data.scene.image_size"),
    (lambda: lavae.LAVAEExperiment(data=lavae.MultiObjectData(scene=MultiMNISTConfig(image_size=(68, 68)))),
     "multiples of 8"),
    (lambda: lavae.MultiObjectData(num_test7_images=0), "num_test7_images must be an integer >= 1"),
    (lambda: lavae.MultiObjectData(scene=MultiMNISTConfig(image_size=(40, 40))), "cannot fit"),
])
def test_bad_configs_are_rejected_before_any_data(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_splits_and_the_seven_object_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path))
    data = dataclasses.replace(TINY_DATA, num_test_images=20, num_test7_images=4)
    test, seven = data.load("test"), data.load("test7")
    assert test["images"].shape == (20, 64, 64, 1) and set(np.unique(test["num_objects"])) <= {0, 1, 2, 3}
    assert seven["images"].shape == (4, 64, 64, 1) and np.all(seven["num_objects"] == 7)
    assert not np.array_equal(data.load("val")["images"], data.load("train")["images"][:2])
    with pytest.raises(ValueError, match="split must be one of"):
        data.load("test3")


def test_sprite_boxes_surround_the_placed_sprite():
    # Sprite 17: pixel 8 sits on the location; location (20, 30) covers rows 12..28, cols 22..38 (exclusive 29, 39).
    boxes = lavae.sprite_boxes(np.array([[20, 30], [2, 60], [-1, -1]]), 2, 17, (64, 64))
    np.testing.assert_allclose(boxes, [[12 / 64, 22 / 64, 29 / 64, 39 / 64], [0.0, 52 / 64, 11 / 64, 1.0]])
    assert lavae.sprite_boxes(np.full((3, 2), -1), 0, 17, (64, 64)).shape == (0, 4)


class _KnownWeights:
    """log w[b, s] = −Σ x_b − s·0.1 (s counted within each call): the bound is Σ x_b − log mean_s exp(−0.1 s)
    when every call asks for all samples at once."""

    def __init__(self):
        self.calls = []

    def importance_log_weights(self, images, num_samples):
        import tensorflow as tf

        self.calls.append(num_samples)
        per_image = -tf.reduce_sum(images, axis=[1, 2, 3])  # [B]
        return per_image[:, None] - 0.1 * tf.range(num_samples, dtype=tf.float32)[None]  # [B, S]


def test_likelihood_bound_batches_images_and_samples():
    images = np.random.default_rng(0).random((5, 2, 2, 1)).astype(np.float32)
    model = _KnownWeights()
    bound = lavae.likelihood_bound(model, images, num_samples=10, batch_size=2, batch_samples=10)
    expected = images.sum(axis=(1, 2, 3)) - (special.logsumexp(-0.1 * np.arange(10)) - math.log(10))
    np.testing.assert_allclose(bound, expected, rtol=1e-6)
    assert bound.shape == (5,)
    # Chunks of 4 samples: the weights restart at s = 0 in every chunk (4 + 4 + 2).
    chunked = lavae.likelihood_bound(_KnownWeights(), images, num_samples=10, batch_size=5, batch_samples=4)
    draws = np.concatenate([np.arange(4), np.arange(4), np.arange(2)])
    np.testing.assert_allclose(chunked, images.sum(axis=(1, 2, 3)) - (special.logsumexp(-0.1 * draws) - math.log(10)),
                               rtol=1e-6)


def test_the_kept_weights_are_the_lowest_validation_bound():
    assert (lavae.LIKELIHOOD.monitor, lavae.LIKELIHOOD.mode) == ("nll", "min")
    assert (lavae.LIKELIHOOD_WITH_COUNTS.monitor, lavae.LIKELIHOOD_WITH_COUNTS.mode) == ("nll", "min")


def test_runs_end_to_end_on_tiny_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path))
    monkeypatch.setattr(lavae, "likelihood_bound", _fewer_samples(lavae.likelihood_bound))
    result = lavae.run_lavae(lavae.LAVAEExperiment(model=TINY_LAVAE, data=TINY_DATA, train=TINY_TRAIN))
    metrics = result["metrics"]
    assert set(metrics) == {"nll", "count_accuracy", "nll_7", "count_accuracy_7"}
    assert 0 <= metrics["count_accuracy"] <= 1 and 0 <= metrics["count_accuracy_7"] <= 1
    # An untrained model's bound on a 64 × 64 binary image: positive, and below 4096 · log 2 + the latents' cost.
    assert 0 < metrics["nll"] < 1e5 and 0 < metrics["nll_7"] < 1e5
    assert result["best_step"] in (1, 2) and [h["step"] for h in result["history"]] == [1, 2]
    assert all("val_nll" in h and "val_count_accuracy" in h for h in result["history"])
    for split, suffix in (("test", ""), ("test7", "_7")):  # the confusion's diagonal is the count accuracy
        table = np.array(result["count_confusion"][split])
        assert table.shape == (TINY_LAVAE.max_objects + 1,) * 2
        assert np.trace(table) / table.sum() == pytest.approx(metrics[f"count_accuracy{suffix}"])
    assert np.array(result["count_confusion"]["test7"])[:7].sum() == 0  # every image there holds 7 objects
    examples = result["examples"]
    assert examples["images"].shape == (3, 64, 130, 3)  # input | 2-pixel gap | reconstruction, RGB
    assert len(examples["true_boxes"]) == len(examples["pred_boxes"]) == 3
    assert all(np.all(b[:, [1, 3]] <= 64 / 130 + 1e-6) for b in examples["true_boxes"] + examples["pred_boxes"])
    assert "multi-MNIST-1k, 2 steps" in result["setting"]
    figure = examples["lavae"]  # figure_examples' arrays (M = 7: the fixed-count panel exists)
    assert figure["prior"].shape == figure["fixed_count"].shape == (16, 64, 64, 1)
    assert figure["images"].shape[1:] == (64, 64, 1) and figure["location_maps"].shape[1:] == (64, 64)
    assert figure["sprites"].shape[1:] == (7, TINY_LAVAE.sprite_size, TINY_LAVAE.sprite_size, 1)

    baseline = lavae.run_beta_vae(lavae.BetaVAEExperiment(model=TINY_VAE, data=TINY_DATA, train=TINY_TRAIN))
    assert set(baseline["metrics"]) == {"nll", "nll_7"} and 0 < baseline["metrics"]["nll"] < 1e5
    assert all(len(b) == 0 for b in baseline["examples"]["pred_boxes"])
    assert baseline["examples"]["beta_vae"]["prior"].shape == (16, 64, 64, 1)


def _fewer_samples(bound):
    def three(model, images, num_samples=lavae.NLL_SAMPLES, **kwargs):
        return bound(model, images, min(num_samples, 3), **kwargs)
    return three


def test_count_confusion_against_a_loop():
    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 6, 200)
    expected = [[0] * 6 for _ in range(6)]
    for t, p in zip(true, pred):
        expected[t][p] += 1
    assert lavae.count_confusion(true, pred, max_objects=5) == expected
    assert lavae.count_confusion([], [], max_objects=2) == [[0] * 3] * 3


@pytest.mark.parametrize("true, pred, message", [
    ([0, 1], [0], "1-D of one length"),
    ([0, 4], [0, 1], "true_counts must lie in \\[0, max_objects = 3\\]"),
    ([0, 1], [-1, 1], "counts must lie in"),
])
def test_count_confusion_refuses_bad_input(true, pred, message):
    with pytest.raises(ValueError, match=message):
        lavae.count_confusion(true, pred, max_objects=3)
