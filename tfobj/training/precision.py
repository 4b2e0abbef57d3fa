"""The dtype policy and XLA switches of the training entry points."""
from __future__ import annotations

import tensorflow as tf

__all__ = ["PRECISIONS", "XLA_MODES", "dtype_policy", "jit_compile"]

PRECISIONS = ("auto", "float32", "mixed")
XLA_MODES = ("auto", "on", "off")


def dtype_policy(precision: str) -> str:
    """The Keras dtype policy for a `precision` setting.

    "float32": float32. "mixed": `mixed_float16` on a GPU (Keras then wraps the optimizer for loss
    scaling), `mixed_bfloat16` without one. "auto": `mixed_float16` on a GPU, float32 without one (so
    full runs on a GPU use mixed precision and CPU runs stay in float32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if precision == "float32" or (precision == "auto" and not gpu):
        return "float32"
    return "mixed_float16" if gpu else "mixed_bfloat16"


def jit_compile(xla: str):
    """Keras' `compile(jit_compile=...)` for an `xla` setting: "auto" (Keras decides: XLA on a GPU, not on
    CPU), "on" (True) or "off" (False)."""
    if xla not in XLA_MODES:
        raise ValueError(f"xla must be one of {XLA_MODES}; got {xla!r}")
    return {"auto": "auto", "on": True, "off": False}[xla]
