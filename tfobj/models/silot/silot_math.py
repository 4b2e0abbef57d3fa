"""SILOT's attribute updates (supplement A.1), Gaussian attention weights (B) and object selection, as pure
functions.

Units. Positions y, x are in anchor units (pixels / a, a = 48 px), the units of the spatial attention's kernel
(σ = 0.1: 4.8 px) in the original code; sizes h, w are fractions of the anchor in (0, 1) (the box is a·h pixels
high); depth is in (0, 1), larger = in front (A.2). Shapes: B batch, K objects (or slots), N discovered objects.
"""
from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["gated_what", "gaussian_weight", "glimpse_box", "logit", "normal_kl", "object_boxes", "object_positions",
           "propagation_kl", "select_objects", "spatial_attention", "static_propagation_prior", "update_depth", "update_position",
           "update_presence", "update_size"]

_EPSILON = 1e-6  # keeps logit(o) finite for o at 0 or 1


def logit(p):
    """sigm⁻¹(p), p clipped to [1e-6, 1 − 1e-6] so it is finite."""
    p = tf.clip_by_value(p, _EPSILON, 1.0 - _EPSILON)
    return tf.math.log(p) - tf.math.log1p(-p)


def update_position(previous, z):
    """f^{y/x}: o_(t−1) + tanh(z̃) (A.1): an object moves by less than one anchor per frame."""
    return previous + tf.tanh(z)


def update_size(previous, z):
    """f^{h/w}: sigm(sigm⁻¹(o_(t−1)) + z̃) for sizes as fractions of the anchor (A.1 writes a·sigm(...) for the
    size in pixels, a the anchor)."""
    return tf.sigmoid(logit(previous) + z)


def update_depth(previous, z):
    """f^depth: sigm(sigm⁻¹(o_(t−1)) + z̃) (A.1)."""
    return tf.sigmoid(logit(previous) + z)


def update_presence(previous, factor):
    """z_pres of a propagated object: o_(t−1)^pres · factor, the factor a Concrete sample sigm(pre-sigmoid) in
    [0, 1] (or its hard 0/1 version) (e2crawfo/silot aaai_2020, propagation.py): an object can only fade, and
    one that is absent stays absent."""
    return previous * factor


GATE_BIAS = 1.0  # SQAIR's gates: sigm(logit + 1)·0.9999 (original code)
GATE_SCALE = 0.9999


def gated_what(previous, input_mean, input_std, temporal_mean, temporal_std, gate_logits):
    """SQAIR's gated what update (the function A.1 defers to "the accompanying code": e2crawfo/silot aaai_2020,
    `SQAIRPropagationLayer`), the posterior over the new what attribute:

        f, i, t = sigm(gate_logits + 1)·0.9999
        mean = f·o_(t−1)^what + (1 − i)·mean_input + (1 − t)·mean_temporal
        std  = (1 − i)·std_input + (1 − t)·std_temporal

    with (mean_input, std_input) predicted from the glimpse alone and (mean_temporal, std_temporal) from the
    object's features, its new box and the glimpse. `gate_logits` `[..., 3A]` (f, i, t); the rest `[..., A]`.
    Returns (mean, std, gates `[..., 3A]`).
    """
    gates = tf.sigmoid(gate_logits + GATE_BIAS) * GATE_SCALE
    forget, keep_input, keep_temporal = tf.split(gates, 3, axis=-1)
    mean = forget * previous + (1.0 - keep_input) * input_mean + (1.0 - keep_temporal) * temporal_mean
    std = (1.0 - keep_input) * input_std + (1.0 - keep_temporal) * temporal_std
    return mean, std, gates


def object_boxes(positions, sizes, image_size, anchor_size):
    """Objects' (y, x) centres in anchor units and (h, w) as fractions of the anchor `[..., 2]` each -> boxes
    `[..., 4]` normalised (y_min, x_min, y_max, x_max) in an image of `image_size` = (H, W) pixels."""
    dtype = positions.dtype
    image = tf.cast(tf.stack(image_size), dtype)
    anchor = tf.constant(anchor_size, dtype)
    centre = positions * anchor / image  # [..., 2] normalised
    half = 0.5 * sizes * anchor / image
    return tf.concat([centre - half, centre + half], axis=-1)


def object_positions(boxes, image_size, anchor_size):
    """The inverse of `object_boxes` for the centre: boxes `[..., 4]` normalised -> (y, x) `[..., 2]` anchor units."""
    dtype = boxes.dtype
    image = tf.cast(tf.stack(image_size), dtype)
    return 0.5 * (boxes[..., :2] + boxes[..., 2:]) * image / tf.constant(anchor_size, dtype)


GLIMPSE_STEP = 0.1  # original code (SQAIR): glimpse′ = box + 0.1·prediction


def glimpse_box(positions, sizes, offsets):
    """Where propagation looks first (original code, after SQAIR): (y, x, h, w) + 0.1·offsets, `offsets` `[..., 4]`
    predicted by p_glimpse; returns (positions, sizes) `[..., 2]` each. A negative size reads the glimpse
    mirrored, as the original's affine warper does."""
    return positions + GLIMPSE_STEP * offsets[..., :2], sizes + GLIMPSE_STEP * offsets[..., 2:]


def normal_kl(mean, std, prior_mean, prior_std):
    """KL(N(mean, std²) ‖ N(prior_mean, prior_std²)), elementwise (broadcasting)."""
    ratio = tf.square(std / prior_std)
    return 0.5 * (ratio + tf.square((mean - prior_mean) / prior_std) - 1.0 - tf.math.log(ratio))


