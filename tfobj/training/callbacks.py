"""Keras callbacks for tfobj models."""
from __future__ import annotations

import keras

from tfobj.training import schedules


class SPAIRSchedule(keras.callbacks.Callback):
    """Sets SPAIR's annealed variables from the optimizer step before every training batch.

    s (count prior) follows the original code's exponential schedule (`schedules.count_prior_s`),
    the training wheels are 1 for the first `training_wheels_steps` steps (no gradient into
    where/depth/pres) and 0 after, and the Concrete temperature is the config's constant. Because
    the values are recomputed from the checkpointed optimizer step, a run restored by
    `BackupAndRestore` continues its schedules exactly.
    """

    def on_train_batch_begin(self, batch, logs=None):
        model, c = self.model, self.model.config
        step = model.optimizer.iterations
        model.count_prior_s.assign(schedules.count_prior_s(
            step, c.count_prior_start, c.count_prior_end, c.count_prior_decay_rate, c.count_prior_decay_steps))
        model.wheels.assign(schedules.step_function(step, 1.0, 0.0, c.training_wheels_steps))
        model.temperature.assign(c.concrete_temperature)


def predict_detections(model, images, batch_size: int = 100) -> list[dict]:
    """Posterior-mode detections of a detection model (SPAIR): per image, the boxes `[n, 4]` and
    scores `[n]` of the cells with z_pres = 1."""
    out = model.predict(images, batch_size=batch_size, verbose=0)
    present = out["z_pres"] > 0.5
    return [{"boxes": boxes[keep], "scores": scores[keep]}
            for boxes, scores, keep in zip(out["boxes"], out["scores"], present)]


class DetectionEvaluation(keras.callbacks.Callback):
    """Computes AP (IoU 0.1…0.9) and count accuracy on a validation set at the end of every epoch
    (set `steps_per_epoch` to the evaluation interval) and adds them to the logs as "val_ap" and
    "val_count_accuracy", so History, TensorBoard and checkpoint monitors see them.

    Args:
        images: float `[N, H, W, 3]` validation images.
        boxes: float `[N, K, 4]` padded ground-truth boxes; num_objects: int `[N]`.
        log_dir: if given, also writes the scalars and a few reconstructions with boxes to TensorBoard.
        num_images_logged: how many reconstructions to write.
    """

    def __init__(self, images, boxes, num_objects, log_dir=None, num_images_logged=4):
        super().__init__()
        self.images, self.boxes, self.num_objects = images, boxes, num_objects
        self.log_dir = log_dir
        self.num_images_logged = num_images_logged
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from tfobj import metrics  # noqa: PLC0415 (metrics imports nothing heavy; kept local for clarity)

        found = predict_detections(self.model, self.images)
        ap = metrics.average_precision([d["boxes"] for d in found], [d["scores"] for d in found], self.boxes,
                                       num_gt=self.num_objects)
        accuracy = metrics.count_accuracy([len(d["boxes"]) for d in found], self.num_objects)
        if logs is not None:
            logs["val_ap"], logs["val_count_accuracy"] = ap, accuracy
        if self.log_dir is not None:
            self._write_summaries(ap, accuracy, found)

    def _write_summaries(self, ap, accuracy, found):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        step = int(self.model.optimizer.iterations)
        n = self.num_images_logged
        out = self.model(self.images[:n], training=False)
        boxes = tf.ragged.constant([d["boxes"].tolist() for d in found[:n]], ragged_rank=1, inner_shape=(4,))
        drawn = tf.image.draw_bounding_boxes(out["reconstruction"], boxes.to_tensor(), [[1.0, 0.0, 0.0]])
        with self._writer.as_default(step=step):
            tf.summary.scalar("val_ap", ap)
            tf.summary.scalar("val_count_accuracy", accuracy)
            tf.summary.image("reconstruction_with_boxes", drawn, max_outputs=n)
