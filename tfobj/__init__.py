"""tfobj: unsupervised object-centric vision models and baselines in TensorFlow 2 / Keras 3.

The public names are listed once, in `_PUBLIC` (name -> module); `tests/test_public_api.py` imports every
one. With Keras 3 (the primary stack) importing tfobj imports the modules behind them and every module that
registers Keras objects (`_KERAS_MODULES`), which registers every tfobj layer and model with Keras, so `keras.models.load_model("model.keras")` works after `import tfobj`.
On the TF 2.15 compatibility stack (Keras 2) only `tfobj.ops` is usable, and names resolve on first use.
"""
import importlib
import os

if os.environ.get("TFOBJ_QUIET_STARTUP") == "1":  # set by the reproduce scripts: see tfobj/_quiet.py
    from tfobj._quiet import filter_stderr

    filter_stderr()

__version__ = "0.1.0"

_PUBLIC = {
    "ConnComp": "tfobj.models.baselines.conncomp",
    "ConnCompTracker": "tfobj.models.baselines.conncomp",
    "ConvVAE": "tfobj.models.baselines.conv_vae",
    "ConvVAEConfig": "tfobj.models.baselines.conv_vae",
    "LAVAE": "tfobj.models.lavae.lavae",
    "LAVAEConfig": "tfobj.models.lavae.lavae_config",
    "SILOT": "tfobj.models.silot.silot",
    "SILOTConfig": "tfobj.models.silot.silot_config",
    "SPAIR": "tfobj.models.spair.spair",
    "SPAIRConfig": "tfobj.models.spair.spair_config",
    "TUSK": "tfobj.models.tusk.tusk",
    "TUSKConfig": "tfobj.models.tusk.tusk_config",
    "TrainConfig": "tfobj.training.train_config",
    "connected_components": "tfobj.ops.connected_components",
    "count_prior_kl": "tfobj.models.spair.count_prior",
    "count_prior_log_prob": "tfobj.models.spair.count_prior",
    "export_saved_model": "tfobj.export",
    "fit_model": "tfobj.training.fit",
    "load_mnist": "tfobj.data.digits",
    "location_log_prob": "tfobj.models.lavae.location",
    "location_prior_log_prob": "tfobj.models.lavae.location",
    "plot_objects": "tfobj.figures",
    "plot_prototypes": "tfobj.figures",
    "plot_silot_objects": "tfobj.figures",
    "plot_tusk_keypoints": "tfobj.figures",
    "render_sprites": "tfobj.rendering.render_sprites",
    "render_sprites_softmax": "tfobj.rendering.render_sprites",
    "spatial_attention": "tfobj.models.silot.silot_math",
    "sliced_wasserstein": "tfobj.models.tusk.sliced_wasserstein",
    "soft_argmax": "tfobj.models.tusk.keypoints",
}

__all__ = sorted(_PUBLIC)

# Every module that registers Keras layers or models (`keras.saving.register_keras_serializable`), so that after
# `import tfobj` any saved `.keras` file of a tfobj model loads; tests/test_public_api.py checks the list is whole.
_KERAS_MODULES = (
    "tfobj.layers.glimpse", "tfobj.layers.mlp", "tfobj.layers.padded_conv_backbone", "tfobj.layers.residual_block",
    "tfobj.models.baselines.conncomp", "tfobj.models.baselines.conv_vae", "tfobj.models.lavae.lavae", "tfobj.models.lavae.lavae_layers",
    "tfobj.models.silot.silot", "tfobj.models.silot.silot_cells", "tfobj.models.silot.silot_layers", "tfobj.models.spair.spair", "tfobj.models.spair.spair_layers",
    "tfobj.models.tusk.tusk", "tfobj.models.tusk.tusk_decoders", "tfobj.models.tusk.tusk_layers", "tfobj.rendering.render_sprites",
    "tfobj.training.optimizers",
)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tfobj' has no attribute {name!r}")


def _keras_major() -> int:
    try:
        import keras
    except ImportError:
        return 0
    return int(keras.__version__.split(".")[0])


if _keras_major() >= 3:
    for _module in sorted(set(_PUBLIC.values()) | set(_KERAS_MODULES)):
        importlib.import_module(_module)
