"""Training robustness for SPAIR: a NaN loss stops fit naming the step and keeps the last finite
checkpoints; BackupAndRestore resumes the schedules (and the run) from the backed-up step;
checkpoints round-trip every weight; evaluate on a dataset of dicts logs every loss term."""
import json
import math
import types

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.spair.spair import LOSS_KEYS, SPAIR
from tfobj.models.spair.spair_config import SPAIRConfig
from tfobj.training.callbacks import NonFiniteLossError, StopOnNaN
from tiny import TINY_SPAIR

TINY = TINY_SPAIR
# Fast schedules, so that the annealed values differ between the few steps these tests run:
# s changes every step, the training wheels come off at step 4.
FAST = SPAIRConfig(**{**TINY.__dict__, "count_prior_decay_steps": 2, "training_wheels_steps": 4})


def images(n, seed=0, size=12):
    """Random images; 12x12 (one cell) unless a test needs a grid: tracing fit is most of a test's time."""
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


def dataset(x, batch_size=2):
    return tf.data.Dataset.from_tensor_slices({"images": x}).batch(batch_size)


def make_model(config=TINY, init_seed=0, model_class=SPAIR, learning_rate=1e-2):
    keras.utils.set_random_seed(init_seed)  # weight initialisation
    model = model_class(config, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=1.0))
    model(images(1))  # build (posterior mode: draws no noise)
    return model


def fresh_model(config=TINY):
    """A new model (other initial weights) with a built optimizer, to load weight files into."""
    model = make_model(config, init_seed=123)
    model.optimizer.build(model.trainable_variables)
    return model


def values(variables):
    return [np.array(v.numpy()) for v in variables]


