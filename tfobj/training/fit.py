"""fit_model: the one training entry point of every tfobj model.

It does what every model's training needs, the same way: seeding, the `tf.data` pipeline, the strategy
(one device, `MirroredStrategy`, `MultiWorkerMirroredStrategy`), `compile` with the `TrainConfig`'s
optimizer, dtype policy and XLA switch, an evaluation on the validation set every `eval_every` steps,
the best weights of the whole run kept (`BestCheckpoint`), `BackupAndRestore` (run the same call again to
resume), TensorBoard, a stop with the step number on a NaN loss (`StopOnNaN`), and a SavedModel export of
the kept weights at the end. The model itself brings its loss (`compute_loss`), its annealing
(`schedules()`), and its serving signatures (`serving_endpoints()`).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfobj.training.callbacks import BestCheckpoint, StopOnNaN
from tfobj.training.evaluation import Evaluation, EvaluationCallback
from tfobj.training.optimizers import build_optimizer
from tfobj.training.precision import jit_compile
from tfobj.training.strategies import is_chief, make_strategy, worker_index
from tfobj.training.train_config import TrainConfig

__all__ = ["FitResult", "fit_model", "training_dataset"]

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What `fit_model` returns.

    Attributes:
        model: the trained model, holding the best evaluation's weights (the last weights without an evaluation).
        history: one dict per evaluation period of the whole run (also across a resume): "step" (optimizer
            steps done), the training losses (means over the period) and the "val_<metric>" values.
        best_step: the optimizer step of the kept weights (None without an evaluation).
        best_value: the monitored value at `best_step`.
        fit_seconds: wall time of the training loop (steps, tracing, evaluations and callbacks) in this call.
        eval_seconds: the part of `fit_seconds` spent in the evaluations.
    """

    model: keras.Model
    history: list[dict] = field(default_factory=list)
    best_step: int | None = None
    best_value: float | None = None
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0


def training_dataset(train: Mapping[str, np.ndarray], config: TrainConfig, start_step: int = 0) -> tf.data.Dataset:
    """The training stream: data epoch e is a permutation of the arrays' rows drawn from the seed (train seed, e)
    (`tf.random.experimental.stateless_shuffle`), the epochs follow one another, cut into global batches of
    `config.batch_size` (a `tf.distribute` strategy splits each batch across its replicas), from batch `start_step`.

    The stream is a function of the seed alone, not of global random state or of how many iterators were made
    from the dataset (Keras makes an extra one under a strategy, and a reshuffling `Dataset.shuffle` would then
    start on another order), so one device and any strategy see the same batches, and a resumed run
    (`start_step` = the restored step) sees the batches the interrupted run would have.
    """
    lengths = {key: len(value) for key, value in train.items()}
    if not lengths or len(set(lengths.values())) != 1 or min(lengths.values()) == 0:
        raise ValueError(f"train must be a dict of non-empty arrays sharing their first dimension; got lengths {lengths}")
    size = next(iter(lengths.values()))
    arrays = {key: tf.constant(value) for key, value in train.items()}

    def permutation(epoch):  # [size] row indices of data epoch `epoch`
        seed = tf.stack([tf.constant(config.seed, tf.int64), epoch])
        return tf.random.experimental.stateless_shuffle(tf.range(size, dtype=tf.int64), seed=seed)

    rows = (tf.data.Dataset.range(2**62).map(permutation).unbatch()
            .batch(config.batch_size, drop_remainder=True).skip(start_step))
    dataset = rows.map(lambda batch: {key: tf.gather(value, batch) for key, value in arrays.items()}).prefetch(2)
    options = tf.data.Options()
    # In-memory data: each worker of a multi-worker run takes its share of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _restored_step(backup: Path, config: TrainConfig) -> int:
    """The optimizer step a `BackupAndRestore` backup will restore (it saves at the end of an epoch)."""
    metadata = backup / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"]) * config.eval_every


