"""Keras callbacks for tfobj models."""
from __future__ import annotations

import keras

from tfobj.training import schedules


class SPAIRSchedule(keras.callbacks.Callback):
    """Sets SPAIR's annealed variables from the optimizer step before every training batch.

    s (count prior) follows the original code's exponential schedule (`schedules.count_prior_s`),
    the training wheels are 1 for the first `training_wheels_steps` steps (no gradient into
    where/depth/pres) and 0 after, and the Concrete temperature is the config's constant. Because
    the values are recomputed from the checkpointed optimizer step, a run restored by
    `BackupAndRestore` continues its schedules exactly.
    """

    def on_train_batch_begin(self, batch, logs=None):
        model, c = self.model, self.model.config
        step = model.optimizer.iterations
        model.count_prior_s.assign(schedules.count_prior_s(
            step, c.count_prior_start, c.count_prior_end, c.count_prior_decay_rate, c.count_prior_decay_steps))
        model.wheels.assign(schedules.step_function(step, 1.0, 0.0, c.training_wheels_steps))
        model.temperature.assign(c.concrete_temperature)