def assert_all_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def all_finite(arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


class NaNAtStep(SPAIR):
    """SPAIR whose nll is multiplied by NaN at one optimizer step: the logged loss becomes NaN there and
    the step's gradients, hence the weights after its update, are non-finite (a real blow-up's signature)."""

    nan_step = 5

    def loss_terms(self, images, outputs):
        terms = super().loss_terms(images, outputs)
        poison = tf.where(tf.equal(self.optimizer.iterations, self.nan_step), float("nan"), 1.0)
        terms["nll"] = terms["nll"] * poison
        return terms


class WeightsAfterEachStep(keras.callbacks.Callback):
    """{optimizer.iterations: model weights} after every training batch."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_train_batch_end(self, batch, logs=None):
        self.weights[int(self.model.optimizer.iterations)] = values(self.model.weights)


def fit_until_nan(tmp_path, guard):
    """Fits NaNAtStep (NaN at step 5; 3 batches per epoch) with `guard` before two checkpoints — every
    2 steps and every epoch — and a BackupAndRestore; returns the model, the snapshots and the error."""
    model = make_model(model_class=NaNAtStep)
    snapshots = WeightsAfterEachStep()
    callbacks = [snapshots, guard,
                 keras.callbacks.ModelCheckpoint(tmp_path / "every2.weights.h5", save_weights_only=True, save_freq=2),
                 keras.callbacks.ModelCheckpoint(tmp_path / "epoch.weights.h5", save_weights_only=True),
                 keras.callbacks.BackupAndRestore(tmp_path / "backup")]
    error = None
    try:
        model.fit(dataset(images(6)), epochs=4, verbose=0, shuffle=False, callbacks=callbacks)
    except NonFiniteLossError as e:
        error = e
    return model, snapshots.weights, error


@pytest.mark.slow
def test_stop_on_nan_names_the_step_and_keeps_the_last_finite_checkpoints(tmp_path, caplog):
    guard = StopOnNaN()
    with caplog.at_level("ERROR", logger="tfobj.training.callbacks"):
        model, snapshots, error = fit_until_nan(tmp_path, guard)

    assert isinstance(error, NonFiniteLossError)
    assert "optimizer step 5 " in str(error) and "epoch 1, batch 2" in str(error)
    assert error.step == guard.nan_step == 5 and math.isnan(error.value)
    assert "optimizer step 5 " in caplog.text
    assert model.stop_training
    assert all_finite(snapshots[5]) and not all_finite(snapshots[6])  # step 5's update made the weights NaN
    # Files hold the weights of their last save before step 5: after step 3 (iterations 4) for the
    # every-2-steps checkpoint, after epoch 0 (iterations 3) for the epoch-end one and the backup.
    loaded = fresh_model()
    for name, saved_at in (("every2.weights.h5", 4), ("epoch.weights.h5", 3), ("backup/latest.weights.h5", 3)):
        loaded.load_weights(tmp_path / name)
        assert int(loaded.optimizer.iterations) == saved_at, name
        assert_all_equal(values(loaded.weights), snapshots[saved_at])
    # The backup survives (fit never reached on_train_end, which deletes it) and resumes at epoch 1.
    assert json.loads((tmp_path / "backup/training_metadata.json").read_text())["epoch"] == 1


@pytest.mark.slow
def test_terminate_on_nan_alone_lets_the_checkpoints_save_the_nan_weights(tmp_path):
    """Why StopOnNaN raises: with Keras' TerminateOnNaN (stop only), the same run overwrites both
    checkpoints with the NaN weights — the every-2-steps one on step 5's batch end, the epoch-end one
    at the end of the stopped epoch — and deletes the backup."""
    model, snapshots, error = fit_until_nan(tmp_path, keras.callbacks.TerminateOnNaN())
    assert error is None and model.stop_training and not all_finite(snapshots[6])
    loaded = fresh_model()
    for name in ("every2.weights.h5", "epoch.weights.h5"):
        loaded.load_weights(tmp_path / name)
        assert int(loaded.optimizer.iterations) == 6, name
        assert not all_finite(values(loaded.weights)), name
    assert not (tmp_path / "backup").exists()


def test_stop_on_nan_step_range_with_steps_per_execution_and_no_false_alarms():
    """On a stand-in model: no alarm for a finite or absent loss; Inf stops too, naming every step of
    a multi-step execution."""
    model = types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=7), stop_training=False)
    guard = StopOnNaN()
    guard.set_model(model)
    guard.on_epoch_begin(2)
    guard.on_train_batch_begin(4)
    guard.on_train_batch_end(7, {"loss": 3.5})  # finite: nothing happens
    guard.on_train_batch_end(7, {"nll": float("nan")})  # monitored key absent: nothing happens
    assert not model.stop_training and guard.nan_step is None
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at one of optimizer steps 7\.\.10 \(epoch 2, batch 4"):
        guard.on_train_batch_end(7, {"loss": float("inf")})  # 4 steps (batches 4..7) in one execution
    assert model.stop_training and guard.nan_step == 7


class Recorder(keras.callbacks.Callback):
    """Per training batch, after its step: (the step, the count_prior_s and wheels it trained with, the noise
    RNG state after its draws)."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        m = self.model
        self.rows.append((int(m.optimizer.iterations) - 1, float(m.count_prior_s), float(m.wheels),
                          tuple(m.seed_generator.state.numpy().tolist())))


class InterruptAtStep(keras.callbacks.Callback):
    """Simulates a kill: raises when the optimizer reaches `step` (as Keras' own BackupAndRestore tests)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise RuntimeError("interrupted")


def expected_schedule(step, c=FAST):
    """The schedules re-derived in float64 from the formulas (schedules.py, original code)."""
    v = (c.count_prior_start - c.count_prior_end) * c.count_prior_decay_rate ** (step / c.count_prior_decay_steps)
    return 1.0 / (1.0 + v + c.count_prior_end + 1e-6), 1.0 if step < c.training_wheels_steps else 0.0


@pytest.mark.slow
def test_kill_and_resume_continues_schedules_and_reproduces_the_uninterrupted_run(tmp_path):
    x, epochs = images(6, size=24), 3  # 2x2 grids; 3 batches per epoch, 9 steps
    reference, reference_rows = make_model(FAST), Recorder()
    reference.fit(dataset(x), epochs=epochs, verbose=0, shuffle=False, callbacks=[reference_rows])
    assert [row[0] for row in reference_rows.rows] == list(range(9))

    backup = str(tmp_path / "backup")
    killed = make_model(FAST)
    with pytest.raises(RuntimeError, match="interrupted"):
        killed.fit(dataset(x), epochs=epochs, verbose=0, shuffle=False,
                   callbacks=[keras.callbacks.BackupAndRestore(backup), InterruptAtStep(5)])
    assert int(killed.optimizer.iterations) == 5  # killed in epoch 1; the backup is from the end of epoch 0

    resumed, rows = make_model(FAST, init_seed=7), Recorder()  # a new object with other initial weights
    assert not np.array_equal(resumed.weights[0].numpy(), reference.weights[0].numpy())
    history = resumed.fit(dataset(x), epochs=epochs, verbose=0, shuffle=False,
                          callbacks=[keras.callbacks.BackupAndRestore(backup), rows])

    steps = [row[0] for row in rows.rows]
    assert steps == list(range(3, 9)) and len(history.history["loss"]) == 2  # from step 3, not 0
    for step, s, wheels, _ in rows.rows:
        expected_s, expected_wheels = expected_schedule(step)
        np.testing.assert_allclose(s, expected_s, rtol=1e-5, err_msg=f"step {step}")
        assert wheels == expected_wheels, step
    first_s, first_wheels = rows.rows[0][1:3]
    assert first_wheels == 1.0 and rows.rows[1][2] == 0.0  # wheels come off between the first two resumed steps
    assert not np.isclose(first_s, expected_schedule(0)[0], rtol=0.5)  # not the step-0 value
    # Exactly the uninterrupted run's annealed values and noise RNG states (SPAIR saves the RNG state
    # with its weights; Keras does not, and a restored run would otherwise redraw the first epochs' noise).
    assert rows.rows == reference_rows.rows[3:]
    # Same data order (an unshuffled dataset restarts at the backed-up epoch), restored weights,
    # optimizer moments and RNG state, and CPU kernels that are deterministic for a fixed graph: the
    # resumed run ends with the uninterrupted run's weights bit for bit.
    assert_all_equal(values(resumed.weights), values(reference.weights))
    assert_all_equal(values(resumed.optimizer.variables), values(reference.optimizer.variables))
    assert not (tmp_path / "backup").exists()  # finished normally: BackupAndRestore deleted its backup


@pytest.mark.slow
def test_model_checkpoint_round_trips_every_weight_and_the_rng_state(tmp_path):
    config = SPAIRConfig(**{**TINY.__dict__, "background": "learn_solid", "count_prior_decay_steps": 2,
                            "concrete_temperature": 0.5})
    model = make_model(config)
    path = tmp_path / "model.weights.h5"
    model.fit(dataset(images(4)), epochs=1, verbose=0, shuffle=False,
              callbacks=[keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
    # The annealed variables hold values a fresh model does not: s(1), wheels on, temperature 0.5.
    annealed = {"count_prior_s": expected_schedule(1, config)[0], "training_wheels": 1.0, "temperature": 0.5}
    assert {v.name for v in model.non_trainable_weights} == set(annealed)
    for v in model.non_trainable_weights:
        np.testing.assert_allclose(float(v), annealed[v.name], rtol=1e-5, err_msg=v.name)
    fresh = fresh_model(config)
    fresh.wheels.assign(0.0)  # not the saved value, so that the load must change it
    assert float(fresh.count_prior_s) != float(model.count_prior_s)

    fresh.load_weights(path)
    assert [(w.name, w.shape) for w in fresh.weights] == [(w.name, w.shape) for w in model.weights]
    assert_all_equal(values(fresh.weights), values(model.weights))  # includes background_logits
    assert_all_equal(values(fresh.optimizer.variables), values(model.optimizer.variables))
    assert float(fresh.wheels) == 1.0 and float(fresh.count_prior_s) == float(model.count_prior_s)
    state = model.seed_generator.state.numpy()
    assert state[1] == 8  # 2 steps x 4 noise draws
    np.testing.assert_array_equal(fresh.seed_generator.state.numpy(), state)

    # A file without the RNG state (written before SPAIR saved it) still loads, keeping the current state.
    with h5py.File(path, "r+") as f:
        del f["vars/noise_seed_state"]
    other = fresh_model(config)
    before = other.seed_generator.state.numpy()
    other.load_weights(path)
    assert_all_equal(values(other.weights), values(model.weights))
    np.testing.assert_array_equal(other.seed_generator.state.numpy(), before)


def test_evaluate_on_a_dataset_of_dicts_returns_every_loss_key():
    model = make_model()
    model.count_prior_s.assign(0.3)
    x = images(5, seed=3, size=24)
    logs = model.evaluate(dataset(x), verbose=0, return_dict=True)  # batches of 2, 2, 1
    assert set(LOSS_KEYS) | {"num_objects"} <= set(logs)
    # evaluate is the posterior mode; each logged term is the mean over all 5 images, whatever the batching.
    out = model(x, training=False)
    terms = {key: value.numpy() for key, value in model.loss_terms(x, out).items()}
    terms["loss"] = sum(terms.values())
    for key in LOSS_KEYS:
        np.testing.assert_allclose(logs[key], terms[key].mean(), rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(logs["num_objects"], out["num_objects"].numpy().mean(), rtol=1e-6)
    assert all(np.isfinite(logs[key]) for key in LOSS_KEYS)


@pytest.mark.slow
def test_run_spair_stops_on_nan_with_the_step(monkeypatch):
    """run_spair's callbacks: a NaN loss ends the run with NonFiniteLossError naming the step."""
    from tfobj.data import ScatteredMNISTConfig
    from tfobj.data.experiment_data import ImageData
    from tfobj.experiments.spair import SPAIRExperiment, run_spair
    from tfobj.training.train_config import TrainConfig

    class NaNAtStep3(NaNAtStep):
        nan_step = 3

    monkeypatch.setattr("tfobj.models.spair.spair.SPAIR", NaNAtStep3)  # run_spair imports it when called
    config = SPAIRExperiment(
        model=TINY, data=ImageData(scene=ScatteredMNISTConfig(image_size=(24, 24), max_digits=2), num_train_images=8,
                                   num_val_images=4, num_test_images=4),
        train=TrainConfig(steps=6, eval_every=2, batch_size=2))
    with pytest.raises(NonFiniteLossError, match="optimizer step 3 ") as error:
        run_spair(config)
    assert error.value.step == 3