def fit_model(model: keras.Model | Callable[[], keras.Model], train: Mapping[str, np.ndarray],
              val: Mapping[str, np.ndarray] | None = None, train_config: TrainConfig | None = None,
              run_dir: str | Path | None = None, evaluation: Evaluation | None = None,
              callbacks: Sequence[keras.callbacks.Callback] = ()) -> FitResult:
    """Trains `model` on `train` for `train_config.steps` steps and keeps the best evaluation's weights.

    Args:
        model: a zero-argument function returning the uncompiled model (e.g. the model class, or a lambda).
            It is called after seeding, so Keras' initialisers (whose seeds are drawn when a layer is made)
            follow `train_config.seed`, and inside the strategy's scope, as a strategy needs. The model itself
            is accepted without a strategy, its initialisation then being whatever it already is.
        train: the model's inputs, a dict of arrays `[N, ...]` (e.g. {"images": [N, H, W, 3]}).
        val: validation arrays for `evaluation` (e.g. images, boxes, num_objects).
        train_config: steps, eval_every, batch, optimizer, seed, precision/XLA, strategy (`TrainConfig`).
        run_dir: if given, the run keeps its files there: `tensorboard/`, `backup/` (`BackupAndRestore`: call
            again with the same arguments to resume after a kill), `history.json`, `best.weights.h5` +
            `best.json`, and `saved_model/` (the kept weights, exported for TF Serving). In a multi-worker run
            only the chief writes `run_dir`; worker i keeps its backup and best weights in `run_dir/workers/i/`.
        evaluation: what to measure on `val` every `eval_every` steps, and which value picks the kept weights
            (e.g. `tfobj.training.evaluation.DETECTION`). None: no evaluation; the last weights are kept.
        callbacks: more Keras callbacks, run after tfobj's.

    Returns:
        A `FitResult`.
    """
    config = train_config or TrainConfig()
    if evaluation is not None and val is None:
        raise ValueError("fit_model: an evaluation needs validation data (val)")
    strategy = make_strategy(config.strategy)
    if isinstance(model, keras.Model) and config.strategy != "default":
        raise ValueError(f"fit_model: with strategy {config.strategy!r} pass a function that builds the model, so that "
                         "its variables are created inside the strategy's scope")
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = model if isinstance(model, keras.Model) else model()
        model({key: value[:1] for key, value in train.items()})  # build (BackupAndRestore needs built weights)
        model.compile(optimizer=build_optimizer(config), jit_compile=jit_compile(config.xla))
    log.info("%s: dtype policy %s, jit_compile %s, strategy %s (%d replicas), global batch %d", type(model).__name__,
             model.dtype_policy.name, model.jit_compile, config.strategy, strategy.num_replicas_in_sync,
             config.batch_size)

    chief = is_chief()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(run_dir) if run_dir is not None else Path(scratch)
        if not chief:
            directory = directory / "workers" / str(worker_index())
        resume = run_dir is not None and (directory / "backup").exists()
        start_step = _restored_step(directory / "backup", config) if resume else 0
        if resume:
            log.info("resuming the interrupted run in %s at step %d", directory, start_step)
        dataset = training_dataset(train, config, start_step)
        own = []
        best = evaluator = None
        if evaluation is not None:
            tensorboard = directory / "tensorboard" if run_dir is not None and chief else None
            best = BestCheckpoint(directory, f"val_{evaluation.monitor}", evaluation.mode, resume=resume)
            evaluator = EvaluationCallback(evaluation, val, log_dir=tensorboard)
            own += [evaluator]
        own += [StopOnNaN()]  # before the checkpoints: a NaN step raises before anything can save it
        own += [best] if best is not None else []
        if run_dir is not None:
            if chief:
                own += [keras.callbacks.TensorBoard(str(directory / "tensorboard"),
                                                    write_graph=config.strategy != "multi_worker")]
            own += [keras.callbacks.BackupAndRestore(str(directory / "backup"))]
        all_callbacks = own + list(callbacks)
        started = time.perf_counter()
        if config.strategy == "multi_worker":
            _fit_multi_worker(model, dataset, strategy, config, all_callbacks)
        else:
            model.fit(dataset, steps_per_epoch=config.eval_every, epochs=config.epochs, verbose=2, shuffle=False,
                      callbacks=all_callbacks)  # shuffle=False: the stream is already a seeded permutation
        result = FitResult(model, fit_seconds=time.perf_counter() - started,
                           eval_seconds=evaluator.seconds if evaluator is not None else 0.0)
        log.info("%s: trained %d steps in %.0f s, of which evaluation %.0f s", type(model).__name__,
                 int(model.optimizer.iterations.numpy()) - start_step, result.fit_seconds, result.eval_seconds)
        if best is not None:
            model.load_weights(best.weights_path)
            result.history, result.best_step, result.best_value = best.history, best.best["step"], best.best["value"]
            log.info("%s: best %s = %.4f at step %d", type(model).__name__, best.monitor, result.best_value,
                     result.best_step)
        if run_dir is not None and chief:
            from tfobj.export import export_saved_model

            export_saved_model(model, directory / "saved_model")
    return result


def _fit_multi_worker(model, dataset, strategy, config: TrainConfig, callbacks) -> None:
    """`fit` for `MultiWorkerMirroredStrategy`, on the strategy's own API.

    Keras 3's `model.fit` fails under this strategy (keras-team/keras#20585: "Attempt to convert a value
    (PerReplica...)"), so this loop runs the model's own `train_step` (its loss, annealing and optimizer)
    through `strategy.run` and drives the same Keras callbacks as `fit` would: evaluation, NaN stop, best
    checkpoint, TensorBoard and `BackupAndRestore`. Replace it with `model.fit` when Keras supports the
    strategy (docs/scaling.md).
    """
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    distributed = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {key: strategy.reduce("MEAN", value, axis=None) for key, value in logs.items()}

    model.stop_training = False
    callback_list.on_train_begin()
    # BackupAndRestore's on_train_begin restores the weights and sets the epoch to resume from, which
    # Keras' own fit reads from this attribute too.
    initial_epoch = getattr(model, "_initial_epoch", None) or 0
    logs = {}
    for epoch in range(initial_epoch, config.epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for batch in range(config.eval_every):
            callback_list.on_train_batch_begin(batch)
            logs = {key: float(value) for key, value in train_step(next(distributed)).items()}
            callback_list.on_train_batch_end(batch, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        callback_list.on_epoch_end(epoch, epoch_logs)
        log.info("epoch %d/%d: %s", epoch + 1, config.epochs,
                 " - ".join(f"{key}: {value:.4f}" for key, value in epoch_logs.items()))
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
