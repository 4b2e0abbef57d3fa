"""The optimizer of a `TrainConfig`: Adam with gradient-norm clipping, optionally with the original SPAIR code's
gradient noise (e2crawfo/dps, branch aaai_2019: `build_gradient_train_op`; SPAIR's
`noise_schedule = Exp(0.001, 0.0, 1000, 0.1)` in e2crawfo/auto_yolo, aaai_2019)."""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.training.schedules import exponential_decay

__all__ = ["AdamWithGradientNoise", "build_optimizer"]


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


def build_optimizer(train) -> keras.optimizers.Optimizer:
    """The optimizer a `TrainConfig` asks for: Adam, Adamax or SGD at `learning_rate` with `global_clipnorm`;
    Adam with gradient noise when `train.gradient_noise > 0` (the original SPAIR code's option, seeded by
    `train.seed`)."""
    kwargs = dict(learning_rate=train.learning_rate, global_clipnorm=train.global_clipnorm)
    if train.gradient_noise > 0:
        return AdamWithGradientNoise(train.gradient_noise, train.gradient_noise_decay_rate,
                                     train.gradient_noise_decay_steps, noise_seed=train.seed, **kwargs)
    return {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax,
            "sgd": keras.optimizers.SGD}[train.optimizer](**kwargs)
