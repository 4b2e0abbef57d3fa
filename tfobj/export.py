"""Export trained models as TensorFlow SavedModels for TF Serving (`keras.export.ExportArchive`)."""
from __future__ import annotations

from pathlib import Path

import keras

__all__ = ["export_saved_model"]


def export_saved_model(model, path: str | Path) -> Path:
    """Writes any tfobj model as a SavedModel with the signatures the model declares.

    Every tfobj model (and `ConnComp`) has `serving_endpoints()`: `{name: (function, input_signature)}`,
    documented on the model (SPAIR: `images [batch, H, W, 3]` -> boxes, scores, z_pres, num_objects,
    reconstruction). Each becomes an endpoint of the SavedModel; "serve" is its `serving_default`. The
    functions run in inference mode (the posterior mode), with the batch and image sizes left unknown.

    The SavedModel needs only TensorFlow to load: `tf.saved_model.load(path).signatures["serving_default"]`.

    Args:
        model: a built tfobj model (call it on a batch first).
        path: the directory to write.

    Returns:
        The path written.

    Raises:
        ValueError: the model is not built, or declares no serving endpoints.
    """
    if not getattr(model, "built", False):
        raise ValueError("model must be built (call it on a batch of images) before export")
    endpoints = model.serving_endpoints() if hasattr(model, "serving_endpoints") else {}
    if "serve" not in endpoints:
        raise ValueError(f"{type(model).__name__} declares no 'serve' endpoint in serving_endpoints(); every tfobj "
                         "model lists its SavedModel signatures there")
    path = Path(path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, input_signature) in endpoints.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    archive.write_out(str(path), verbose=False)
    return path
