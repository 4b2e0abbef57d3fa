"""ConnComp: the connected-components baselines of SPAIR (supp. D.3) and SILOT (supp. C).

Detection: a pixel is foreground iff the L1 distance of its colour to the background colour,
summed over channels, is at least `threshold` (the original code's reading of "|pixel − bg| ≥ τ";
for white-on-black images τ is 3× a grey-level difference). Each 4-connected foreground component
is one object; its box is its pixel extent.

Tracking: components are split by colour (each foreground pixel takes the palette colour it is
most similar to), then objects of consecutive frames are matched by the Hungarian algorithm on
centroid distance, with colour mismatch forbidden. Unmatched objects get new ids.

See docs/baselines.md for what is faithful and what differs from the original code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

from tfobj.models.inputs import check_not_empty, checked_images
from tfobj.ops.connected_components import connected_components

_FORBIDDEN = 1e9  # assignment cost of a pair that may not be matched


@keras.saving.register_keras_serializable(package="tfobj")
class ConnComp(keras.layers.Layer):
    """Connected-components object detector (no learning; one threshold τ).

    Args:
        threshold: τ, on the per-pixel L1 colour distance to `background` (summed over channels).
        background: background colour, length C (default black RGB).
        palette: optional `[P, C]` object colours. If given, each foreground pixel is assigned the
            palette colour of highest cosine similarity, and only pixels of the same colour connect
            (SILOT supp. C). If None, all foreground pixels are one colour (SPAIR supp. D.3).
        cosine_threshold: with a palette, a foreground pixel whose best cosine similarity is below
            this is dropped.
        implementation: connected-components kernel, "native" (pure TF), "tfa" or "auto" (tfa where
            it imports, i.e. TF <= 2.15). All give identical labels.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        images: float `[B, H, W, C]`, values in [0, 1].

    Returns:
        dict with
          "boxes": float32 `[B, N, 4]` normalised (y_min, x_min, y_max, x_max), zero-padded,
              N = the largest number of objects in the batch;
          "centroids": float32 `[B, N, 2]` (y, x) in pixels, pixel centres at +0.5;
          "colours": int32 `[B, N]`, palette index (0 without a palette);
          "scores": float32 `[B, N]`, 1 for every object (ConnComp has no confidence);
          "num_objects": int32 `[B]`;
          "labels": int32 `[B, H, W]`, component id of each pixel (0 = background), ids consecutive
              over the batch in order of each component's first pixel.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        background: Sequence[float] = (0.0, 0.0, 0.0),
        palette: Sequence[Sequence[float]] | None = None,
        cosine_threshold: float = 0.0,
        implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0; got {threshold}")
        if implementation not in ("native", "tfa", "auto"):
            raise ValueError(f"implementation must be 'native', 'tfa' or 'auto'; got {implementation!r}")
        self.threshold = float(threshold)
        self.background = tuple(float(v) for v in background)
        self.palette = None if palette is None else tuple(tuple(float(v) for v in colour) for colour in palette)
        if self.palette is not None and any(len(c) != len(self.background) for c in self.palette):
            raise ValueError(f"palette colours must have {len(self.background)} channels like background; got {palette}")
        self.cosine_threshold = float(cosine_threshold)
        self.implementation = implementation
        self.built = True  # no weights

    def predict_objects(self, images, batch_size: int = 256) -> list[dict]:
        """The objects found in each image of `images` float `[N, H, W, C]`: one dict per image with "boxes"
        `[n, 4]` normalised (y_min, x_min, y_max, x_max), "scores" `[n]` (all 1), "centroids" `[n, 2]`,
        "colours" `[n]` and "num_objects" n (numpy)."""
        return [dict(found, num_objects=len(found["boxes"])) for found in detect(self, images, batch_size)]

    def serving_endpoints(self) -> dict:
        """The SavedModel signature `tfobj.export_saved_model` writes: "serve", `images` float32 `[batch, H, W, C]`
        -> "boxes" `[batch, N, 4]`, "scores" `[batch, N]`, "centroids" `[batch, N, 2]`, "colours" `[batch, N]`,
        "num_objects" `[batch]` (N = the batch's largest object count; entries past num_objects are 0)."""
        def serve(images):
            outputs = self(images)
            return {key: outputs[key] for key in ("boxes", "scores", "centroids", "colours", "num_objects")}

        signature = [tf.TensorSpec([None, None, None, len(self.background)], tf.float32, name="images")]
        return {"serve": (serve, signature)}

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            background=self.background,
            palette=self.palette,
            cosine_threshold=self.cosine_threshold,
            implementation=self.implementation,
        )
        return config

    def colour_labels(self, images: tf.Tensor) -> tf.Tensor:
        """Per-pixel colour class: int32 `[B, H, W]`, 0 = background, p + 1 = palette colour p."""
        images = checked_images(tf.convert_to_tensor(images, tf.float32), "ConnComp", channels=len(self.background))
        distance = tf.reduce_sum(tf.abs(images - tf.constant(self.background)), axis=-1)  # [B, H, W]
        foreground = distance >= self.threshold
        if self.palette is None:
            return tf.cast(foreground, tf.int32)
        palette = tf.math.l2_normalize(tf.constant(self.palette), axis=-1)  # [P, C]
        cosine = tf.einsum("bhwc,pc->bhwp", tf.math.l2_normalize(images, axis=-1), palette)
        keep = foreground & (tf.reduce_max(cosine, axis=-1) >= self.cosine_threshold)
        colour = tf.argmax(cosine, axis=-1, output_type=tf.int32) + 1
        return tf.where(keep, colour, 0)

    def call(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        colour_labels = self.colour_labels(images)  # [B, H, W]
        labels = connected_components(colour_labels, implementation=self.implementation)  # [B, H, W]
        shape = tf.shape(labels)
        batch, height, width = shape[0], shape[1], shape[2]

        flat_labels = tf.reshape(labels, [-1])
        pixel = tf.where(flat_labels > 0)[:, 0]  # flat index of every foreground pixel
        segment = tf.gather(flat_labels, pixel) - 1
        num_components = tf.reduce_max(tf.concat([flat_labels, [0]], 0))
        pixel = tf.cast(pixel, tf.int32)
        image_index = pixel // (height * width)
        row = (pixel // width) % height
        col = pixel % width

        def segment_min(values):
            return tf.math.unsorted_segment_min(values, segment, num_components)

        def segment_max(values):
            return tf.math.unsorted_segment_max(values, segment, num_components)

        row_min, row_max, col_min, col_max = segment_min(row), segment_max(row), segment_min(col), segment_max(col)
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        boxes = tf.stack(
            [tf.cast(row_min, tf.float32) / h, tf.cast(col_min, tf.float32) / w,
             tf.cast(row_max + 1, tf.float32) / h, tf.cast(col_max + 1, tf.float32) / w], axis=-1
        )  # [n, 4]
        centre = tf.stack([tf.cast(row, tf.float32), tf.cast(col, tf.float32)], -1) + 0.5
        centroids = tf.math.unsorted_segment_mean(centre, segment, num_components)  # [n, 2]
        colours = segment_max(tf.gather(tf.reshape(colour_labels, [-1]), pixel)) - 1  # [n]
        # Ids increase with the image index (tfa's contract), so the image of each component gives
        # sorted row ids for a ragged [B, (objects)] layout.
        owner = segment_min(image_index)

        def pad(values):
            return tf.RaggedTensor.from_value_rowids(values, owner, nrows=batch).to_tensor()

        return {
            "boxes": pad(boxes),
            "centroids": pad(centroids),
            "colours": pad(colours),
            "scores": pad(tf.ones_like(boxes[:, 0])),
            "num_objects": tf.math.bincount(owner, minlength=batch, maxlength=batch, dtype=tf.int32),
            "labels": labels,
        }


def detect(conncomp: ConnComp, images: np.ndarray, batch_size: int = 256) -> list[dict]:
    """Runs `conncomp` over `images` `[N, H, W, C]` in batches; one dict per image with
    "boxes" `[n, 4]`, "scores" `[n]`, "centroids" `[n, 2]`, "colours" `[n]` (numpy)."""
    check_not_empty(images, "ConnComp")
    results = []
    for start in range(0, len(images), batch_size):
        out = {k: v.numpy() for k, v in conncomp(images[start : start + batch_size]).items()}
        for i, n in enumerate(out["num_objects"]):
            results.append({k: out[k][i, :n] for k in ("boxes", "scores", "centroids", "colours")})
    return results


@dataclass(frozen=True)
class Track:
    """One video's tracking output: per frame, object ids `[n_t]` and boxes `[n_t, 4]`."""

    ids: list[np.ndarray]
    boxes: list[np.ndarray]


class ConnCompTracker:
    """ConnComp with Hungarian tracking between consecutive frames (SILOT supp. C).

    Args:
        conncomp: the per-frame detector (give it a palette to split components by colour).
        max_distance: matches further apart than this (pixels, between centroids) are forbidden.
            None (the seed: no gate) or 30.0 (the original code's `dist_threshold`).
    """

    def __init__(self, conncomp: ConnComp, max_distance: float | None = None):
        self.conncomp = conncomp
        self.max_distance = max_distance

    def match(self, previous: dict, current: dict) -> list[tuple[int, int]]:
        """Hungarian matching of two frames' objects on centroid distance; colour mismatch and
        (optionally) distance above `max_distance` are forbidden. Returns (previous, current) index pairs."""
        if len(previous["centroids"]) == 0 or len(current["centroids"]) == 0:
            return []
        distance = np.linalg.norm(previous["centroids"][:, None] - current["centroids"][None], axis=-1)
        forbidden = previous["colours"][:, None] != current["colours"][None]
        if self.max_distance is not None:
            forbidden |= distance > self.max_distance
        # A large finite cost (not inf, which scipy rejects when a row is all-forbidden) makes the
        # solver maximise the number of allowed matches first; forbidden pairs are then dropped.
        rows, cols = linear_sum_assignment(np.where(forbidden, _FORBIDDEN, distance))
        return [(r, c) for r, c in zip(rows, cols) if not forbidden[r, c]]

    def track(self, videos: np.ndarray, batch_size: int = 256) -> list[Track]:
        """Tracks objects in `videos` float `[N, T, H, W, C]`; returns one `Track` per video."""
        videos = np.asarray(videos)
        if videos.ndim != 5:
            raise ValueError(f"videos must have shape [N, T, H, W, C]; got {videos.shape}")
        check_not_empty(videos, "ConnCompTracker", videos=True)
        num_videos, num_frames = videos.shape[:2]
        frames = detect(self.conncomp, videos.reshape(-1, *videos.shape[2:]), batch_size)
        tracks = []
        for v in range(num_videos):
            detections = frames[v * num_frames : (v + 1) * num_frames]
            next_id = 1
            ids = []
            for t, current in enumerate(detections):
                current_ids = np.zeros(len(current["boxes"]), np.int64)
                if t > 0:
                    for p, c in self.match(detections[t - 1], current):
                        current_ids[c] = ids[-1][p]
                for c in np.flatnonzero(current_ids == 0):
                    current_ids[c], next_id = next_id, next_id + 1
                ids.append(current_ids)
            tracks.append(Track(ids=ids, boxes=[d["boxes"] for d in detections]))
        return tracks