def static_propagation_prior(yx, hw, what, depth):
    """Table 1's propagation priors, each (μ, σ), as the `prior` of `propagation_kl`."""
    return {"where_mean": tf.constant([yx[0]] * 2 + [hw[0]] * 2, tf.float32),
            "where_std": tf.constant([yx[1]] * 2 + [hw[1]] * 2, tf.float32),
            "what_mean": tf.constant(what[0], tf.float32), "what_std": tf.constant(what[1], tf.float32),
            "depth_mean": tf.constant(depth[0], tf.float32), "depth_std": tf.constant(depth[1], tf.float32)}


def propagation_kl(posterior, prior, size_prior: str = "update"):
    """The propagation's Normal KL terms per object, each `[B, K]` (summed over the attribute's dimensions, not
    yet weighted by presence).

    Args:
        posterior: a `PropagationCell`'s outputs: "where_mean"/"where_std" `[B, K, 4]` of z̃^{y,x,h,w},
            "size_logit_mean" `[B, K, 2]`, "what_mean"/"what_std" `[B, K, A]` of the what update (new − old),
            "depth_mean"/"depth_std" `[B, K, 1]` of z̃^depth.
        prior: the same keys, broadcastable: `static_propagation_prior(...)` (Table 1) or the outputs of the
            learned prior (a `PropagationCell(posterior=False)`, G.1).
        size_prior: "update" (the seed: the prior is on z̃^{h,w}) or "absolute" (the original code: on the new
            size's logit, sigm⁻¹(o^{h,w}_(t−1)) + z̃^{h,w}; use with a static prior of (−2.197, 0.5)).

    Returns:
        {"where": ..., "what": ..., "depth": ...}.
    """
    if size_prior not in ("update", "absolute"):
        raise ValueError(f"size_prior must be 'update' or 'absolute'; got {size_prior!r}")
    where_mean = posterior["where_mean"]
    if size_prior == "absolute":
        where_mean = tf.concat([where_mean[..., :2], posterior["size_logit_mean"]], axis=-1)
    return {
        "where": tf.reduce_sum(normal_kl(where_mean, posterior["where_std"], prior["where_mean"],
                                         prior["where_std"]), -1),
        "what": tf.reduce_sum(normal_kl(posterior["what_mean"], posterior["what_std"], prior["what_mean"],
                                        prior["what_std"]), -1),
        "depth": tf.reduce_sum(normal_kl(posterior["depth_mean"], posterior["depth_std"], prior["depth_mean"],
                                         prior["depth_std"]), -1),
    }


def gaussian_weight(relative, std: float):
    """G(y′, x′, σ): the density of N(0, σ²I₂) at `relative` `[..., 2]` -> `[...]` (B.1, B.2)."""
    relative = tf.convert_to_tensor(relative)
    squared = tf.reduce_sum(tf.square(relative), axis=-1)
    return tf.exp(-0.5 * squared / (std * std)) / (2.0 * math.pi * std * std)



def spatial_attention(query_yx, object_yx, object_features, mlp, sigma: float, query_features=None,
                      object_mask=None):
    """Spatial attention (supplement B), shared by discovery (B.1) and propagation (B.2): for every query q,

        Σ_k mask_k · G(rel_qk, σ) · mlp(concat[object_features_k, rel_qk, query_features_q]),  rel_qk = yx_k − yx_q,

    G the density of N(0, σ²I₂) (`gaussian_weight`). Positions are in the original code's anchor units
    (pixels / 48): σ = 0.1 is 4.8 px. Vectorised over all queries and objects.

    Args:
        query_yx: float `[B, Q, 2]` (or `[Q, 2]`, the same for every batch row).
        object_yx: float `[B, K, 2]`.
        object_features: float `[B, K, F]`, the objects' attributes without y, x.
        mlp: a callable on the last axis, `[..., F + 2 (+ E)] -> [..., D]`.
        sigma: σ of the kernel, anchor units.
        query_features: float `[B, Q, E]` or None.
        object_mask: float `[B, K]` or None; objects with mask 0 contribute nothing.

    Returns:
        float `[B, Q, D]`.
    """
    query_yx, object_yx = tf.convert_to_tensor(query_yx), tf.convert_to_tensor(object_yx)
    object_features = tf.convert_to_tensor(object_features)
    if query_yx.shape.rank == 2:
        query_yx = tf.broadcast_to(query_yx[None], tf.concat([tf.shape(object_yx)[:1], tf.shape(query_yx)], 0))
    relative = object_yx[:, None, :, :] - tf.cast(query_yx, object_yx.dtype)[:, :, None, :]  # [B, Q, K, 2]
    shape = tf.shape(relative)
    inputs = [tf.broadcast_to(object_features[:, None], tf.concat([shape[:3], tf.shape(object_features)[-1:]], 0)),
              tf.cast(relative, object_features.dtype)]
    if query_features is not None:
        query_features = tf.convert_to_tensor(query_features)
        inputs.append(tf.broadcast_to(query_features[:, :, None],
                                      tf.concat([shape[:3], tf.shape(query_features)[-1:]], 0)))
    values = mlp(tf.concat(inputs, axis=-1))  # [B, Q, K, D]
    weights = gaussian_weight(relative, sigma)  # [B, Q, K]
    if object_mask is not None:
        weights = weights * tf.cast(object_mask, weights.dtype)[:, None, :]
    return tf.reduce_sum(tf.cast(weights, values.dtype)[..., None] * values, axis=2)  # [B, Q, D]

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
