"""Whether the ops being built will be compiled by XLA."""
from __future__ import annotations

import tensorflow as tf


def in_xla_context() -> bool:
    """Whether ops are being traced for XLA (`tf.function(jit_compile=True)`, Keras `jit_compile=True`),
    even inside a nested function.

    Uses TF's private control-flow utility (present in TF 2.15 to 2.21); if it moves, returns False.
    """
    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except Exception:  # noqa: BLE001 - best effort only
        return False
