"""tf.distribute strategies for `TrainConfig.strategy`, and the per-replica loss scaling they need.

"default": one device. "mirrored": `tf.distribute.MirroredStrategy` over every local device (several GPUs;
on CPU, logical devices). "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, configured by the
`TF_CONFIG` environment variable as TensorFlow documents (docs/scaling.md).
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

__all__ = ["is_chief", "loss_for_replica", "make_strategy", "worker_index"]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy a `TrainConfig.strategy` names."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("train.strategy = 'multi_worker' needs the TF_CONFIG environment variable (the cluster "
                             "and this worker's task; docs/scaling.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of ('default', 'mirrored', 'multi_worker'); got {name!r}")


def loss_for_replica(mean_loss: tf.Tensor) -> tf.Tensor:
    """`mean_loss / replicas`: what a model's `compute_loss` returns from its replica's part of the global batch.

    Keras sums the replicas' gradients, so each replica's loss must be its batch mean divided by the number of
    replicas for the sum to be the gradient of the global batch's mean (Keras' own losses do the same).
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return mean_loss if replicas == 1 else mean_loss * (1.0 / replicas)


def _tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def worker_index() -> int:
    """This process's task index in `TF_CONFIG` (0 without one)."""
    return int(_tf_config().get("task", {}).get("index", 0))


def is_chief() -> bool:
    """True in the process that writes a run's files: the "chief" task if the cluster has one, else worker 0,
    and always without `TF_CONFIG` (one process)."""
    config = _tf_config()
    if not config:
        return True
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
