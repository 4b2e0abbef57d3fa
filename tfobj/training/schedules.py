"""Annealing schedules as pure functions `step -> value` (models hold the values as variables,
`tfobj.training.callbacks.AnnealCallback` assigns them from the optimizer's step)."""
from __future__ import annotations

import math

import tensorflow as tf


def exponential_decay(step, start: float, end: float, decay_rate: float, decay_steps: float) -> tf.Tensor:
    """`(start − end)·decay_rate^(step / decay_steps) + end` (the original code's `Exponential`), float32."""
    t = tf.cast(step, tf.float32)
    return (start - end) * tf.exp(t / decay_steps * math.log(decay_rate)) + end


def count_prior_s(step, start: float, end: float, decay_rate: float, decay_steps: float) -> tf.Tensor:
    """SPAIR's annealed count-prior parameter s at `step` (original code, notes §1d).

    The code anneals v(t) = exponential_decay(...) and uses log-odds log(v + 1e-6) for the failure
    probability 1 − s, so s = 1 − sigmoid(log(v + 1e-6)) = 1 / (1 + v + 1e-6): ≈ 1e-6 at step 0, ≈ 0.5
    at 6k and 0.9877 in the end with the default constants.
    """
    v = exponential_decay(step, start, end, decay_rate, decay_steps)
    return 1.0 / (1.0 + v + 1e-6)


def step_function(step, value_before: float, value_after: float, switch_step: float) -> tf.Tensor:
    """`value_before` for steps < switch_step, then `value_after` (the training wheels), float32."""
    return tf.where(tf.cast(step, tf.float32) < switch_step, value_before, value_after)
