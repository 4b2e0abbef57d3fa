"""One tiny SPAIR training run through `fit_model`, in its own process (tests/training/test_distributed.py).

    python distributed_run.py STRATEGY OUT.npz [--run-dir DIR] [--kill-at STEP] [--devices N]

STRATEGY is "default", "mirrored" (on N logical CPU devices) or "multi_worker" (TF_CONFIG set by the caller).
The model draws no noise (`NoiseFreeSPAIR`), so that one device and any split of the global batch train on the
same function, and the optimizer is SGD, whose update scales with the gradient (Adam's would hide a wrong
per-replica loss scaling). Writes the per-period training losses, the weights after the last step and the
kept (best) weights, and the weights at the start (after a resume: the restored ones).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy")
    parser.add_argument("out")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--unscaled-replica-loss", action="store_true",
                        help="control: each replica returns its batch mean undivided (the gradients then add up "
                             "to replicas x the global batch's)")
    args = parser.parse_args()
    if args.strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)

    import keras

    from tfobj.models.spair.spair import SPAIR
    from tfobj.models.spair.spair_config import SPAIRConfig
    from tfobj.training.evaluation import DETECTION, current_step
    from tfobj.training.fit import fit_model
    from tfobj.training.train_config import TrainConfig

    if args.unscaled_replica_loss:
        import tfobj.models.spair.spair

        tfobj.models.spair.spair.loss_for_replica = lambda mean_loss: mean_loss

    class NoiseFreeSPAIR(SPAIR):
        """SPAIR whose training pass takes the posterior means and the noise-free relaxed z_pres."""

        def _noise(self, batch, num_cells, sample):
            return super()._noise(batch, num_cells, False)

    class Kill(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if current_step(self.model) == args.kill_at:
                raise SystemExit(3)  # as a killed process: no cleanup of the backup

    class FirstAndLastWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.first = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]

        def on_train_end(self, logs=None):
            self.last = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]

    tiny = SPAIRConfig(backbone_filters=8, backbone_features=8, cell_hidden=(8, 8), passthrough_features=4,
                       encoder_hidden=(8, 8), decoder_hidden=(8, 8), num_what=4, training_wheels_steps=2)
    rng = np.random.default_rng(0)
    train = {"images": rng.random((16, 24, 24, 3)).astype(np.float32)}
    boxes = np.tile(np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32), (4, 1, 1))
    val = {"images": rng.random((4, 24, 24, 3)).astype(np.float32), "boxes": boxes, "num_objects": np.ones(4, int)}
    config = TrainConfig(steps=6, eval_every=2, batch_size=8, optimizer="sgd", learning_rate=1e-5,
                         strategy=args.strategy)
    weights = FirstAndLastWeights()
    callbacks = [weights] + ([Kill()] if args.kill_at is not None else [])
    result = fit_model(lambda: NoiseFreeSPAIR(tiny, seed=1), train, val, config, run_dir=args.run_dir,
                       evaluation=DETECTION, callbacks=callbacks)
    np.savez(args.out, losses=np.array([entry["loss"] for entry in result.history]),
             steps=np.array([entry["step"] for entry in result.history]), best_step=result.best_step,
             replicas=result.model.distribute_strategy.num_replicas_in_sync,
             **{f"first/{i}": value for i, value in enumerate(weights.first)},
             **{f"last/{i}": value for i, value in enumerate(weights.last)},
             **{f"kept/{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(result.model.trainable_weights)})


if __name__ == "__main__":
    sys.exit(main())
