"""One tiny LAVAE, TUSK or SILOT training run through `fit_model`, in its own process
(tests/training/test_distributed_models.py).

    python distributed_models_run.py MODEL STRATEGY OUT.npz [--devices N] [--unscaled-replica-loss]

MODEL is "lavae", "tusk" or "silot"; STRATEGY "default" (one device) or "mirrored" (`MirroredStrategy` on N logical
CPU devices). Every run trains with each model's own `train_step` (LAVAE: three optimizers, one per part; TUSK: the
feature step, then the prototype updates; SILOT: Keras' step on its `compute_loss`), 6 steps of global batch 8, one
Keras epoch per step (so the logged losses are each step's own), from the same seeded initialisation and data.

What is removed so that one device and any split of the global batch train on the same function:
- noise: LAVAE draws its Gumbel noise, its z_app noise, the forced-n draw and the auxiliary VAE's noise through
  `keras.random.uniform` / `keras.random.normal`, which this process replaces by constants (u = 0.5: the Gumbel
  perturbation is the same at every location, so the relaxed one-hots are the softmax of the logits; z = the mean;
  n forced while its probability exceeds 0.5). SILOT takes its noise-free pass (`NoiseFreeSILOT`, as the SPAIR
  run) without discovery dropout. TUSK's draws are stateless functions of the step, the same on every replica; its
  image pairs' random warps depend on the batch's size, so here both warps are the identity (all variations 0).
- optimizers whose update hides the gradient's scale: every optimizer is SGD (LAVAE's location and auxiliary
  optimizers, TUSK's prototype optimizer included), so a replica loss scaled wrongly shows in the weights.

Writes the per-step training losses, the trainable weights at the start and after the last step, and the number
of replicas.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS, BATCH = 6, 8


def lavae(learning_rate):
    import keras

    from tfobj.models.lavae import lavae as module
    from tfobj.models.lavae.lavae_config import LAVAEConfig
    from tfobj.models.lavae.lavae_math import logit_scale

    def constant_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return tf.fill(shape, tf.constant(0.5, dtype or "float32"))

    def constant_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return tf.fill(shape, tf.constant(0.0, dtype or "float32"))

    keras.random.uniform, keras.random.normal = constant_uniform, constant_normal

    class SynchronizedBatchNormalization(keras.layers.BatchNormalization):
        """Batch statistics of the global batch under a strategy (Keras' default: each replica's share)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, synchronized=True, **kwargs)

        def _moments(self, inputs, mask):
            """Keras' masked moments (the sprite decoder's, over the real objects) ignore `synchronized`: the same
            two-pass moments here, with the sums over every replica."""
            if mask is None:
                return super()._moments(inputs, mask)
            context = tf.distribute.get_replica_context()

            def total(x):
                return context.all_reduce("SUM", tf.reduce_sum(x, self._reduction_axes, keepdims=True))

            weights = tf.broadcast_to(tf.cast(mask, inputs.dtype)[..., None], tf.shape(inputs))
            count = total(weights) + keras.backend.epsilon()
            mean = total(weights * inputs) / count
            variance = total(weights * tf.square(inputs - mean)) / count
            return tf.squeeze(mean), tf.squeeze(variance)

    keras.layers.BatchNormalization = SynchronizedBatchNormalization  # LAVAE's networks and its auxiliary VAE

    class SGDLAVAE(module.LAVAE):
        """LAVAE whose three optimizers are SGD at the run's rate."""

        def compile(self, optimizer="adamax", **kwargs):
            kwargs.pop("location_optimizer", None)
            kwargs.pop("auxiliary_optimizer", None)
            super().compile(optimizer, location_optimizer=keras.optimizers.SGD(learning_rate),
                            auxiliary_optimizer=keras.optimizers.SGD(learning_rate), **kwargs)

    # Steps 0-1 warm-up (auxiliary VAE, n forced), 2-3 its linear decay, 4-5 after it (auxiliary loss weight 0).
    config = LAVAEConfig(image_size=(16, 16), max_objects=3, appearance_size=4, gamma=logit_scale(16 * 16),
                         filters=8, inference_blocks=1, location_head_layers=2, sprite_size=5, sprite_initial_size=3,
                         sprite_initial_channels=4, sprite_blocks=1, temperature_anneal_steps=10, warmup_steps=2,
                         warmup_anneal_steps=2, force_one_start=1.0, force_one_end=0.0,
                         auxiliary_latent_channels=2, auxiliary_filters=8)
    images = (np.random.default_rng(0).random((16, 16, 16, 1)) > 0.8).astype(np.float32)
    return module, (lambda: SGDLAVAE(config, seed=1)), {"images": images}


