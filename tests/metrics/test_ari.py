"""Adjusted Rand index against scikit-learn (one image at a time, as TUSK's evaluation calls it), a hand-worked
example, and the degenerate cases."""
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tfobj.metrics.ari import adjusted_rand_index


def sklearn_per_image(true_masks, pred_masks, foreground_only):
    """TUSK's `average_ari` recipe per image: flatten, keep true label > 0 (here != 0), call scikit-learn."""
    out = []
    for true, pred in zip(true_masks, pred_masks):
        true, pred = true.ravel(), pred.ravel()
        if foreground_only:
            true, pred = true[true != 0], pred[true != 0]
        out.append(adjusted_rand_score(true, pred))
    return np.array(out)


def random_label_maps(rng, num_images, height, width):
    """Mixed batch: random labelings, noisy copies of the truth, and coarse/fine re-partitions of it."""
    true = np.zeros((num_images, height, width), np.int64)
    pred = np.zeros_like(true)
    for i in range(num_images):
        num_objects = rng.integers(1, 7)
        true[i] = rng.integers(0, num_objects + 1, (height, width))
        kind = i % 4
        if kind == 0:  # unrelated prediction
            pred[i] = rng.integers(0, rng.integers(1, 8), (height, width))
        elif kind == 1:  # the truth with 20% of pixels relabelled
            noisy = rng.random((height, width)) < 0.2
            pred[i] = np.where(noisy, rng.integers(0, 8, (height, width)), true[i] + 10)
        elif kind == 2:  # merged clusters (coarser)
            pred[i] = true[i] // 2
        else:  # split clusters (finer)
            pred[i] = true[i] * 3 + rng.integers(0, 3, (height, width))
    return true, pred


# --- against scikit-learn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("foreground_only", [True, False])
def test_matches_sklearn_on_random_label_maps(foreground_only):
    rng = np.random.default_rng(0 if foreground_only else 1)
    true, pred = random_label_maps(rng, 200, 9, 13)
    got = adjusted_rand_index(true, pred, foreground_only=foreground_only)
    assert got.dtype == np.float64 and got.shape == (200,)
    expected = sklearn_per_image(true, pred, foreground_only)
    # Both evaluate the same pair-count formula; scikit-learn in exact python ints, tfobj in float64 products
    # of exact counts (< 2^53), which round at ~1e-16 relative: atol 1e-12.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got.min() < 0.1 and got.max() > 0.6  # the batch spans unrelated and near-perfect predictions


@pytest.mark.parametrize("foreground_only", [True, False])
def test_matches_sklearn_on_large_images(foreground_only):
    # 112×112 (TUSK's CLEVR/Tetrominoes resolution): ~7.9e7 pixel pairs, products of counts ~1e15..1e16.
    rng = np.random.default_rng(2)
    true = np.repeat(np.repeat(rng.integers(0, 7, (4, 14, 14)), 8, axis=1), 8, axis=2)  # blocky objects
    pred = np.where(rng.random(true.shape) < 0.05, rng.integers(0, 7, true.shape), (true + 3) % 7)
    pred[3] = rng.integers(0, 7, true.shape[1:])  # one unrelated prediction: ARI near 0
    got = adjusted_rand_index(true, pred, foreground_only)
    np.testing.assert_allclose(got, sklearn_per_image(true, pred, foreground_only), rtol=0, atol=1e-12)
    assert abs(got[3]) < 0.01 and np.all(got[:3] > 0.8)


def test_hand_worked_example():
    # Pairs of the 4 pixels: truth {0,1}{2,3} vs prediction {0,2}{1,3}: tp = 0, fn = 2, fp = 2, tn = 2,
    # ARI = 2(0·2 − 2·2) / ((0 + 2)(2 + 2) + (0 + 2)(2 + 2)) = −8/16 = −0.5.
    true = np.array([[[1, 1], [2, 2]]])
    pred = np.array([[[0, 1], [0, 1]]])
    np.testing.assert_array_equal(adjusted_rand_index(true, pred), [-0.5])
    np.testing.assert_array_equal(adjusted_rand_index(true, pred, foreground_only=False), [-0.5])  # no background


# --- invariances and the foreground mask --------------------------------------------------------------------


