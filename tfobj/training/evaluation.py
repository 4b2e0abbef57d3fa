"""Prediction helpers and the evaluation that `fit_model` runs on the validation set every period.

An `Evaluation` says what a model is judged by: a function `(model, val) -> {metric: value}`, the metric
whose best value picks the kept weights, and optionally images for TensorBoard. `EvaluationCallback` runs
it at the end of every Keras epoch (= `eval_every` steps) and adds the values to the logs as "val_<metric>",
so History, TensorBoard and `BestCheckpoint` see them. Detection models (SPAIR) use `DETECTION`: AP
(IoU 0.1…0.9) and count accuracy; tracking models (SILOT) use `TRACKING`: MOTA (CLEAR MOT) on validation videos.
"""
from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Literal, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfobj import metrics
from tfobj.models.inputs import check_not_empty

__all__ = ["DETECTION", "TRACKING", "DetectionModel", "Evaluation", "EvaluationCallback", "EvaluatesGroundTruth",
           "current_step",
           "detection_metrics", "draw_boxes", "detection_scores", "predict_detections", "reconstructions_with_boxes",
           "reconstructions_with_points",
           "tracking_metrics", "tracking_scores", "videos_with_boxes"]

log = logging.getLogger(__name__)


def current_step(model) -> int:
    """The model's optimizer step as a Python int (also for a variable mirrored by a tf.distribute strategy)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


# --------------------------------------------------------------------------- prediction

_SAMPLING_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sampled_outputs(model, images, batch_size: int, keys) -> dict[str, np.ndarray]:
    """`model(images, training=False, sample=True)` in batches, through one cached `tf.function` per model."""
    if model not in _SAMPLING_CALLS:
        _SAMPLING_CALLS[model] = tf.function(lambda x: model(x, training=False, sample=True))
    call = _SAMPLING_CALLS[model]
    parts = [call(tf.constant(images[start:start + batch_size])) for start in range(0, len(images), batch_size)]
    return {key: np.concatenate([part[key].numpy() for part in parts]) for key in keys}


def predict_detections(model, images, batch_size: int = 100, sample: bool = False,
                       ranking: Literal["probability", "original"] = "probability") -> list[dict]:
    """Per image, the boxes `[n, 4]` and scores `[n]` of a detection model's (SPAIR's) present objects.

    Args:
        model: a model whose outputs have "boxes" `[B, N, 4]`, "scores" `[B, N]` and "z_pres" `[B, N]`.
        images: float `[I, H, W, 3]` in [0, 1].
        batch_size: images per forward pass.
        sample: False: the posterior mode (z_pres = 1 iff its probability > 0.5; tfobj's default).
            True: z_pres and boxes sampled from the posterior, as the original SPAIR code evaluated.
        ranking: the detections' scores for AP. "probability": the presence probability σ(logit).
            "original": 1 for every detection, as the original code ranked its hard sampled z_pres; AP's
            stable sort then ranks them in image order, then cell (raster) order.

    Returns:
        One dict per image with "boxes" `[n, 4]` and "scores" `[n]` (numpy).
    """
    if ranking not in ("probability", "original"):
        raise ValueError(f"ranking must be 'probability' or 'original'; got {ranking!r}")
    check_not_empty(images)
    if sample:
        out = _sampled_outputs(model, images, batch_size, ("boxes", "scores", "z_pres"))
    else:
        out = model.predict(images, batch_size=batch_size, verbose=0)
    present = out["z_pres"] > 0.5
    scores = out["scores"] if ranking == "probability" else np.ones_like(out["scores"])
    return [{"boxes": boxes[keep], "scores": score[keep]} for boxes, score, keep in zip(out["boxes"], scores, present)]


class EvaluatesGroundTruth:
    """Mixin for tfobj's models (listed before `keras.Model` in the bases): `predict` and `evaluate` refuse an
    empty batch with the model's own message, and `evaluate` adds the task's scores when `x` is a dict holding
    ground truth besides the model's input (a dataset's arrays), the scores `fit_model` logs as "val_<score>".

    A model sets `input_key` ("images"; "videos" for SILOT) and `truths`, `{kind: keys}`: each a set of keys
    that together make up one kind of ground truth it scores, and implements `task_scores(x, kind, batch_size)`.
    Other keys in `x` are ignored; a dict that holds part of a kind's keys and no whole kind is refused, naming
    the missing keys (it would otherwise be scored as if it held no ground truth).
    """

    input_key: str = "images"
    truths: dict[str, frozenset[str]] = {}

    def task_scores(self, x: Mapping, kind: str, batch_size: int | None) -> dict:
        """`{score: value}` of the model on `x` against its ground truth of `kind` (a key of `truths`)."""
        raise NotImplementedError

    def _check_not_empty(self, x) -> None:
        check_not_empty(x[self.input_key] if isinstance(x, Mapping) else x, type(self).__name__,
                        videos=self.input_key == "videos")

    def _truth_kinds(self, x) -> list[str]:
        if not isinstance(x, Mapping):
            return []
        kinds = [kind for kind, keys in self.truths.items() if keys <= set(x)]
        partial = {kind: sorted(keys - set(x)) for kind, keys in self.truths.items() if keys & set(x)}
        if not kinds and partial:
            kind, missing = next(iter(partial.items()))
            expected = ", ".join(map(repr, [self.input_key] + sorted(self.truths[kind])))
            raise ValueError(f"{type(self).__name__}.evaluate: x holds part of the {kind} ground truth but not "
                             f"{missing}; expected {{{expected}}} for the {kind} scores, or '{self.input_key}' alone "
                             "for the loss terms")
        return kinds

    def predict(self, x, *args, **kwargs):
        self._check_not_empty(x)
        return super().predict(x, *args, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Keras' `evaluate` (the loss terms of the model's `test_step`), plus the task's scores of each kind
        of ground truth `x` holds (the class docstring; the model's `task_scores` says which)."""
        kinds = self._truth_kinds(x)
        inputs = {self.input_key: x[self.input_key]} if kinds else x
        self._check_not_empty(inputs)
        logs = super().evaluate(inputs, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
                                steps=steps, callbacks=callbacks, return_dict=True, **kwargs)
        for kind in kinds:
            logs.update(self.task_scores(x, kind, batch_size))
        return logs if return_dict else [logs[key] for key in logs]


