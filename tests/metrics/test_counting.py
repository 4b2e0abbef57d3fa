"""Tests of tfobj.metrics.counting against plain numpy expressions."""
import numpy as np
import pytest

from tfobj.metrics import count_abs_error, count_accuracy


def test_random_integer_counts_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        shape = tuple(rng.integers(1, 6, size=rng.integers(1, 3)))
        true = rng.integers(0, 6, size=shape)
        pred = np.clip(true + rng.integers(-2, 3, size=shape), 0, None)
        assert count_accuracy(pred, true) == pytest.approx(np.mean(pred == true), abs=1e-15)
        assert count_abs_error(pred, true) == pytest.approx(np.mean(np.abs(pred - true)), abs=1e-15)
        # The original's "count 0-1 error".
        assert 1 - count_accuracy(pred, true) == pytest.approx(np.mean(np.abs(pred - true) > 0.5), abs=1e-15)


def test_hand_values():
    # |diff| = 0, 2, 0, 1 -> accuracy 2/4, mean abs error 3/4.
    assert count_accuracy([1, 3, 0, 2], [1, 1, 0, 3]) == 0.5
    assert count_abs_error([1, 3, 0, 2], [1, 1, 0, 3]) == 0.75
    assert count_accuracy(np.array([4]), np.array([4])) == 1.0
    assert count_abs_error(np.array([4]), np.array([4])) == 0.0


def test_float_predictions_follow_the_original_half_threshold():
    # |diff| = 0.4, 0.5, 0.6 -> right, right, wrong (the original error is |diff| > 0.5).
    pred, true = np.array([2.4, 2.5, 2.6]), np.array([2, 2, 2])
    assert count_accuracy(pred, true) == pytest.approx(2 / 3)
    assert count_abs_error(pred, true) == pytest.approx(0.5)


@pytest.mark.parametrize("fn", [count_accuracy, count_abs_error])
@pytest.mark.parametrize(
    "pred, true, match",
    [
        ([1, 2], [1, 2, 3], r"same shape; got \(2,\) and \(3,\)"),
        ([], [], r"must not be empty"),
        ([1, np.nan], [1, 2], r"pred_counts must be finite"),
        ([1, 2], [np.inf, 2], r"true_counts must be finite"),
        ([-1, 2], [1, 2], r"pred_counts must be non-negative"),
    ],
)
def test_invalid_inputs_raise(fn, pred, true, match):
    with pytest.raises(ValueError, match=match):
        fn(pred, true)
