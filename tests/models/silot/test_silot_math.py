"""SILOT's pure functions against plain-Python references of the supplement's equations."""
import math

import numpy as np
import pytest

from tfobj.models.silot.silot_config import SILOTConfig
from tfobj.models.silot.silot_math import (
    gaussian_weight, select_objects, update_depth, update_position, update_size)


def reference_selection(propagated, discovered, slots):
    """The selection rule literally, in Python: rank all objects by presence (ties: lower index first), keep the
    K best; selected propagated objects stay in their slots; freed slots, in order, take the selected discovered
    objects in index order."""
    everything = list(propagated) + list(discovered)
    order = sorted(range(len(everything)), key=lambda i: (-everything[i], i))[:slots]
    kept = {i for i in order if i < slots}
    new = sorted(i for i in order if i >= slots)
    source, is_new = [], []
    for slot in range(slots):
        if slot in kept:
            source.append(slot)
            is_new.append(False)
        else:
            source.append(new.pop(0))
            is_new.append(True)
    return source, is_new


def test_selection_matches_the_rule_on_random_cases():
    rng = np.random.default_rng(0)
    for trial in range(200):
        slots, extra = rng.integers(1, 6), rng.integers(0, 8)
        propagated = rng.random((3, slots)).round(1)  # rounding makes ties common
        discovered = rng.random((3, slots + extra)).round(1)
        source, is_new = select_objects(propagated, discovered)
        for b in range(3):
            expected = reference_selection(propagated[b], discovered[b], slots)
            assert source.numpy()[b].tolist() == expected[0], (trial, b)
            assert is_new.numpy()[b].tolist() == expected[1], (trial, b)


def test_selection_keeps_identities_of_surviving_objects():
    source, is_new = select_objects([[0.9, 0.1, 0.8]], [[0.05, 0.95, 0.2, 0.5]])
    # Slot 1 (0.1) is freed and takes the best discovered object (index 3 + 1 = 4).
    assert source.numpy().tolist() == [[0, 4, 2]] and is_new.numpy().tolist() == [[False, True, False]]


def test_selection_needs_enough_discovered_objects():
    with pytest.raises(ValueError, match="at least K = 3 discovered"):
        select_objects(np.zeros((1, 3)), np.zeros((1, 2)))


def test_attribute_updates_are_the_supplement_s_equations():
    rng = np.random.default_rng(1)
    previous, z = rng.uniform(0.05, 0.95, 50), rng.normal(size=50) * 3
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(update_position(previous, z).numpy(), previous + np.tanh(z), rtol=1e-12)
    np.testing.assert_allclose(update_size(previous, z).numpy(), sig(logit(previous) + z), rtol=1e-9)
    np.testing.assert_allclose(update_depth(previous, z).numpy(), sig(logit(previous) + z), rtol=1e-9)
    # A zero update leaves every attribute where it was.
    np.testing.assert_allclose(update_size(previous, 0 * z).numpy(), previous, rtol=1e-9)


def test_gaussian_weight_is_the_2d_normal_density():
    from scipy import stats

    rng = np.random.default_rng(2)
    relative = rng.normal(size=(20, 2)) * 0.2
    std = SILOTConfig().attention_std
    expected = stats.multivariate_normal(mean=[0, 0], cov=std ** 2 * np.eye(2)).pdf(relative)
    np.testing.assert_allclose(gaussian_weight(relative, std).numpy(), expected, rtol=1e-10)
    assert gaussian_weight(np.zeros(2), std).numpy() == pytest.approx(1 / (2 * math.pi * std ** 2))


def test_config_defaults_are_table_1_and_bad_values_are_refused():
    config = SILOTConfig()
    assert (config.num_objects, config.num_what, config.attention_std, config.render_temperature) == (16, 64, 0.1, 0.25)
    assert config.appearance_offset_scale == (0.0, 2.0) and config.transparency_offset_scale == (5.0, 0.1)
    assert (config.discovery_dropout, config.curriculum_steps, config.patience) == (0.5, 40000, 30000)
    from tfobj.models.silot.silot_config import SILOT_TRAINING

    assert (SILOT_TRAINING.batch_size, SILOT_TRAINING.learning_rate, SILOT_TRAINING.global_clipnorm) == (16, 1e-4, 10.0)
    with pytest.raises(ValueError, match="discovery_dropout must be in"):
        SILOTConfig(discovery_dropout=1.0)
    with pytest.raises(ValueError, match="renderer must be one of"):
        SILOTConfig(renderer="softmax")