class DetectionModel(EvaluatesGroundTruth):
    """Mixin for detection models (SPAIR): per-image objects in one call, and `evaluate` with the task metric.

    The model's outputs have "boxes" `[B, N, 4]`, "scores" `[B, N]` and "z_pres" `[B, N]` (1 = present).
    """

    truths = {"detection": frozenset({"boxes", "num_objects"})}

    def predict_objects(self, images, batch_size: int = 32, sample: bool = False) -> list[dict]:
        """The objects the model finds in each image.

        Args:
            images: float `[I, H, W, 3]` in [0, 1] (numpy or tensor).
            batch_size: images per forward pass.
            sample: False (default): the posterior mode. True: latents sampled, as the original SPAIR evaluated.

        Returns:
            One dict per image: "boxes" float32 `[n, 4]` normalised (y_min, x_min, y_max, x_max), "scores"
            float32 `[n]` (presence probabilities), "num_objects" int (n), for the present objects.
        """
        found = predict_detections(self, images, batch_size, sample=sample)
        return [dict(objects, num_objects=len(objects["boxes"])) for objects in found]

    def task_scores(self, x, kind, batch_size):
        """With `x = {"images": ..., "boxes": [N, K, 4], "num_objects": [N]}` (a dataset's arrays, e.g.
        `tfobj.data.scattered_mnist(...)`): "ap" (IoU 0.1…0.9), "count_accuracy" and "count_abs_error" of the
        posterior-mode detections. `evaluate`'s loss terms are those of the posterior mode (hard z_pres, posterior
        means): the negative ELBO of the most likely latents, higher than the training loss, which averages over
        sampled, relaxed latents."""
        return detection_scores(predict_detections(self, x["images"], batch_size or 32), x["boxes"],
                                x["num_objects"])


def detection_scores(detections: list[dict], true_boxes: np.ndarray, num_objects: np.ndarray) -> dict:
    """AP (mean over IoU 0.1…0.9), count accuracy and count absolute error of per-image detections
    against padded ground truth `true_boxes [N, K, 4]`, `num_objects [N]`."""
    counts = np.array([len(d["boxes"]) for d in detections])
    return {
        "ap": metrics.average_precision([d["boxes"] for d in detections], [d["scores"] for d in detections],
                                        true_boxes, num_gt=num_objects),
        "count_accuracy": metrics.count_accuracy(counts, num_objects),
        "count_abs_error": metrics.count_abs_error(counts, num_objects),
    }


def tracking_scores(tracks, videos: Mapping) -> dict:
    """CLEAR MOT scores of per-video tracks (`.ids`, `.boxes` per frame; `ConnCompTracker.track`,
    `SILOT.predict_objects`) against a video dataset's ground truth ("track_ids" `[N, T, K]`, 0 = no object, and
    "boxes" `[N, T, K, 4]`): the keys of `tfobj.metrics.clear_mot_many` (mota, motp, num_switches, num_misses,
    ...) and "count_abs_error", the mean over all frames of |#tracked objects − #true objects| (as SILOT's
    count error, per frame)."""
    sequences, errors = [], []
    for v, track in enumerate(tracks):
        gt_ids, gt_boxes = [], []
        for t in range(len(track.ids)):
            valid = videos["track_ids"][v, t] > 0
            gt_ids.append(videos["track_ids"][v, t][valid])
            gt_boxes.append(videos["boxes"][v, t][valid])
            errors.append(abs(len(track.ids[t]) - int(valid.sum())))
        sequences.append((gt_ids, gt_boxes, track.ids, track.boxes))
    return dict(metrics.clear_mot_many(sequences), count_abs_error=float(np.mean(errors)))


