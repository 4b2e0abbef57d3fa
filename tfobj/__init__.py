"""tfobj: unsupervised object-centric vision models and baselines in TensorFlow 2 / Keras 3.

Top-level names are imported lazily, so that `tfobj.ops` (pure TensorFlow) also imports on the
TF 2.15 compatibility stack without pulling in Keras 3.
"""
import importlib

__version__ = "0.1.0"

_LAZY = {
    "ConnComp": "tfobj.models.baselines.conncomp",
    "ConnCompTracker": "tfobj.models.baselines.conncomp",
    "SPAIR": "tfobj.models.spair.spair",
    "SPAIRConfig": "tfobj.models.spair.spair_config",
    "connected_components": "tfobj.ops.connected_components",
    "count_prior_kl": "tfobj.models.spair.count_prior",
    "count_prior_log_prob": "tfobj.models.spair.count_prior",
    "load_mnist": "tfobj.data.digits",
    "render_sprites": "tfobj.rendering.render_sprites",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfobj' has no attribute {name!r}")