def test_label_permutation_invariance():
    rng = np.random.default_rng(3)
    true, pred = random_label_maps(rng, 40, 8, 8)
    reference = adjusted_rand_index(true, pred)
    pred_map = rng.permutation(32) * 10**9 - 7  # arbitrary (also negative, large) ids, a bijection
    true_map = np.concatenate([[0], rng.permutation(np.arange(1, 20)) * 1000 - 500])  # keeps 0 = background
    assert np.all(true_map[1:] != 0)
    # The same partitions give the same integer pair counts, so the results are identical to the last bit.
    np.testing.assert_array_equal(adjusted_rand_index(true_map[true], pred_map[pred]), reference)
    np.testing.assert_array_equal(adjusted_rand_index(true, pred, False),
                                  adjusted_rand_index(true_map[true], pred_map[pred], False))
    # Swapping the roles of truth and prediction: ARI is symmetric (all pixels; the mask would change).
    np.testing.assert_allclose(adjusted_rand_index(pred + 1, true + 1, False), adjusted_rand_index(true, pred, False),
                               rtol=0, atol=1e-15)
    for dtype in (np.uint8, np.int16, np.int32):
        np.testing.assert_array_equal(adjusted_rand_index(true.astype(dtype), pred.astype(dtype)), reference)


def test_background_pixels_are_ignored_only_in_foreground_mode():
    true = np.array([[[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]]])
    pred = true.copy()
    pred[0, :, :2] = [[5, 1], [2, 3], [3, 5]]  # arbitrary labels on the background
    np.testing.assert_array_equal(adjusted_rand_index(true, pred), [1.0])
    got_all = adjusted_rand_index(true, pred, foreground_only=False)
    assert got_all[0] < 1.0
    np.testing.assert_allclose(got_all, sklearn_per_image(true, pred, False), atol=1e-12)


# --- degenerate cases ---------------------------------------------------------------------------------------


def test_degenerate_cases():
    zeros = np.zeros((1, 3, 4), np.int64)
    ones = np.ones((1, 3, 4), np.int64)
    distinct = np.arange(12).reshape(1, 3, 4)
    cases = [
        # (true, pred, foreground_only, expected, why)
        (ones, ones * 7, True, 1.0, "one cluster in both (DeepMind's special case)"),
        (ones, distinct, True, 0.0, "one true cluster, prediction split: not identical, ARI 0"),
        (distinct + 1, ones, True, 0.0, "one pixel per true cluster, one predicted cluster"),
        (distinct + 1, distinct * 2 - 5, True, 1.0, "one pixel per cluster in both"),
        (zeros, distinct, True, 1.0, "no foreground pixel: no pairs, sklearn's 1.0 (DeepMind: NaN)"),
        (zeros, distinct, False, 0.0, "all pixels: one true (background) cluster vs singletons"),
        (zeros, ones, False, 1.0, "all pixels: one cluster in both"),
    ]
    for true, pred, foreground_only, expected, why in cases:
        got = adjusted_rand_index(true, pred, foreground_only)
        assert got.tolist() == [expected], why
        assert got.tolist() == sklearn_per_image(true, pred, foreground_only).tolist(), why
    # A single foreground pixel: no pairs.
    single = zeros.copy()
    single[0, 1, 2] = 4
    np.testing.assert_array_equal(adjusted_rand_index(single, distinct), [1.0])
    assert adjusted_rand_score([4], [6]) == 1.0  # the same rule in scikit-learn
    # Degenerate and ordinary images mixed in one batch do not affect each other.
    batch_true = np.concatenate([zeros, ones, single, np.array([[[1, 1, 2, 2], [0, 0, 0, 0], [3, 3, 3, 3]]])])
    ordinary_pred = np.array([[[1, 2, 2, 2], [0, 0, 0, 0], [3, 3, 3, 0]]])
    batch_pred = np.concatenate([distinct, distinct, distinct, ordinary_pred])
    expected = sklearn_per_image(batch_true, batch_pred, True)
    np.testing.assert_allclose(adjusted_rand_index(batch_true, batch_pred), expected, rtol=0, atol=1e-12)
    assert expected.tolist()[:3] == [1.0, 0.0, 1.0]
    # Empty batch and empty images.
    assert adjusted_rand_index(np.zeros((0, 3, 4), int), np.zeros((0, 3, 4), int)).shape == (0,)
    np.testing.assert_array_equal(adjusted_rand_index(np.zeros((2, 0, 4), int), np.zeros((2, 0, 4), int)), [1.0, 1.0])


# --- errors -------------------------------------------------------------------------------------------------


def test_errors():
    good = np.zeros((2, 3, 4), np.int32)
    with pytest.raises(ValueError, match=r"true_masks must have shape \[B, H, W\].*masks\[None\].*\(3, 4\)"):
        adjusted_rand_index(good[0], good[0])
    with pytest.raises(ValueError, match=r"pred_masks must have shape \[B, H, W\].*\(2, 3, 4, 1\)"):
        adjusted_rand_index(good, good[..., None])
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3, 4\) and \(2, 4, 3\)"):
        adjusted_rand_index(good, np.zeros((2, 4, 3), np.int32))
    with pytest.raises(ValueError, match="pred_masks must be an integer label map.*float32"):
        adjusted_rand_index(good, good.astype(np.float32))
    with pytest.raises(ValueError, match="true_masks must be an integer label map.*bool"):
        adjusted_rand_index(good.astype(bool), good)