# --------------------------------------------------------------------------- evaluation during training


@dataclass(frozen=True)
class Evaluation:
    """What `fit_model` measures on the validation set after every `eval_every` steps.

    Attributes:
        metrics: `(model, val) -> {name: float}`; `val` is the dict of validation arrays.
        monitor: the name (without "val_") whose best value picks the weights `fit_model` keeps.
        mode: "max" or "min": which way is better for `monitor`.
        images: optional `(model, val) -> {name: float [n, H, W, 3]}` written to TensorBoard.
    """

    metrics: Callable[[keras.Model, Mapping], dict]
    monitor: str
    mode: Literal["max", "min"] = "max"
    images: Callable[[keras.Model, Mapping], dict] | None = None

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"Evaluation.mode must be 'max' or 'min'; got {self.mode!r}")


def detection_metrics(model, val: Mapping) -> dict:
    """Posterior-mode AP and count accuracy on `val` ("images", "boxes", "num_objects")."""
    scores = detection_scores(predict_detections(model, val["images"]), val["boxes"], val["num_objects"])
    return {"ap": scores["ap"], "count_accuracy": scores["count_accuracy"]}


# TensorBoard's box colours, those of the PNG figures (tfobj.figures): ground truth white, found boxes pink, each line
# between two black ones, so that it shows on any object colour (a green line vanishes on a green shape).
TRUE_BOX_COLOUR = (1.0, 1.0, 1.0)
FOUND_BOX_COLOUR = (1.0, 0.176, 0.584)  # #ff2d95


