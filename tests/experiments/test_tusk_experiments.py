"""TUSK experiments: configs validated up front, data resizing, scores against independent references, a tiny run."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tfobj import data
from tfobj.experiments import tusk
from tfobj.models.tusk.tusk_config import TUSKConfig
from tfobj.training.train_config import TrainConfig


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))


def test_full_mode_defaults_are_table_10_and_the_original_protocol():
    mnist, tetro, clevr = tusk.TUSKMNISTHardExperiment(), tusk.TUSKTetrominoesExperiment(), tusk.TUSKCLEVRExperiment()
    assert (mnist.model.num_keypoints, mnist.model.num_prototypes, mnist.train.batch_size) == (9, 10, 40)
    assert (tetro.model.num_keypoints, tetro.model.num_prototypes, tetro.model.kernel_size) == (3, 114, 27)
    assert tetro.data.input_size == 112 and tetro.train.batch_size == 76 and tetro.model.alpha_blending
    assert clevr.model.num_keypoints == 6 and clevr.data.input_size == 112 and clevr.train.batch_size == 64
    assert tusk.KEYPOINT_DETECTION.monitor == "detection_accuracy" and tusk.OBJECT_DISCOVERY.monitor == "ari"


@pytest.mark.parametrize("build, message", [
    (lambda: tusk.TetrominoesData(input_size=36), "multiple of 8"),
    (lambda: tusk.TetrominoesData(num_val_images=0), "num_val_images"),
    (lambda: tusk.MNISTHardData(num_test_images=0), "num_test_images"),
    (lambda: tusk.TUSKTetrominoesExperiment(model=TUSKConfig.preset("mnist")), "alpha_blending must be True"),
    (lambda: tusk.TUSKMNISTHardExperiment(model=TUSKConfig.preset("tetrominoes")), "alpha_blending must be False"),
    (lambda: tusk.TUSKTetrominoesExperiment(data=tusk.TetrominoesData(input_size=16)), "kernel_size = 27 exceeds"),
    (lambda: tusk.TUSKMNISTHardExperiment(data=tusk.MNISTHardData(scene=data.MNISTHardConfig(image_size=(60, 60)))),
     "multiples of 8"),
    (lambda: tusk.CLEVRData(input_size=100), "multiple of 8"),
])
def test_bad_configs_raise_before_any_data(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_tetrominoes_resized_with_the_nearest_index_rule():
    scenes = data.tetrominoes(None, "val", 3, seed=1)
    loaded = tusk.TetrominoesData(num_val_images=3, input_size=112, seed=1).load("val")
    assert loaded["images"].shape == (3, 112, 112, 3) and loaded["label_map"].shape == (3, 112, 112)
    for i in range(112):  # PyTorch's nearest: source index floor(i * 35 / 112)
        for j in (0, 50, 111):
            np.testing.assert_array_equal(loaded["images"][:, i, j], scenes["image"][:, i * 35 // 112, j * 35 // 112])
            np.testing.assert_array_equal(loaded["label_map"][:, i, j],
                                          scenes["label_map"][:, i * 35 // 112, j * 35 // 112])


def test_object_discovery_score_is_sklearns_foreground_ari():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=(5, 16, 16))
    masks = rng.random((5, 3, 16, 16))
    got = tusk.object_discovery_scores(masks, truth)["ari"]
    predicted = masks.argmax(axis=1)
    expected = np.mean([adjusted_rand_score(t[t > 0], p[t > 0]) for t, p in zip(truth, predicted)])
    assert got == pytest.approx(expected, abs=1e-12)


def test_keypoints_at_the_true_centres_score_one_and_shifted_ones_zero():
    scenes = data.mnist_hard(None, "test", 4, seed=0)
    keypoints = scenes["centres"] - 0.5  # pixel indices, as the model returns them
    scores = tusk.keypoint_scores(keypoints, scenes["classes"], scenes, num_prototypes=10)
    assert scores == {"detection_accuracy": 1.0, "classification_accuracy": 1.0}
    far = tusk.keypoint_scores(keypoints + 40.0, scenes["classes"], scenes, num_prototypes=10)
    assert far["detection_accuracy"] < 0.5


def test_keypoint_boxes_are_fixed_squares_around_the_pixel_centres():
    boxes = tusk.keypoint_boxes(np.array([[[39.5, 9.5]]]), (80, 80))
    np.testing.assert_allclose(boxes, [[[30 / 80, 0.0, 50 / 80, 20 / 80]]])


def test_attribute_accuracies_by_hand():
    label_map = np.zeros((1, 4, 4), int)
    label_map[0, :2, :2], label_map[0, 2:, 2:] = 1, 2
    masks = np.zeros((1, 3, 4, 4))
    masks[0, 0, :2, :2] = 0.9  # covers object 1
    masks[0, 1, 2:, 2:] = 0.9  # covers object 2
    masks[0, 2, 0, 3] = 0.9  # covers no object
    shapes = np.array([[0, 1, 2, 0]])
    same = tusk.attribute_accuracies(masks, np.array([[0, 0, 1]]), label_map, {"shape": shapes})
    assert same == {"matched": 2, "shape_accuracy": 0.5}  # one prototype for two shapes: majority gets one
    apart = tusk.attribute_accuracies(masks, np.array([[0, 1, 1]]), label_map, {"shape": shapes})
    assert apart["shape_accuracy"] == 1.0


def test_missing_clevr_file_is_named_before_anything_is_built(tmp_path):
    experiment = tusk.TUSKCLEVRExperiment(data=tusk.CLEVRData(path=str(tmp_path / "clevr.tfrecords")))
    with pytest.raises(FileNotFoundError, match="clevr.tfrecords"):
        tusk.run_tusk_clevr(experiment)


TINY_MODEL = dict(num_prototypes=4, feature_channels=8, base_width=4, groups=2, inner_prototype_steps=1,
                  num_projections=8)


@pytest.mark.slow  # a TUSK training step's trace: minutes on a loaded 2-core CPU
def test_tiny_tetrominoes_run_returns_the_row_contract():
    experiment = tusk.TUSKTetrominoesExperiment(
        model=TUSKConfig.preset("tetrominoes", kernel_size=5, **TINY_MODEL),
        data=tusk.TetrominoesData(num_train_images=8, num_val_images=4, num_test_images=4, input_size=16),
        train=TrainConfig(steps=2, eval_every=1, batch_size=2))
    result = tusk.run_tusk_tetrominoes(experiment)
    assert set(result) == {"metrics", "history", "best_step", "setting", "examples"}
    assert -1 <= result["metrics"]["ari"] <= 1 and [h["step"] for h in result["history"]] == [1, 2]
    assert result["best_step"] in (1, 2) and "val_ari" in result["history"][0]
    assert "best val ARI" in result["setting"] and len(result["examples"]["pred_boxes"]) == 4
    assert result["examples"]["pred_boxes"][0].shape == (3, 4)


@pytest.mark.parametrize("preset", ["tetrominoes", "mnist"])
def test_figure_examples_hold_the_outputs_the_bank_and_the_counts(preset):
    """What the TUSK figures draw, from an untrained tiny model: the outputs (the masks only with alpha blending),
    the decoded bank, and the prototype counts = a bincount of the given ids."""
    from tfobj.models.tusk.tusk import TUSK

    model = TUSK(TUSKConfig.preset(preset, kernel_size=5, **TINY_MODEL), seed=0)
    images = np.random.default_rng(0).random((3, 16, 24, 3)).astype(np.float32)
    ids = np.array([[0, 2, 2], [3, 3, 3]])
    examples = tusk.figure_examples(model, images, ids)
    keys = {"keypoints", "prototype_ids", "valid", "reconstruction"} | ({"masks"} if preset == "tetrominoes" else set())
    assert set(examples["outputs"]) == keys
    k = model.config.num_keypoints
    assert examples["outputs"]["keypoints"].shape == (3, k, 2) and examples["outputs"]["reconstruction"].shape == \
        images.shape
    assert examples["prototype_images"].shape == (4, 16, 24, 3)
    np.testing.assert_array_equal(examples["prototype_counts"], [1, 0, 2, 3])


@pytest.mark.slow  # a TUSK training step's trace
def test_tiny_clevr_run_scores_both_test_sets_and_returns_the_figures(tmp_path):
    """`run_tusk_clevr` end to end on a CLEVR file in DeepMind's schema written here (the records test's writer):
    3 CLEVR6 scenes among the first 3 records (train, val, test), then one CLEVR10 scene."""
    from tests.data.test_multi_object_records import DEEPMIND_CLEVR, clevr_values, example, write

    rng = np.random.default_rng(2)
    path = write(tmp_path / "clevr.tfrecords", [example(clevr_values(n, rng), DEEPMIND_CLEVR) for n in (3, 2, 4, 8)])
    experiment = tusk.TUSKCLEVRExperiment(
        model=TUSKConfig.preset("clevr6", kernel_size=5, **TINY_MODEL),
        data=tusk.CLEVRData(path=str(path), max_records=3, num_val_images=1, num_test_images=1, input_size=16),
        train=TrainConfig(steps=1, eval_every=1, batch_size=1))
    result = tusk.run_tusk_clevr(experiment)
    assert {"clevr6_ari", "clevr10_ari", "clevr6_shape_accuracy", "clevr10_size_accuracy"} <= set(result["metrics"])
    examples = result["examples"]
    assert examples["images"].shape == (1, 16, 16, 3) and examples["pred_boxes"][0].shape == (6, 4)
    np.testing.assert_allclose(examples["pred_boxes"][0], tusk.keypoint_boxes(
        examples["tusk"]["outputs"]["keypoints"][0], (16, 16), 2.0))  # the boxes are the figure's keypoints
    assert examples["tusk"]["prototype_counts"].sum() == 6  # the one CLEVR6 test image's K = 6 slots
