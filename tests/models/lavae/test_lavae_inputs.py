"""What a user calls on LAVAE: evaluate with the counting metric and the empty batch it refuses; the images it
refuses because they have fewer pixels than objects (eagerly, and at run time through the reloaded SavedModel)."""
import numpy as np
import pytest
import tensorflow as tf

import tfobj
from tfobj import metrics
from tfobj.models.lavae.lavae import LAVAE
from test_lavae import IMAGES, SIZE, TINY, with_objects  # M = TINY.max_objects = 3


@pytest.fixture(scope="module")
def model():
    lavae = with_objects(LAVAE(TINY, seed=12), IMAGES)
    lavae.compile()
    return lavae


def test_evaluate_reports_count_accuracy_with_the_true_counts(model):
    counts = model.predict(IMAGES, verbose=0)["num_objects"]
    assert len(set(counts.tolist())) > 1  # the counts vary, so a wrong truth changes the accuracy
    truth = counts.copy()
    truth[0] += 1
    logs = model.evaluate({"images": IMAGES, "num_objects": truth}, batch_size=2, verbose=0, return_dict=True)
    assert logs["count_accuracy"] == metrics.count_accuracy(counts, truth) == 0.75
    assert logs["count_abs_error"] == metrics.count_abs_error(counts, truth) == 0.25
    assert "negative_elbo" in logs
    plain = model.evaluate(IMAGES, batch_size=2, verbose=0, return_dict=True)
    assert "count_accuracy" not in plain  # no true counts, no counting metric
    assert plain["negative_elbo"] == pytest.approx(logs["negative_elbo"], rel=1e-5)  # the same posterior mode


def test_empty_batches_are_refused_by_evaluate_too(model):
    empty = np.zeros((0, SIZE, SIZE, 1), np.float32)
    for call in (lambda: model.evaluate(empty, verbose=0),
                 lambda: model.evaluate({"images": empty, "num_objects": np.zeros(0, np.int32)}, verbose=0),
                 lambda: model.predict(empty, verbose=0)):
        with pytest.raises(ValueError, match=r"images is an empty batch \(0 images\)"):
            call()


def test_images_with_fewer_pixels_than_objects_are_refused(model):
    """M = 3 objects need 3 distinct pixels: a 1×2 image used to fail deep inside top_k."""
    with pytest.raises(ValueError, match=r"H·W >= M = 3 pixels"):
        model(np.zeros((1, 1, 2, 1), np.float32))
    unknown = tf.function(lambda x: model(x)["num_objects"],
                          input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"H·W >= M = 3 pixels"):
        unknown(tf.zeros((1, 1, 2, 1)))
    assert unknown(tf.zeros((1, 1, 3, 1))).shape == (1,)  # H·W = M is enough


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    path = tfobj.export_saved_model(model, tmp_path_factory.mktemp("lavae") / "saved_model")
    return tf.saved_model.load(str(path)).signatures


def test_the_served_model_refuses_images_with_fewer_pixels_than_objects(served):
    serve = served["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"H·W >= M = 3 pixels.*got H, W =\] \[1\] \[2\]"):
        serve(images=tf.zeros((1, 1, 2, 1)))
    assert serve(images=tf.zeros((2, 3, 1, 1)))["num_objects"].dtype == tf.int32


@pytest.mark.parametrize("counts, latents", [(2, 1), (1, 2)])
def test_the_served_generator_refuses_latents_of_different_batch_sizes(served, counts, latents):
    """The signature leaves B unknown: [1] counts with [2, ...] latents used to broadcast, [2] with [1] to fail deep."""
    with pytest.raises(tf.errors.InvalidArgumentError, match="must have the same batch size B"):
        served["generate"](num_objects=tf.ones([counts], tf.int32),
                           locations=tf.zeros([latents, TINY.max_objects, 2], tf.int32),
                           appearance=tf.zeros([latents, TINY.max_objects, TINY.appearance_size]))
