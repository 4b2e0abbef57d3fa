"""Export trained models as TensorFlow SavedModels for TF Serving (`keras.export.ExportArchive`)."""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf


def export_saved_model(model, path: str | Path) -> Path:
    """Writes `model` (a `tfobj.SPAIR`) as a SavedModel with a `serving_default` signature.

    Signature: `images` float32 `[batch, H, W, 3]` in [0, 1] (batch, H and W unknown; H and W must be
    multiples of 12 at call time) → `boxes` `[batch, N, 4]` normalised (y_min, x_min, y_max, x_max),
    `scores` `[batch, N]` (presence probability), `z_pres` `[batch, N]` (0/1), `num_objects` `[batch]`,
    `reconstruction` `[batch, H, W, 3]`, for the N = (H/12)·(W/12) cells in raster order. Deterministic:
    the posterior mode (no sampling), as `model(images, training=False)`.

    The SavedModel needs only TensorFlow to load (`tf.saved_model.load(path).signatures["serving_default"]`).

    Returns:
        The path written.
    """
    if not model.built:
        raise ValueError("model must be built (call it on a batch of images) before export")
    path = Path(path)

    def serve(images):
        out = model(images, training=False)
        return {key: out[key] for key in ("boxes", "scores", "z_pres", "num_objects", "reconstruction")}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    archive.write_out(str(path), verbose=False)
    return path
