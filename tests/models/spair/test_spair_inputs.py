"""What a user calls: predict_objects, evaluate with the task metric, integer counts; and the inputs a fitted
or served SPAIR refuses (sizes at run time through the reloaded SavedModel, empty batches)."""
import numpy as np
import pytest
import tensorflow as tf

from tfobj import export_saved_model
from tfobj.models.spair.spair import SPAIR
from tfobj.training.evaluation import detection_scores, predict_detections
from tiny import TINY_SPAIR

TINY = TINY_SPAIR


@pytest.fixture(scope="module")
def model():
    spair = SPAIR(TINY, seed=0)
    spair(np.zeros((1, 24, 24, 3), np.float32))
    spair.compile(optimizer="adam")
    return spair


def images(n, size=24, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


def test_predict_objects_gives_the_present_cells_per_image(model):
    x = images(3)
    found = model.predict_objects(x, batch_size=2)
    out = model(x, training=False)
    assert len(found) == 3
    for i, objects in enumerate(found):
        present = out["z_pres"].numpy()[i] > 0.5
        np.testing.assert_allclose(objects["boxes"], out["boxes"].numpy()[i][present], rtol=1e-6)
        np.testing.assert_allclose(objects["scores"], out["scores"].numpy()[i][present], rtol=1e-6)
        assert objects["num_objects"] == present.sum() == out["num_objects"].numpy()[i]


def test_num_objects_is_an_integer_count(model):
    out = model(images(2), training=True)
    assert out["num_objects"].dtype == tf.int32
    assert model.predict(images(2), verbose=0)["num_objects"].dtype == np.int32


def test_evaluate_reports_ap_and_count_accuracy_with_the_ground_truth(model):
    x = images(4, seed=1)
    boxes = np.zeros((4, 2, 4), np.float32)
    boxes[:, 0] = [0.1, 0.1, 0.6, 0.6]
    truth = {"images": x, "boxes": boxes, "num_objects": np.array([1, 1, 0, 1])}
    logs = model.evaluate(truth, batch_size=2, verbose=0, return_dict=True)
    expected = detection_scores(predict_detections(model, x), boxes, truth["num_objects"])
    assert logs["ap"] == expected["ap"] and logs["count_accuracy"] == expected["count_accuracy"]
    assert "nll" in logs and "loss" in logs
    assert "ap" not in model.evaluate(x, batch_size=2, verbose=0, return_dict=True)  # no ground truth, no AP
    with pytest.raises(ValueError, match=r"part of the detection ground truth but not \['num_objects'\]"):
        model.evaluate({"images": x, "boxes": boxes}, batch_size=2, verbose=0)  # not scored as if no truth


def test_empty_batches_are_refused_with_one_message(model):
    empty = np.zeros((0, 24, 24, 3), np.float32)
    for call in (lambda: model(empty), lambda: model.predict(empty, verbose=0), lambda: model.predict_objects(empty),
                 lambda: model.evaluate({"images": empty}, verbose=0)):
        with pytest.raises(ValueError, match=r"images is an empty batch \(0 images\)"):
            call()


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    path = export_saved_model(model, tmp_path_factory.mktemp("spair") / "saved_model")
    return tf.saved_model.load(str(path)).signatures["serving_default"]


@pytest.mark.parametrize("shape, message", [
    ((1, 50, 48, 3), r"images H must be a positive multiple of 12; got H =\] \[50\]"),
    ((2, 24, 6, 3), r"images W must be a positive multiple of 12; got W =\] \[6\]"),
    ((0, 24, 24, 3), r"images is an empty batch"),
])
def test_the_served_model_checks_sizes_at_run_time(served, shape, message):
    """The signature leaves batch, H and W unknown, so only run-time checks can refuse these."""
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served(images=tf.zeros(shape))
    out = served(images=tf.zeros((1, 24, 36, 3)))
    assert out["boxes"].shape == (1, 6, 4) and out["num_objects"].dtype == tf.int32


def test_the_served_model_checks_values(served):
    x = np.zeros((1, 24, 24, 3), np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        served(images=tf.constant(x))
