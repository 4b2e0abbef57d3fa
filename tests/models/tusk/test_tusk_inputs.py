"""The inputs a fitted or served TUSK refuses: an empty batch in `evaluate` (as in `predict`), and images with fewer
pixels than keypoints at run time, through the reloaded SavedModel (its signature leaves H and W unknown)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfobj import export_saved_model
from tfobj.models.tusk.tusk import TUSK
from test_tusk import TINY

# 65 keypoints: more than the 64 pixels of the smallest image the U-Nets take (8×8).
MANY = dataclasses.replace(TINY, num_keypoints=65, kernel_size=3)


def test_evaluate_refuses_an_empty_batch_as_predict_does():
    model = TUSK(TINY, seed=0)
    model(np.zeros((1, 16, 16, 3), np.float32))
    model.compile(optimizer="adam")
    empty = np.zeros((0, 16, 16, 3), np.float32)
    for call in (lambda: model.evaluate(empty, verbose=0), lambda: model.evaluate({"images": empty}, verbose=0),
                 lambda: model.predict(empty, verbose=0)):
        with pytest.raises(ValueError, match=r"images is an empty batch \(0 images\)"):
            call()


def test_the_served_model_refuses_images_with_fewer_pixels_than_keypoints(tmp_path):
    model = TUSK(MANY, seed=0)
    model(np.zeros((1, 16, 16, 3), np.float32))
    serve = tf.saved_model.load(str(export_saved_model(model, tmp_path / "saved_model"))).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"H·W >= K = 65 pixels.*got H, W =\] \[8\] \[8\]"):
        serve(images=tf.zeros((1, 8, 8, 3)))
    assert serve(images=tf.zeros((1, 8, 16, 3)))["keypoints"].shape == (1, 65, 2)
