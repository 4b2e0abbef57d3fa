"""The optimizer of a `TrainConfig`: Adam with gradient-norm clipping, optionally with the original SPAIR code's
gradient noise (e2crawfo/dps, branch aaai_2019: `build_gradient_train_op`; SPAIR's
`noise_schedule = Exp(0.001, 0.0, 1000, 0.1)` in e2crawfo/auto_yolo, aaai_2019)."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.training.schedules import exponential_decay

__all__ = ["AdamPerVariableSteps", "AdamWithGradientNoise", "build_optimizer"]


@keras.saving.register_keras_serializable(package="tfobj")
class AdamWithGradientNoise(keras.optimizers.Adam):
    """Adam that adds truncated-normal noise to the clipped gradients, as the original SPAIR code did.

    At optimizer step t every gradient entry gets `n · noise_scale · noise_decay_rate^(t / noise_decay_steps)`
    with `n ~ TruncatedNormal(0, 1)` cut at ±2, after the gradient clipping (`global_clipnorm` etc.) and
    before Adam's update. The noise is a stateless function of (`noise_seed`, step, variable index), so a
    run resumed from a checkpoint (which restores `iterations`) draws the same noise as an uninterrupted
    one. Under a `tf.distribute` strategy each replica's apply adds its own draw of the same noise.

    Args:
      noise_scale: the noise's scale at step 0 (original code: 1e-3).
      noise_decay_rate, noise_decay_steps: the exponential decay of the scale (original: 0.1 per 1000 steps).
      noise_seed: integer seed of the noise.
      **kwargs: `keras.optimizers.Adam` arguments (learning_rate, global_clipnorm, ...).
    """

    def __init__(self, noise_scale: float = 1e-3, noise_decay_rate: float = 0.1, noise_decay_steps: float = 1000,
                 noise_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if noise_scale < 0 or noise_decay_steps <= 0 or not 0 <= noise_decay_rate <= 1:
            raise ValueError("AdamWithGradientNoise needs noise_scale >= 0, noise_decay_steps > 0 and "
                             f"0 <= noise_decay_rate <= 1; got {noise_scale}, {noise_decay_steps}, {noise_decay_rate}")
        self.noise_scale, self.noise_decay_rate = noise_scale, noise_decay_rate
        self.noise_decay_steps, self.noise_seed = noise_decay_steps, noise_seed

    def noise_stddev(self, step) -> tf.Tensor:
        """The noise's scale at optimizer step `step` (float32)."""
        return exponential_decay(step, self.noise_scale, 0.0, self.noise_decay_rate, self.noise_decay_steps)

    def _clip_gradients(self, grads):
        grads = super()._clip_gradients(grads)
        step = tf.cast(self.iterations, tf.int64)
        scale = self.noise_stddev(step)
        noisy = []
        for index, grad in enumerate(grads):
            if grad is None:
                noisy.append(grad)
                continue
            seed = tf.stack([step, tf.constant(self.noise_seed * 1_000_003 + index, tf.int64)])
            noise = tf.random.stateless_truncated_normal(tf.shape(grad), seed=seed, dtype=tf.float32)
            noisy.append(grad + tf.cast(scale * noise, grad.dtype))
        return noisy

    def get_config(self):
        config = super().get_config()
        config.update(noise_scale=self.noise_scale, noise_decay_rate=self.noise_decay_rate,
                      noise_decay_steps=self.noise_decay_steps, noise_seed=self.noise_seed)
        return config


@keras.saving.register_keras_serializable(package="tfobj")
class AdamPerVariableSteps(keras.optimizers.Adam):
    """Adam whose bias correction counts each variable's own steps: the steps in which its gradient had a nonzero
    entry, instead of the optimizer's global step.

    Keras' Adam (like TensorFlow 1's, which the original code used) corrects the moments' bias with the global step
    t: m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t). A variable whose gradient was exactly zero for its first N steps
    (SILOT's and SPAIR's where, depth and presence heads under the training wheels) starts with m = v = 0 at
    t = N, so k steps later v̂ ≈ (1 − β2^k) / (1 − β2^(N+k)) · g², far below g² while k ≪ 1 / (1 − β2): its first
    steps are √((1 − β2^(N+k)) / (1 − β2^k)) times the learning rate (≈ 25 / √k at N = 1,000, β2 = 0.999; 5.6× at
    k = 20, 2.5× at k = 100). Counting the variable's own steps makes them the learning rate, as for a variable
    trained from step 0. A variable trained from the first step gets exactly Keras' Adam update.

    Args: `keras.optimizers.Adam`'s (amsgrad is not supported).
    """

    def __init__(self, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("AdamPerVariableSteps does not support amsgrad")
        super().__init__(**kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._own_steps = [self.add_variable(shape=(), dtype="float32", initializer="zeros",
                                             name=f"{variable.name.replace('/', '_')}_own_steps")
                           for variable in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        gradient = tf.cast(gradient, variable.dtype)
        own_steps = self._own_steps[index]
        self.assign_add(own_steps, tf.cast(tf.reduce_any(tf.not_equal(gradient, 0)), own_steps.dtype))
        step = tf.cast(tf.maximum(own_steps, 1.0), variable.dtype)
        m, v = self._momentums[index], self._velocities[index]
        alpha = (tf.cast(learning_rate, variable.dtype) * tf.sqrt(1 - tf.pow(tf.cast(self.beta_2, variable.dtype), step))
                 / (1 - tf.pow(tf.cast(self.beta_1, variable.dtype), step)))
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1 - self.beta_2))
        self.assign_sub(variable, m * alpha / (tf.sqrt(v) + self.epsilon))


def build_optimizer(train) -> keras.optimizers.Optimizer:
    """The optimizer a `TrainConfig` asks for: Adam, Adamax or SGD at `learning_rate` with `global_clipnorm`;
    Adam with gradient noise when `train.gradient_noise > 0` (the original SPAIR code's option, seeded by
    `train.seed`)."""
    kwargs = dict(learning_rate=train.learning_rate, global_clipnorm=train.global_clipnorm)
    if train.adam_bias_correction == "per_variable":
        return AdamPerVariableSteps(**kwargs)
    if train.gradient_noise > 0:
        return AdamWithGradientNoise(train.gradient_noise, train.gradient_noise_decay_rate,
                                     train.gradient_noise_decay_steps, noise_seed=train.seed, **kwargs)
    return {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax,
            "sgd": keras.optimizers.SGD}[train.optimizer](**kwargs)
