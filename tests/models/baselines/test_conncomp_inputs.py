"""The inputs ConnComp refuses, the same way eagerly and through the reloaded SavedModel: an empty batch (of
images, or of videos for the tracker) and images without pixels; counts are int32 in the served outputs."""
import numpy as np
import pytest
import tensorflow as tf

from tfobj import ConnComp, ConnCompTracker, export_saved_model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = export_saved_model(ConnComp(threshold=0.5), tmp_path_factory.mktemp("conncomp") / "saved_model")
    return tf.saved_model.load(str(path)).signatures["serving_default"]


@pytest.mark.parametrize("shape, message", [
    ((0, 8, 8, 3), r"images is an empty batch \(0 images\)"),
    ((1, 0, 8, 3), r"images H must be a positive multiple of 1; got H =\] \[0\]"),
])
def test_the_served_model_refuses_empty_inputs_at_run_time(served, shape, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served(images=tf.zeros(shape))
    out = served(images=tf.ones((2, 8, 8, 3)))
    assert out["num_objects"].dtype == tf.int32 and out["num_objects"].numpy().tolist() == [1, 1]


def test_empty_batches_are_refused_eagerly_with_one_message():
    conncomp = ConnComp(threshold=0.5)
    with pytest.raises(ValueError, match=r"images is an empty batch \(0 images\)"):
        conncomp.predict_objects(np.zeros((0, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"videos is an empty batch \(0 videos\)"):
        ConnCompTracker(conncomp).track(np.zeros((0, 2, 8, 8, 3), np.float32))