def tusk(learning_rate):
    import keras

    from tfobj.models.tusk import tusk as module
    from tfobj.models.tusk.tusk_config import TUSKConfig

    class SGDTUSK(module.TUSK):
        """TUSK whose prototype optimizer is SGD at the config's prototype rate."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.prototype_optimizer = keras.optimizers.SGD(self.config.prototype_learning_rate,
                                                            name="prototype_optimizer")
            self.prototype_optimizer.build([self.prototype_bank.prototype_weights])

    identity = (1.0, 0.0, 0.0, 0.0, 0.0)  # scale 1, no variation: both warps of every pair are the identity
    config = TUSKConfig(num_keypoints=3, num_prototypes=4, kernel_size=5, feature_channels=8, base_width=4, groups=2,
                        inner_prototype_steps=2, num_projections=16, gmm_variance=1e-3, splat_variance=0.5,
                        prototype_learning_rate=0.05, tps_warp=identity, tps_first_warp=identity)
    images = np.random.default_rng(0).random((16, 16, 16, 3)).astype(np.float32)
    return module, (lambda: SGDTUSK(config, seed=1)), {"images": images}


def silot(learning_rate):
    from tfobj.models.silot import silot as module
    from tfobj.models.silot.silot_config import SILOTConfig

    class NoiseFreeSILOT(module.SILOT):
        """SILOT whose training pass takes the posterior means and the noise-free relaxed z_pres."""

        def _noise(self, batch, frames, cells, sample):
            return super()._noise(batch, frames, cells, False)

    h = (6, 6)
    config = SILOTConfig(
        num_objects=3, num_what=4, hidden_size=6, backbone_filters=8, backbone_features=8, passthrough_features=3,
        attention_features=5, object_size=(5, 5), discovery_spatial_hidden=h, discovery_fuse_hidden=h,
        discovery_where_hidden=h, discovery_glimpse_hidden=h, discovery_what_hidden=h, discovery_depth_hidden=h,
        discovery_pres_hidden=h, propagation_object_hidden=h, propagation_spatial_hidden=h,
        propagation_glimpse_where_hidden=h, propagation_first_glimpse_hidden=h, propagation_where_hidden=h,
        propagation_second_glimpse_hidden=h, propagation_what_hidden=h, propagation_depth_hidden=h,
        propagation_pres_hidden=h, decoder_hidden=h, discovery_dropout=0.0, training_wheels_steps=2)
    videos = np.random.default_rng(0).random((16, 2, 24, 24, 3)).astype(np.float32)
    return module, (lambda: NoiseFreeSILOT(config, seed=1)), {"videos": videos}


MODELS = {"lavae": (lavae, 1e-4), "tusk": (tusk, 1e-2), "silot": (silot, 1e-5)}  # SGD rates: visible movement


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("strategy", choices=("default", "mirrored"))
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--unscaled-replica-loss", action="store_true",
                        help="control: each replica returns its loss undivided (the gradients then add up to "
                             "replicas x the global batch's)")
    args = parser.parse_args()
    if args.strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)

    import keras

    from tfobj.training.fit import fit_model
    from tfobj.training.train_config import TrainConfig

    build, learning_rate = MODELS[args.model]
    module, make_model, train = build(learning_rate)
    if args.unscaled_replica_loss:
        module.loss_for_replica = lambda loss: loss

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def on_train_begin(self, logs=None):
            self.first = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]

        def on_epoch_end(self, epoch, logs=None):  # one step per epoch: that step's metrics
            self.losses.append({key: float(value) for key, value in logs.items()})

        def on_train_end(self, logs=None):
            self.last = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]

    record = Record()
    config = TrainConfig(steps=STEPS, eval_every=1, batch_size=BATCH, optimizer="sgd", learning_rate=learning_rate,
                         strategy=args.strategy)
    result = fit_model(make_model, train, None, config, callbacks=[record])
    keys = sorted(record.losses[0])
    np.savez(args.out, losses=np.array([step["loss"] for step in record.losses]), metric_names=np.array(keys),
             metrics=np.array([[step[key] for key in keys] for step in record.losses]),
             replicas=result.model.distribute_strategy.num_replicas_in_sync,
             **{f"first/{i}": value for i, value in enumerate(record.first)},
             **{f"last/{i}": value for i, value in enumerate(record.last)})


if __name__ == "__main__":
    sys.exit(main())
