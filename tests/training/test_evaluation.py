"""Evaluation during training: the callback's logs and TensorBoard output; prediction helpers and rankings."""
import numpy as np
import pytest
import tensorflow as tf
import keras

from tfobj import metrics
from tfobj.models.spair.spair import SPAIR
from tfobj.training.evaluation import DETECTION, EvaluationCallback, predict_detections
from tiny import TINY_SPAIR

TINY = TINY_SPAIR


@pytest.mark.slow
def test_detection_evaluation_logs_ap_and_writes_images_to_tensorboard(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((6, 24, 24, 3)).astype(np.float32)
    boxes = np.zeros((6, 2, 4), np.float32)
    boxes[:, 0] = [0.1, 0.1, 0.5, 0.5]
    num_objects = np.array([1, 1, 1, 0, 1, 1])
    val = {"images": images, "boxes": boxes, "num_objects": num_objects}
    model = SPAIR(TINY, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    callback = EvaluationCallback(DETECTION, val, log_dir=tmp_path / "tb")
    history = model.fit(images, batch_size=3, epochs=1, verbose=0, callbacks=[callback])

    found = predict_detections(model, images)
    expected_ap = metrics.average_precision([d["boxes"] for d in found], [d["scores"] for d in found], boxes,
                                            num_gt=num_objects)
    assert history.history["val_ap"] == [expected_ap]
    expected_accuracy = metrics.count_accuracy([len(d["boxes"]) for d in found], num_objects)
    assert history.history["val_count_accuracy"] == [expected_accuracy]

    tags = []
    for event_file in (tmp_path / "tb").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags += [value.tag for value in event.summary.value]
    assert tags == ["input_truth | reconstruction_found"]  # the values go through Keras' TensorBoard, not here


class FixedDetector(keras.Model):
    """Stand-in detection model: per image 4 cells, the first three on the image's objects with presence
    probabilities 0.6, 0.7, 0.8 and a spurious fourth at 0.9; all present."""

    def call(self, images, training=False, sample=False):
        batch = tf.shape(images)[0]
        boxes = tf.constant([[0.0, 0.0, 0.2, 0.2], [0.4, 0.4, 0.6, 0.6], [0.8, 0.8, 1.0, 1.0], [0.0, 0.8, 0.2, 1.0]])
        return {"boxes": tf.tile(boxes[None], [batch, 1, 1]),
                "scores": tf.tile(tf.constant([[0.6, 0.7, 0.8, 0.9]]), [batch, 1]),
                "z_pres": tf.ones([batch, 4])}


def test_original_ranking_scores_every_detection_one():
    """The original code ranked every (hard, sampled) detection with confidence 1, so AP's stable sort orders
    them by image, then cell; with 3 good boxes and a spurious one per image, ranking by presence probability
    puts the spurious box first in every image. The two give different APs, computed here by hand."""
    images = np.zeros((2, 12, 12, 3), np.float32)
    truth = np.array([[[0.0, 0.0, 0.2, 0.2], [0.4, 0.4, 0.6, 0.6], [0.8, 0.8, 1.0, 1.0]]] * 2, np.float32)
    model = FixedDetector()
    by_probability = predict_detections(model, images)
    original = predict_detections(model, images, ranking="original")
    np.testing.assert_array_equal(original[0]["scores"], np.ones(4))
    np.testing.assert_array_equal(original[1]["boxes"], by_probability[1]["boxes"])
    ap = {name: metrics.average_precision([d["boxes"] for d in found], [d["scores"] for d in found], truth)
          for name, found in (("probability", by_probability), ("original", original))}
    # Probability order: FP, FP (both spurious at 0.9), then 6 TPs: precision at recall r is 6r / (6r + 2);
    # 11-point AP = mean over r = 0, .1, ..., 1 of the best precision at recall >= r.
    tp = np.r_[0, 0, np.ones(6)]  # FP, FP, then 6 TPs
    recall, precision = np.cumsum(tp) / 6, np.cumsum(tp) / np.arange(1, 9)
    expected = np.mean([precision[recall >= r - 1e-12].max() for r in np.linspace(0, 1, 11)])
    assert ap["probability"] == pytest.approx(expected)
    # Original order: TP, TP, TP, FP, TP, TP, TP, FP.
    tp = np.array([1, 1, 1, 0, 1, 1, 1, 0])
    recall, precision = np.cumsum(tp) / 6, np.cumsum(tp) / np.arange(1, 9)
    expected = np.mean([precision[recall >= r - 1e-12].max() for r in np.linspace(0, 1, 11)])
    assert ap["original"] == pytest.approx(expected)
    assert ap["original"] > ap["probability"]
    with pytest.raises(ValueError, match="ranking must be"):
        predict_detections(model, images, ranking="confidence")


def test_sampled_predictions_use_the_sampling_pass():
    """sample=True calls the model with sample=True (the original evaluation); the posterior mode does not."""
    calls = []

    class Recorder(FixedDetector):
        def call(self, images, training=False, sample=False):
            calls.append(sample)
            return super().call(images, training, sample)

    model = Recorder()
    images = np.zeros((3, 12, 12, 3), np.float32)
    predict_detections(model, images, sample=True, batch_size=2)
    assert calls and all(calls)


def test_tensorboard_images_put_input_and_truth_beside_the_reconstruction():
    from tfobj.training.evaluation import reconstructions_with_boxes

    model = SPAIR(TINY, seed=0)
    images = np.full((2, 24, 24, 3), 0.25, np.float32)
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]], [[0.0, 0.0, 0.0, 0.0]]], np.float32)
    out = reconstructions_with_boxes(model, {"images": images, "boxes": boxes}, count=2)
    pair = out["input_truth | reconstruction_found"]
    assert pair.shape == (2, 24, 50, 3)
    np.testing.assert_array_equal(pair[:, :, 24:26], 1.0)  # the white gap
    np.testing.assert_allclose(pair[:, :, 26:], model(images)["reconstruction"].numpy(), atol=1.0)  # in range
    assert (pair[0, 5, 6:17] == 1.0).all()  # the true box's top edge (tf.image: row 0.25·(24 − 1)), white
    assert (pair[0, 4, 6:17] == 0.0).all() and (pair[0, 6, 7:16] == 0.0).all()  # in a black halo
    np.testing.assert_allclose(pair[1, :, :24], 0.25)  # no true box in the second image: the input unchanged


