"""Adjusted Rand index (ARI) of predicted segmentations, per image: the object-discovery metric of TUSK (and of
Slot Attention, MONet, IODINE, ...), usually over the foreground pixels only ("FG-ARI").

Shapes use B (images) and H, W (pixels). Labels are integer ids; true label 0 is the background.

ARI (Hubert & Arabie 1985) compares two partitions of the same pixels, counted over pixel pairs: with tp the
pairs in one cluster in both labelings, fn the pairs together in the truth but split in the prediction, fp the
reverse and tn the pairs split in both,

    ARI = 2·(tp·tn − fn·fp) / ((tp + fn)·(fn + tn) + (tp + fp)·(fp + tn)),

which equals Hubert & Arabie's (index − expected index) / (max index − expected index) and is the form of
`sklearn.metrics.adjusted_rand_score`. 1 for identical partitions (up to renaming the labels), about 0 for a
random one, and it can be negative.

Degenerate images. The formula is 0/0 exactly when the two partitions are identical *and* either every pair is
joined (both labelings put every considered pixel in one cluster), or every pair is split (one pixel per
cluster), or there are no pairs (0 or 1 considered pixel). tfobj returns 1.0 for identical partitions, so 1.0
in all these cases. This is scikit-learn's rule (`adjusted_rand_score` returns 1.0 when fn = fp = 0), so it is
what TUSK's own evaluation computes (ubc-vision/TUSK@04ba610, `inference_multi_objects.py`, `average_ari`,
which calls scikit-learn per image on the foreground pixels; an image without foreground gives it 1.0).
DeepMind's reference (multi_object_datasets, `segmentation_metrics.py`, `adjusted_rand_index`) special-cases
only "one cluster in both" to 1.0, and tests it over *all* the image's points, background included (the argmax
of a zero-hot background row is 0). So with the background ignored it returns NaN (0/0) for an image without
foreground pixels, and for one whose foreground is a single object predicted as a single cluster, unless the
prediction is constant over the whole image and the object is in the first mask channel; and it refuses (raises
on) inputs with no more points than groups, where one cluster per point would be possible. Images without
foreground are rare in the object-discovery sets (Tetrominoes always holds 3 objects, CLEVR6 3–6 before its
centre crop); to leave them out of an average, select `(true_masks != 0).any(axis=(1, 2))` first.

Implementation: one contingency table per image, built for the whole batch at once with `np.unique` over
(image, true label, predicted label) keys, then pair counts C(n, 2) summed per image with `np.bincount`. The
pair counts are exact integers (float64 holds them exactly below 2^53, i.e. for images of up to ~1e8
considered pixels); only the final products and division round (relative error ~1e-15).
"""
from __future__ import annotations

import numpy as np

__all__ = ["adjusted_rand_index"]


def adjusted_rand_index(true_masks, pred_masks, foreground_only: bool = True) -> np.ndarray:
    """Adjusted Rand index of each image's predicted segmentation against the true one.

    Args:
        true_masks: integer `[B, H, W]` true label maps; 0 is the background, any other value an object id.
        pred_masks: integer `[B, H, W]` predicted label maps (any integer ids, e.g. the argmax over TUSK's K
            alpha maps, or over slots).
        foreground_only: if True (the object-discovery convention, TUSK's `average_ari(foreground_only=True)`),
            only pixels with a nonzero true label are compared; otherwise all pixels, background being one
            more true cluster.

    Returns:
        float64 `[B]`, the ARI of each image over the considered pixels, in [−1, 1]; 1.0 when the two labelings
        partition those pixels identically, including the degenerate cases (see the module docstring): both
        put every considered pixel in a single cluster, or there are fewer than two considered pixels
        (e.g. no foreground).

    Raises:
        ValueError: if either array is not of integer dtype or not of rank 3, or their shapes differ.

    References:
        - Hubert & Arabie, "Comparing partitions", J. Classification 2, 1985.
        - `sklearn.metrics.adjusted_rand_score` (same formula and degenerate-case rule, one image at a time).
        - DeepMind multi_object_datasets, `segmentation_metrics.adjusted_rand_index` (FG-ARI in TensorFlow).
    """
    true = _as_label_maps("true_masks", true_masks)
    pred = _as_label_maps("pred_masks", pred_masks)
    if true.shape != pred.shape:
        raise ValueError(
            f"true_masks and pred_masks must have the same shape [B, H, W]; got {true.shape} and {pred.shape}"
        )
    num_images, height, width = true.shape
    true = true.reshape(num_images, height * width)  # [B, H*W] (explicit: -1 fails for B = 0)
    pred = pred.reshape(num_images, height * width)
    considered = true != 0 if foreground_only else np.ones(true.shape, bool)  # [B, H*W]

    image = np.broadcast_to(np.arange(num_images, dtype=np.int64)[:, None], true.shape)[considered]  # [M]
    true_ids = _dense_ids(true[considered])  # [M], in 0..(distinct true labels − 1)
    pred_ids = _dense_ids(pred[considered])
    joint_ids = _dense_ids(true_ids * (pred_ids.max(initial=0) + 1) + pred_ids)  # one id per (true, pred) pair

    together_both = _pairs_per_image(image, joint_ids, num_images)  # Σ_ij C(n_ij, 2)
    together_true = _pairs_per_image(image, true_ids, num_images)  # Σ_i C(a_i, 2)
    together_pred = _pairs_per_image(image, pred_ids, num_images)  # Σ_j C(b_j, 2)
    num_pixels = considered.sum(axis=1, dtype=np.int64)  # [B]
    all_pairs = num_pixels * (num_pixels - 1) // 2

    tp = together_both
    fn = together_true - together_both
    fp = together_pred - together_both
    tn = all_pairs - tp - fn - fp
    identical = (fn == 0) & (fp == 0)  # the only case where the denominator can be 0 (see module docstring)
    tp, fn, fp, tn = (x.astype(np.float64) for x in (tp, fn, fp, tn))
    numerator = 2.0 * (tp * tn - fn * fp)
    denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)  # > 0 unless identical: no cancellation here
    return np.where(identical, 1.0, numerator / np.where(identical, 1.0, denominator))


def _as_label_maps(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label map [B, H, W]; got dtype {x.dtype}")
    if x.ndim != 3:
        hint = " (add a batch axis for one image: masks[None])" if x.ndim == 2 else ""
        raise ValueError(f"{name} must have shape [B, H, W] (rank 3){hint}; got shape {x.shape}")
    return x


def _dense_ids(labels: np.ndarray) -> np.ndarray:
    """Labels renamed 0..L−1 in sorted order, int64."""
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _pairs_per_image(image: np.ndarray, ids: np.ndarray, num_images: int) -> np.ndarray:
    """Σ over the clusters of each image of C(size, 2): the number of pixel pairs in one cluster, int64 `[B]`."""
    num_ids = ids.max(initial=0) + 1
    keys = image * num_ids + ids  # one key per (image, cluster); < B·M, no overflow
    clusters, sizes = np.unique(keys, return_counts=True)
    cluster_image = clusters // num_ids
    pairs = np.bincount(cluster_image, weights=sizes * (sizes - 1) // 2, minlength=num_images)  # exact < 2^53
    return np.rint(pairs).astype(np.int64)
