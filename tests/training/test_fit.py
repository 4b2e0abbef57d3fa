"""fit_model: the run directory, the best weights of a whole run (also across a kill and a resume), the
TrainConfig's checks."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.training.evaluation import Evaluation, current_step
from tfobj.training.fit import fit_model, training_dataset
from tfobj.training.train_config import TrainConfig


class Regressor(keras.Model):
    """A one-layer model with its own loss (mean squared output) and a serving endpoint, for fit_model's tests."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, inputs, training=False):
        return self.dense(inputs["x"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return tf.reduce_mean(tf.square(y_pred))

    def serving_endpoints(self):
        return {"serve": (lambda x: {"y": self.dense(x)}, [tf.TensorSpec([None, 3], tf.float32, name="x")])}


# The validation score after each period, by optimizer step: the best (0.9) comes at step 2.
SCORES = {1: 0.1, 2: 0.9, 3: 0.3, 4: 0.2}
SCRIPTED = Evaluation(metrics=lambda model, val: {"score": SCORES[current_step(model)]}, monitor="score")
TRAIN = {"x": np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)}
CONFIG = TrainConfig(steps=4, eval_every=1, batch_size=4, learning_rate=0.1)


class WeightsAfterEachPeriod(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[current_step(self.model)] = [w.numpy().copy() for w in self.model.weights]


class KillAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if current_step(self.model) == self.step:
            raise RuntimeError("killed")


def test_resume_keeps_the_best_of_the_whole_run(tmp_path):
    """Killed after the best period (step 2) and resumed into worse ones (0.3, 0.2): the kept weights and the
    reported step are step 2's, and the history covers the whole run. (A new ModelCheckpoint(save_best_only)
    after the resume would have kept step 3's weights, and a History-based best step would be offset.)"""
    snapshots = WeightsAfterEachPeriod()
    with pytest.raises(RuntimeError, match="killed"):
        fit_model(Regressor, TRAIN, {}, CONFIG, run_dir=tmp_path, evaluation=SCRIPTED,
                  callbacks=[snapshots, KillAtStep(2)])  # killed in period 3
    assert json.loads((tmp_path / "best.json").read_text()) == {"step": 2, "value": 0.9}
    assert (tmp_path / "backup").exists()

    resumed_snapshots = WeightsAfterEachPeriod()
    result = fit_model(Regressor, TRAIN, {}, CONFIG, run_dir=tmp_path, evaluation=SCRIPTED,
                       callbacks=[resumed_snapshots])
    assert sorted(resumed_snapshots.weights) == [3, 4]  # the resumed run trained steps 3 and 4 only
    assert (result.best_step, result.best_value) == (2, 0.9)
    assert [entry["step"] for entry in result.history] == [1, 2, 3, 4]
    assert [entry["val_score"] for entry in result.history] == [0.1, 0.9, 0.3, 0.2]
    for kept, expected in zip(result.model.weights, snapshots.weights[2]):
        np.testing.assert_array_equal(kept.numpy(), expected)
    assert json.loads((tmp_path / "history.json").read_text()) == result.history
    assert not (tmp_path / "backup").exists()  # the run finished
    # The resumed run trained on the batches the interrupted one would have: it ends as an uninterrupted run.
    uninterrupted = WeightsAfterEachPeriod()
    fit_model(Regressor, TRAIN, {}, CONFIG, run_dir=tmp_path / "uninterrupted", evaluation=SCRIPTED,
              callbacks=[uninterrupted])
    for resumed, expected in zip(resumed_snapshots.weights[4], uninterrupted.weights[4]):
        np.testing.assert_array_equal(resumed, expected)
    served = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    x = tf.ones([2, 3])
    np.testing.assert_allclose(served(x=x)["y"].numpy(), result.model.dense(x).numpy(), rtol=1e-6)


def test_a_resumed_epoch_repeated_after_a_kill_replaces_its_record(tmp_path):
    """A kill after a period was evaluated but before it was backed up repeats that period on resume: its
    history entry is replaced, not doubled."""
    from tfobj.training.callbacks import BestCheckpoint

    best = BestCheckpoint(tmp_path, "val_score")
    best.history = [{"step": 1, "val_score": 0.1}, {"step": 2, "val_score": 0.9}]
    (tmp_path / "history.json").write_text(json.dumps(best.history))
    (tmp_path / "best.json").write_text(json.dumps({"step": 2, "value": 0.9}))
    resumed = BestCheckpoint(tmp_path, "val_score", resume=True)
    model = Regressor()
    model.compile(optimizer="sgd")
    model({"x": TRAIN["x"][:1]})
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(1)  # the backup was from step 1
    resumed.set_model(model)
    resumed.on_epoch_begin(1)
    assert [entry["step"] for entry in resumed.history] == [1] and resumed.best == {"step": 2, "value": 0.9}


def test_without_evaluation_the_last_weights_are_kept():
    result = fit_model(Regressor(), TRAIN, train_config=TrainConfig(steps=3, eval_every=3, batch_size=4))
    assert result.best_step is None and result.history == [] and current_step(result.model) == 3


def test_fit_model_argument_errors():
    with pytest.raises(ValueError, match="needs validation data"):
        fit_model(Regressor(), TRAIN, None, CONFIG, evaluation=SCRIPTED)
    with pytest.raises(ValueError, match="pass a function that builds the model"):
        fit_model(Regressor(), TRAIN, train_config=TrainConfig(steps=4, eval_every=1, strategy="mirrored"))
    with pytest.raises(ValueError, match="sharing their first dimension"):
        training_dataset({"x": np.zeros((4, 3)), "y": np.zeros((5, 3))}, CONFIG)


def test_training_dataset_is_a_seeded_stream_of_permutations():
    x = np.arange(10, dtype=np.float32)[:, None]
    config = TrainConfig(steps=4, eval_every=2, batch_size=4, seed=3)
    first = [batch["x"].numpy().ravel().tolist() for batch in training_dataset({"x": x}, config).take(5)]
    again = [batch["x"].numpy().ravel().tolist() for batch in training_dataset({"x": x}, config).take(5)]
    assert first == again and all(len(batch) == 4 for batch in first)
    assert sorted(first[0] + first[1] + first[2][:2]) == list(range(10))  # one pass over the data, then repeat
    epoch_1 = first[2][2:] + first[3] + first[4]
    assert sorted(epoch_1) == list(range(10)) and epoch_1 != first[0] + first[1] + first[2][:2]  # another order
    resumed = [batch["x"].numpy().ravel().tolist() for batch in training_dataset({"x": x}, config, 3).take(2)]
    assert resumed == first[3:5]


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=3, eval_every=2), "multiple of train.eval_every"),
    (dict(steps=2, eval_every=4), "multiple of train.eval_every"),
    (dict(steps=0), "train.steps must be a positive integer"),
    (dict(batch_size=0), "train.batch_size must be a positive integer"),
    (dict(learning_rate=0.0), "train.learning_rate must be > 0"),
    (dict(global_clipnorm=0.0), "train.global_clipnorm must be > 0 or None"),
    (dict(strategy="tpu"), "train.strategy must be one of"),
    (dict(precision="fp8"), "train.precision must be one of"),
])
def test_train_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"steps": 4, "eval_every": 2, **kwargs})


def test_fit_result_times_the_loop_and_its_evaluations():
    """fit_seconds covers the whole loop, eval_seconds the evaluations in it: an evaluation that sleeps 50 ms,
    run 4 times, puts at least 0.2 s in both (lower bounds only: sleeps last at least that long)."""
    import time

    def slow(model, val):
        time.sleep(0.05)
        return {"score": SCORES[current_step(model)]}

    result = fit_model(Regressor, TRAIN, {}, CONFIG, evaluation=Evaluation(metrics=slow, monitor="score"))
    assert 0.2 <= result.eval_seconds <= result.fit_seconds
    unevaluated = fit_model(Regressor, TRAIN, train_config=CONFIG)
    assert unevaluated.eval_seconds == 0.0 and unevaluated.fit_seconds > 0.0