def draw_boxes(images, boxes, present, colour) -> tf.Tensor:
    """`tf.image.draw_bounding_boxes` with a black halo: each box drawn in black one pixel outside and one pixel
    inside its edge, then in `colour` on the edge.

    Args:
        images: float `[N, H, W, 3]`.
        boxes: float `[N, K, 4]` normalised (y_min, x_min, y_max, x_max).
        present: bool `[N, K]`: the boxes to draw.
        colour: RGB floats.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    shape = tf.shape(images)
    # tf.image puts a box edge at row y·(H − 1): one pixel is 1 / (H − 1) in normalised units.
    size = tf.cast(tf.stack([shape[1], shape[2], shape[1], shape[2]]), tf.float32)
    pixel = tf.constant([-1.0, -1.0, 1.0, 1.0]) / tf.maximum(size - 1.0, 1.0)
    black = (0.0, 0.0, 0.0)
    drawn = []
    # Image by image, only the present boxes: tf.image logs a warning for every box it is given outside the image.
    present = tf.convert_to_tensor(present)
    for image, image_boxes, keep in zip(tf.unstack(images), tf.unstack(boxes), tf.unstack(present)):
        image, chosen = image[None], tf.boolean_mask(image_boxes, keep)[None]  # [1, H, W, 3], [1, n, 4]
        if chosen.shape[1]:
            for shifted, rgb in ((chosen + pixel, black), (chosen - pixel, black), (chosen, colour)):
                image = tf.image.draw_bounding_boxes(image, shifted, [list(rgb)])
        drawn.append(image[0])
    return tf.stack(drawn)


def reconstructions_with_boxes(model, val: Mapping, count: int = 4) -> dict:
    """The first `count` validation images side by side: the input with its ground-truth boxes (white) | the
    reconstruction with the predicted boxes (pink), each line in a black halo, as one image each
    `[count, H, 2W + 2, 3]`."""
    images = val["images"][:count]
    out = model(images, training=False)
    truth = tf.constant(val["boxes"][:count], tf.float32)
    left = draw_boxes(images, truth, tf.reduce_any(truth != 0, axis=-1), TRUE_BOX_COLOUR)  # not the padding rows
    right = draw_boxes(out["reconstruction"], out["boxes"], out["z_pres"] > 0.5, FOUND_BOX_COLOUR)
    gap = tf.ones_like(left[:, :, :2])
    return {"input_truth | reconstruction_found": tf.concat([left, gap, right], axis=2).numpy()}


DETECTION = Evaluation(metrics=detection_metrics, monitor="ap", mode="max", images=reconstructions_with_boxes)


def reconstructions_with_points(images, reconstruction, points, present, half_size: float,
                                name: str = "input | reconstruction_found") -> dict:
    """Inputs beside reconstructions with a square of side 2·`half_size` pixels drawn (pink, black halo) around each
    present point: LAVAE's locations, TUSK's keypoints, for TensorBoard.

    Args:
        images, reconstruction: float `[n, H, W, C]`, C = 1 (tiled to RGB) or 3.
        points: `[n, K, 2]` (row, col) pixel indices, a pixel's centre at index + 0.5.
        present: bool `[n, K]`: the points to draw.

    Returns:
        `{name: float [n, H, 2W + 2, 3]}`.
    """
    rgb = [tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x
           for x in (tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(reconstruction, tf.float32))]
    size = tf.cast(tf.shape(rgb[0])[1:3], tf.float32)  # H, W
    centres = tf.cast(points, tf.float32) + 0.5
    boxes = tf.concat([(centres - half_size) / size, (centres + half_size) / size], axis=-1)  # [n, K, 4]
    right = draw_boxes(rgb[1], boxes, tf.convert_to_tensor(present, tf.bool), FOUND_BOX_COLOUR)
    return {name: tf.concat([rgb[0], tf.ones_like(rgb[0][:, :, :2]), right], axis=2).numpy()}


def tracking_metrics(model, val: Mapping) -> dict:
    """MOTA, MOTP, identity switches and count error of the model's posterior-mode tracks
    (`model.predict_objects(videos)`) on `val` ("videos", "track_ids", "boxes")."""
    scores = tracking_scores(model.predict_objects(val["videos"]), val)
    return {key: scores[key] for key in ("mota", "motp", "num_switches", "count_abs_error")}


def videos_with_boxes(model, val: Mapping, count: int = 2) -> dict:
    """The first `count` validation videos, one image each `[count, 2H + 2, T·W, 3]`: the frames in a row with
    their true boxes (white) above the reconstructions with the tracked boxes (pink), each line in a black halo."""
    videos = tf.constant(val["videos"][:count], tf.float32)  # [V, T, H, W, 3]
    out = model(videos, training=False)
    shape = tf.shape(videos)
    frames = tf.reshape(videos, tf.concat([[-1], shape[2:]], 0))  # [V·T, H, W, 3]
    slots = val["boxes"].shape[2]
    truth = tf.reshape(tf.constant(val["boxes"][:count], tf.float32), [-1, slots, 4])
    true_present = tf.reshape(tf.constant(val["track_ids"][:count]), [-1, slots]) > 0
    predicted = tf.reshape(out["boxes"], [-1, out["boxes"].shape[2], 4])
    present = tf.reshape(out["z_pres"] > 0.5, [-1, out["boxes"].shape[2]])
    top = draw_boxes(frames, truth, true_present, TRUE_BOX_COLOUR)
    bottom = draw_boxes(tf.reshape(out["reconstruction"], tf.shape(frames)), predicted, present, FOUND_BOX_COLOUR)
    rows = tf.concat([top, tf.ones_like(top[:, :2]), bottom], axis=1)  # [V·T, 2H + 2, W, 3]
    rows = tf.reshape(rows, tf.concat([shape[:2], tf.shape(rows)[1:]], 0))  # [V, T, 2H + 2, W, 3]
    return {"truth | tracks": tf.concat(tf.unstack(rows, axis=1), axis=2).numpy()}


TRACKING = Evaluation(metrics=tracking_metrics, monitor="mota", mode="max", images=videos_with_boxes)


class EvaluationCallback(keras.callbacks.Callback):
    """Runs an `Evaluation` on `val` at the end of every epoch and adds "val_<name>" to the logs.

    Keras' `TensorBoard` callback, after this one, writes the values with the epoch's losses (as
    "validation/epoch_<name>"); this callback writes only the evaluation's images, by optimizer step.

    Args:
        evaluation: the `Evaluation`.
        val: dict of validation arrays.
        log_dir: if given, writes the evaluation's images to TensorBoard there.

    Attributes:
        seconds: wall time spent in the evaluations so far (images included).
    """

    def __init__(self, evaluation: Evaluation, val: Mapping, log_dir=None):
        super().__init__()
        self.evaluation, self.val, self.log_dir = evaluation, val, log_dir
        self._writer = None
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        started = time.perf_counter()
        values = {f"val_{name}": float(value) for name, value in self.evaluation.metrics(self.model, self.val).items()}
        if logs is not None:
            logs.update(values)  # Keras' TensorBoard callback writes them (validation/epoch_<name>), once
        if self.log_dir is not None and self.evaluation.images is not None:
            self._write_images()
        self.seconds += time.perf_counter() - started

    def _write_images(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default(step=current_step(self.model)):
            for name, batch in self.evaluation.images(self.model, self.val).items():
                tf.summary.image(name, batch, max_outputs=len(batch))
        self._writer.flush()
