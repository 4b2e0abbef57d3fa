"""Keras callbacks for tfobj models."""
from __future__ import annotations

import logging
import math

import keras

from tfobj import metrics
from tfobj.training import schedules

log = logging.getLogger(__name__)


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


class NonFiniteLossError(FloatingPointError):
    """Raised by `StopOnNaN` when the training loss becomes NaN or Inf; `step` is the optimizer step."""

    def __init__(self, message: str, step: int, value: float):
        super().__init__(message)
        self.step, self.value = step, value


class StopOnNaN(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose logged loss is NaN or Inf, naming the optimizer step, before
    any later callback can save the non-finite weights.

    Put it BEFORE `ModelCheckpoint` and `BackupAndRestore` in the callbacks list. On a non-finite loss it
    sets `model.stop_training`, logs an error and raises `NonFiniteLossError` from `on_train_batch_end`.
    Raising, not just stopping as `keras.callbacks.TerminateOnNaN` does, matters: after a stop, Keras
    still runs the later callbacks' `on_train_batch_end` (a `ModelCheckpoint(save_freq=N)` saves the NaN
    weights if the batch is a save batch) and every callback's `on_epoch_end` and `on_train_end` (an
    epoch-end `ModelCheckpoint` or `BackupAndRestore` saves them; `BackupAndRestore` deletes its backup).
    The raise aborts `fit` before all of those, so every checkpoint on disk keeps the last finite weights
    and a `BackupAndRestore` backup survives to resume from.

    The step named is the value of `optimizer.iterations` when the failing batch began, i.e. the number
    of updates applied before it (the step `SPAIRSchedule` used for that batch). A model's "loss" log is
    the epoch's running mean, which stays non-finite once one batch is, so the first failing batch is
    found exactly; with `steps_per_execution = n > 1` it is one of the n steps named in the message.

    Args:
        monitor: the log key to check.
    """

    def __init__(self, monitor: str = "loss"):
        super().__init__()
        self.monitor = monitor
        self.nan_step: int | None = None  # the failing optimizer step, once one failed
        self._first_step = self._first_batch = self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._first_step, self._first_batch = int(self.model.optimizer.iterations), batch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isfinite(float(value)):
            return
        first = self._first_step
        last = first + max(0, batch - self._first_batch)  # Keras passes the execution's last batch here
        where = f"optimizer step {first}" if last == first else f"one of optimizer steps {first}..{last}"
        self.nan_step = first
        self.model.stop_training = True
        message = (f"{self.monitor} is {float(value)} at {where} (epoch {self._epoch}, batch {self._first_batch}, "
                   "0-based); training stopped before any later callback could save the non-finite weights, so "
                   "checkpoints on disk hold the last finite ones")
        log.error(message)
        raise NonFiniteLossError(message, step=first, value=float(value))


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
