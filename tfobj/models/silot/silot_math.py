"""SILOT's attribute updates (supplement A.1), Gaussian attention weights (B) and object selection, as pure
functions.

Units. Positions y, x are in anchor units (pixels / a, a = 48 px), the units of the spatial attention's kernel
(σ = 0.1: 4.8 px) in the original code; sizes h, w are fractions of the anchor in (0, 1) (the box is a·h pixels
high); depth is in (0, 1), larger = in front (A.2). Shapes: B batch, K objects (or slots), N discovered objects.
"""
from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["gaussian_weight", "select_objects", "update_depth", "update_position", "update_size"]

_EPSILON = 1e-6  # keeps logit(o) finite for o at 0 or 1


def _logit(p):
    p = tf.clip_by_value(p, _EPSILON, 1.0 - _EPSILON)
    return tf.math.log(p) - tf.math.log1p(-p)


def update_position(previous, z):
    """f^{y/x}: o_(t−1) + tanh(z̃) (A.1): an object moves by less than one anchor per frame."""
    return previous + tf.tanh(z)


def update_size(previous, z):
    """f^{h/w}: sigm(sigm⁻¹(o_(t−1)) + z̃) for sizes as fractions of the anchor (A.1 writes a·sigm(...) for the
    size in pixels, a the anchor)."""
    return tf.sigmoid(_logit(previous) + z)


def update_depth(previous, z):
    """f^depth: sigm(sigm⁻¹(o_(t−1)) + z̃) (A.1)."""
    return tf.sigmoid(_logit(previous) + z)


def gaussian_weight(relative, std: float):
    """G(y′, x′, σ): the density of N(0, σ²I₂) at `relative` `[..., 2]` -> `[...]` (B.1, B.2)."""
    relative = tf.convert_to_tensor(relative)
    squared = tf.reduce_sum(tf.square(relative), axis=-1)
    return tf.exp(-0.5 * squared / (std * std)) / (2.0 * math.pi * std * std)


def select_objects(propagated_pres, discovered_pres, num_slots: int | None = None):
    """SILOT's selection: the K objects of highest presence among the K propagated and N discovered ones.

    A propagated object that is selected keeps its slot (and so its identity); the slots of the propagated
    objects that are not selected are filled, in slot order, with the selected discovered objects, in the
    order of their index (the original code: e2crawfo/silot, branch aaai_2020, `select_top_k_objects`).
    Ties in presence go to the lower index of [propagated, discovered] (`tf.math.top_k`).

    Args:
        propagated_pres: float `[B, K]` presence of the propagated objects (slot k).
        discovered_pres: float `[B, N]` presence of the discovered objects, N >= K.
        num_slots: K (default: the propagated objects' count).

    Returns:
        (source `[B, K]` int32: the index in [propagated (K), discovered (N)] of the object each slot holds,
        is_new `[B, K]` bool: the slot holds a discovered object, which gets a new identity).
    """
    propagated_pres = tf.convert_to_tensor(propagated_pres)
    discovered_pres = tf.convert_to_tensor(discovered_pres, propagated_pres.dtype)
    slots = num_slots or propagated_pres.shape[-1]
    if slots is None:
        raise ValueError("select_objects: the number of slots K must be static (pass num_slots)")
    if discovered_pres.shape[-1] is not None and discovered_pres.shape[-1] < slots:
        raise ValueError(f"select_objects: needs at least K = {slots} discovered objects; got {discovered_pres.shape}")
    everything = tf.concat([propagated_pres, discovered_pres], axis=-1)  # [B, K + N]
    _, chosen = tf.math.top_k(everything, k=slots)  # [B, K]
    kept = tf.reduce_any(tf.equal(chosen[:, :, None], tf.range(slots)[None, None, :]), axis=1)  # [B, K]: slot kept
    # The selected discovered objects in index order: their indices, the propagated ones moved to the end.
    large = tf.shape(everything)[1]
    discovered_chosen = tf.sort(tf.where(chosen >= slots, chosen, large), axis=-1)  # [B, K]
    # Freed slot j (the r-th freed slot in slot order) takes the r-th selected discovered object.
    rank = tf.cumsum(tf.cast(~kept, tf.int32), axis=-1, exclusive=True)  # [B, K]
    filled = tf.gather(discovered_chosen, rank, batch_dims=1)
    source = tf.where(kept, tf.range(slots)[None, :], filled)
    return tf.cast(source, tf.int32), ~kept
