"""AdamWithGradientNoise (the original SPAIR code's gradient noise) and build_optimizer."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfobj.models.spair.spair_config import SPAIR_TRAINING
from tfobj.training.optimizers import AdamWithGradientNoise, build_optimizer


def _noise(optimizer, grads):
    """What the optimizer adds to `grads` after clipping, at its current step."""
    clipped = keras.optimizers.Adam._clip_gradients(optimizer, grads)
    return [(n - c).numpy() for n, c in zip(optimizer._clip_gradients(grads), clipped)]


def test_noise_scale_follows_the_original_schedule():
    optimizer = AdamWithGradientNoise()
    np.testing.assert_allclose([optimizer.noise_stddev(t).numpy() for t in (0, 1000, 2500)],
                               [1e-3, 1e-4, 1e-3 * 0.1 ** 2.5], rtol=1e-5)


def test_noise_is_a_truncated_normal_at_the_scheduled_scale_after_clipping():
    optimizer = AdamWithGradientNoise(noise_scale=1e-2, global_clipnorm=1.0)
    grads = [tf.fill([200, 500], 1.0), tf.fill([7], -3.0)]  # global norm >> 1
    noise = np.concatenate([n.ravel() for n in _noise(optimizer, grads)])
    reference = stats.truncnorm(-2, 2, scale=1e-2)  # tf.random.truncated_normal: re-drawn beyond 2 sigma
    assert np.abs(noise).max() <= 2e-2 + 1e-9
    np.testing.assert_allclose(noise.std(), reference.std(), rtol=0.02)
    assert abs(noise.mean()) < 5 * reference.std() / np.sqrt(noise.size)
    # The clipped gradient (global norm 1), not the raw one, is what the noise is added to.
    noisy = optimizer._clip_gradients(grads)
    total_norm = np.sqrt(sum(np.sum(np.square(g.numpy() - n)) for g, n in zip(noisy, _noise(optimizer, grads))))
    np.testing.assert_allclose(total_norm, 1.0, rtol=1e-5)


def test_noise_is_a_function_of_seed_step_and_variable():
    grads = [tf.zeros([1000]), tf.zeros([1000])]
    first = _noise(AdamWithGradientNoise(noise_seed=3), grads)
    np.testing.assert_array_equal(first[0], _noise(AdamWithGradientNoise(noise_seed=3), grads)[0])  # resumable
    assert not np.allclose(first[0], first[1])  # per variable
    assert not np.allclose(first[0], _noise(AdamWithGradientNoise(noise_seed=4), grads)[0])
    later = AdamWithGradientNoise(noise_seed=3)
    later.iterations.assign(1000)
    later_noise = _noise(later, grads)[0]
    assert not np.allclose(later_noise, first[0]) and np.abs(later_noise).max() <= 2e-4 + 1e-9


def test_applies_noise_in_training_and_round_trips_its_config():
    variable = keras.Variable(np.zeros(4, np.float32))
    optimizer = AdamWithGradientNoise(noise_scale=1.0, learning_rate=0.1)
    optimizer.apply([tf.zeros(4)], [variable])  # zero gradient: only the noise moves the variable
    assert np.all(variable.numpy() != 0) and optimizer.iterations.numpy() == 1
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdamWithGradientNoise)
    assert (restored.noise_scale, restored.noise_decay_steps, restored.noise_seed) == (1.0, 1000, 0)


def test_build_optimizer_follows_the_train_config():
    plain = build_optimizer(SPAIR_TRAINING)
    assert type(plain) is keras.optimizers.Adam and plain.global_clipnorm == 1.0
    np.testing.assert_allclose(float(plain.learning_rate), 1e-4)
    noisy = build_optimizer(dataclasses.replace(SPAIR_TRAINING, gradient_noise=1e-3, seed=5))
    assert isinstance(noisy, AdamWithGradientNoise) and noisy.noise_scale == 1e-3 and noisy.noise_seed == 5
    assert noisy.global_clipnorm == 1.0 and noisy.noise_decay_steps == 1000


@pytest.mark.parametrize("kwargs", [dict(noise_scale=-1.0), dict(noise_decay_steps=0), dict(noise_decay_rate=2.0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="AdamWithGradientNoise needs"):
        AdamWithGradientNoise(**kwargs)