@pytest.mark.parametrize("colour", [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 1.0)])
def test_tensorboard_boxes_show_on_any_object_colour(colour):
    """A box drawn around a saturated object (Scattered Shapes' colours, MNIST's white) differs from the object
    along its whole edge: the earlier green truth and red found boxes vanished on green and red objects."""
    from tfobj.training.evaluation import FOUND_BOX_COLOUR, TRUE_BOX_COLOUR, draw_boxes

    images = np.zeros((1, 24, 24, 3), np.float32)
    images[0, 3:21, 3:21] = colour  # the object covers the box edge (rows and columns 5.75 .. 17.25) and its halo
    box = np.array([[[0.25, 0.25, 0.75, 0.75]]], np.float32)
    for line in (TRUE_BOX_COLOUR, FOUND_BOX_COLOUR):
        drawn = draw_boxes(images, box, np.array([[True]]), line).numpy()[0]
        edge, halo = drawn[5, 6:17], drawn[4, 6:17]  # the top edge and the line above it, inside the object
        assert (np.abs(edge - colour).max(axis=-1) > 0.4).all() or (np.abs(halo - colour).max(axis=-1) > 0.4).all()
        assert (np.abs(edge - halo).max(axis=-1) > 0.4).all()  # the line contrasts with its halo
    nothing = draw_boxes(images, box, np.array([[False]]), TRUE_BOX_COLOUR).numpy()
    np.testing.assert_array_equal(nothing, images)  # absent boxes are not drawn


def test_tensorboard_video_image_puts_frames_with_truth_above_the_tracked_reconstructions():
    from tfobj.training.evaluation import FOUND_BOX_COLOUR, videos_with_boxes

    videos = np.full((1, 2, 24, 24, 3), 0.25, np.float32)
    boxes = np.zeros((1, 2, 2, 4), np.float32)
    boxes[0, :, 0] = [0.25, 0.25, 0.75, 0.75]
    track_ids = np.array([[[1, 0], [1, 0]]])

    class Tracker:  # stands in for SILOT: the true boxes found, reconstructions at half brightness
        def __call__(self, x, training=False):
            return {"boxes": tf.constant(boxes), "z_pres": tf.constant(track_ids > 0, tf.float32),
                    "reconstruction": x * 0.5}

    image = videos_with_boxes(Tracker(), {"videos": videos, "boxes": boxes, "track_ids": track_ids})["truth | tracks"]
    assert image.shape == (1, 50, 48, 3)  # [V, 2H + 2, T·W, 3]
    for t in range(2):
        frame, gap, recon = image[0, :24, 24 * t:24 * (t + 1)], image[0, 24:26], image[0, 26:, 24 * t:24 * (t + 1)]
        assert (frame[5, 6:17] == 1.0).all() and (frame[4, 6:17] == 0.0).all()  # white truth edge, black halo
        np.testing.assert_allclose(recon[5, 6:17], np.tile(FOUND_BOX_COLOUR, (11, 1)), atol=1e-6)  # pink found edge
        np.testing.assert_allclose(frame[12, 12], 0.25)  # inside the box: the input
        np.testing.assert_allclose(recon[12, 12], 0.125)  # and the reconstruction
        assert (gap == 1.0).all()


