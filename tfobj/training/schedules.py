"""Annealing: schedules as pure functions `step -> value`, and the one mechanism that applies them.

A model with annealed values (SPAIR's count-prior s, training wheels and Concrete temperature; later LAVAE's
Gumbel temperature and warm-up weights, SILOT's prior, the β-VAE's β) inherits `Annealing` and lists
`(variable, schedule)` pairs in `schedules()`. Every training step then first assigns each variable its
schedule's value at `optimizer.iterations`, inside the compiled step, the way Keras evaluates a
`LearningRateSchedule`. Nothing has to be remembered: `model.fit` with no callbacks, the multi-worker loop
of `tfobj.training.fit_model` (which runs `train_step`) and a resumed run (the optimizer's step is
checkpointed) all see the values of the step they train.
"""
from __future__ import annotations

import math
from typing import Callable

import keras
import tensorflow as tf

__all__ = ["Annealing", "PresenceAnnealing", "count_prior_s", "exponential_decay", "step_function"]


def exponential_decay(step, start: float, end: float, decay_rate: float, decay_steps: float) -> tf.Tensor:
    """`(start − end)·decay_rate^(step / decay_steps) + end` (the original code's `Exponential`), float32."""
    t = tf.cast(step, tf.float32)
    return (start - end) * tf.exp(t / decay_steps * math.log(decay_rate)) + end


def count_prior_s(step, start: float, end: float, decay_rate: float, decay_steps: float) -> tf.Tensor:
    """SPAIR's annealed count-prior parameter s at `step` (original code: e2crawfo/auto_yolo, branch
    aaai_2019, `count_prior_log_odds = Exp(start=1e6, end=0.0125, decay_rate=0.1, decay_steps=1000, log=True)`).

    The code anneals v(t) = exponential_decay(...) and uses log-odds log(v + 1e-6) for the failure
    probability 1 − s, so s = 1 − sigmoid(log(v + 1e-6)) = 1 / (1 + v + 1e-6): ≈ 1e-6 at step 0, ≈ 0.5
    at 6k and 0.9877 in the end with the default constants.
    """
    v = exponential_decay(step, start, end, decay_rate, decay_steps)
    return 1.0 / (1.0 + v + 1e-6)


def step_function(step, value_before: float, value_after: float, switch_step: float) -> tf.Tensor:
    """`value_before` for steps < switch_step, then `value_after` (the training wheels), float32."""
    return tf.where(tf.cast(step, tf.float32) < switch_step, value_before, value_after)


class Annealing:
    """Mixin for a `keras.Model` whose annealed values follow the optimizer step.

    Subclasses implement `schedules()` and create each annealed variable with
    `annealed_variable(name, schedule)`, which starts it at the schedule's step-0 value and lets every
    replica of a `tf.distribute` strategy assign it (they compute the same value). `train_step` is Keras'
    own, preceded by `anneal(optimizer.iterations)`; a model with its own `train_step` (LAVAE, TUSK) calls
    `self.anneal(self.optimizer.iterations)` first.
    """

    def schedules(self) -> list[tuple[keras.Variable, Callable[[tf.Tensor], tf.Tensor]]]:
        """`(variable, schedule)` pairs, a schedule being a function of the optimizer step (int tensor) -> value."""
        raise NotImplementedError

    def annealed_variable(self, name: str, schedule: Callable) -> keras.Variable:
        return keras.Variable(schedule(0), trainable=False, dtype="float32", name=name,
                              aggregation="only_first_replica")

    def anneal(self, step) -> None:
        """Assigns every annealed variable its schedule's value at `step`."""
        for variable, schedule in self.schedules():
            variable.assign(tf.cast(schedule(step), variable.dtype))

    def train_step(self, data):
        self.anneal(self.optimizer.iterations)
        return super().train_step(data)


class PresenceAnnealing(Annealing):
    """`Annealing` with SPAIR's three schedules, shared by SPAIR and SILOT (whose discovery is SPAIR's): the
    count prior's s (`count_prior_s`), the training wheels (1 before `training_wheels_steps`, then 0) and a
    constant Concrete temperature, read from the config fields `count_prior_start`, `count_prior_end`,
    `count_prior_decay_rate`, `count_prior_decay_steps`, `training_wheels_steps` and `concrete_temperature`.

    The model calls `create_presence_schedules()` in `__init__`, which creates `self.count_prior_s`,
    `self.temperature` and `self.wheels`; a model with more schedules extends `schedules()`.
    """

    def create_presence_schedules(self) -> None:
        self.count_prior_s = self.annealed_variable("count_prior_s", self._count_prior_s)
        self.temperature = self.annealed_variable("temperature", self._temperature)
        self.wheels = self.annealed_variable("training_wheels", self._wheels)

    def _count_prior_s(self, step):
        c = self.config
        return count_prior_s(step, c.count_prior_start, c.count_prior_end, c.count_prior_decay_rate,
                             c.count_prior_decay_steps)

    def _wheels(self, step):
        return step_function(step, 1.0, 0.0, self.config.training_wheels_steps)

    def _temperature(self, step):
        return tf.constant(self.config.concrete_temperature, tf.float32)

    def schedules(self):
        return [(self.count_prior_s, self._count_prior_s), (self.wheels, self._wheels),
                (self.temperature, self._temperature)]
