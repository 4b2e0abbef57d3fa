"""Training callbacks: the evaluation callback's logs and TensorBoard output."""
import numpy as np
import tensorflow as tf
import keras

from tfobj import metrics
from tfobj.models.spair.spair import SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.training.callbacks import DetectionEvaluation, predict_detections

TINY = SPAIRConfig(backbone_filters=8, backbone_features=8, cell_hidden=(8, 8), passthrough_features=4,
                   encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4)


def test_detection_evaluation_logs_ap_and_writes_tensorboard(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((6, 24, 24, 3)).astype(np.float32)
    boxes = np.zeros((6, 2, 4), np.float32)
    boxes[:, 0] = [0.1, 0.1, 0.5, 0.5]
    num_objects = np.array([1, 1, 1, 0, 1, 1])
    model = SPAIR(TINY, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    callback = DetectionEvaluation(images, boxes, num_objects, log_dir=tmp_path / "tb", num_images_logged=3)
    history = model.fit(images, batch_size=3, epochs=1, verbose=0, callbacks=[callback])

    found = predict_detections(model, images)
    expected_ap = metrics.average_precision([d["boxes"] for d in found], [d["scores"] for d in found], boxes,
                                            num_gt=num_objects)
    assert history.history["val_ap"] == [expected_ap]
    expected_accuracy = metrics.count_accuracy([len(d["boxes"]) for d in found], num_objects)
    assert history.history["val_count_accuracy"] == [expected_accuracy]

    tags = set()
    for event_file in (tmp_path / "tb").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {value.tag for value in event.summary.value}
    assert {"val_ap", "val_count_accuracy", "reconstruction_with_boxes"} <= tags