def _pink(image):
    """bool `[H, W]`: the pixels drawn in the found-box colour."""
    from tfobj.training.evaluation import FOUND_BOX_COLOUR

    return np.abs(image - np.array(FOUND_BOX_COLOUR, np.float32)).max(axis=-1) < 1e-3


def test_tensorboard_points_are_squares_around_present_points_beside_the_input():
    """LAVAE's locations and TUSK's keypoints: a grey single-channel input tiled to RGB | the reconstruction with a
    square of side 2·half around each present point (pixel centre at index + 0.5); absent points not drawn."""
    from tfobj.training.evaluation import reconstructions_with_points

    images = np.full((2, 24, 24, 1), 0.25, np.float32)
    reconstruction = np.zeros((2, 24, 24, 1), np.float32)
    points = np.array([[[10, 10], [-1, -1]], [[3, 20], [12, 12]]])
    present = np.array([[True, False], [False, False]])
    out = reconstructions_with_points(images, reconstruction, points, present, half_size=4.0)
    out = out["input | reconstruction_found"]
    assert out.shape == (2, 24, 50, 3)
    np.testing.assert_allclose(out[:, :, :24], 0.25)  # the input, tiled to RGB, nothing drawn on it
    np.testing.assert_array_equal(out[:, :, 24:26], 1.0)  # the white gap
    rows, cols = np.nonzero(_pink(out[0, :, 26:]))
    # The square's edges: centre 10.5 ± 4 px, i.e. [6.5, 14.5] / 24 of the side, drawn by tf.image at ·(24 − 1).
    assert rows.min() == int(6.5 / 24 * 23) and rows.max() == int(14.5 / 24 * 23)
    assert cols.min() == int(6.5 / 24 * 23) and cols.max() == int(14.5 / 24 * 23)
    assert not _pink(out[1]).any()  # no present point in the second image


class _Stub:
    """A model stand-in: fixed outputs, the config fields the image functions read."""

    def __init__(self, outputs, **config):
        self.outputs, self.config = outputs, type("Config", (), config)

    def __call__(self, images, training=False):
        return {key: value[:len(images)] for key, value in self.outputs.items()}


def test_lavae_and_tusk_evaluations_write_their_points_to_tensorboard():
    from tfobj.experiments.lavae import LIKELIHOOD_WITH_COUNTS
    from tfobj.experiments.tusk import KEYPOINT_DETECTION, OBJECT_DISCOVERY

    val = {"images": np.zeros((5, 32, 32, 1), np.float32)}
    lavae = _Stub({"reconstruction": np.zeros((5, 32, 32, 1), np.float32),
                   "locations": np.tile(np.array([[[16, 16], [-1, -1]]]), (5, 1, 1))}, sprite_size=9)
    image = LIKELIHOOD_WITH_COUNTS.images(lavae, val)["input | reconstruction_found"]
    assert image.shape == (4, 32, 66, 3) and _pink(image[0, :, 34:]).any()
    rows, _ = np.nonzero(_pink(image[0, :, 34:]))
    assert rows.min() == int((16.5 - 4.5) / 32 * 31)  # a sprite-sized square: half = sprite_size / 2
    tusk = _Stub({"reconstruction": np.zeros((5, 32, 32, 3), np.float32),
                  "keypoints": np.full((5, 1, 2), 16.0, np.float32), "valid": np.ones((5, 1), bool)})
    val3 = {"images": np.zeros((5, 32, 32, 3), np.float32)}
    for evaluation in (KEYPOINT_DETECTION, OBJECT_DISCOVERY):
        image = evaluation.images(tusk, val3)["input | reconstruction_found"]
        assert image.shape == (4, 32, 66, 3) and _pink(image[0, :, 34:]).any()
