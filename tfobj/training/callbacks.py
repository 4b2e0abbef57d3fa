"""Generic Keras callbacks of tfobj's training: stop on a non-finite loss, keep the best weights of a whole run,
early stops that restore the best weights and divide the learning rate (SILOT).

Model-specific evaluation lives in `tfobj.training.evaluation`; annealing in the models' own steps
(`tfobj.training.schedules.Annealing`).
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import keras

from tfobj.training.evaluation import current_step

log = logging.getLogger(__name__)


def improves(value: float, best: dict | None, mode: str) -> bool:
    """Whether `value` is better than `best["value"]` ("max": larger, "min": smaller); anything beats None."""
    if best is None:
        return True
    return value > best["value"] if mode == "max" else value < best["value"]


class NonFiniteLossError(FloatingPointError):
    """Raised by `StopOnNaN` when the training loss becomes NaN or Inf; `step` is the optimizer step."""

    def __init__(self, message: str, step: int, value: float):
        super().__init__(message)
        self.step, self.value = step, value


class StopOnNaN(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose logged loss is NaN or Inf, naming the optimizer step, before
    any later callback can save the non-finite weights.

    Put it BEFORE `ModelCheckpoint` and `BackupAndRestore` in the callbacks list. On a non-finite loss it
    sets `model.stop_training`, logs an error and raises `NonFiniteLossError` from `on_train_batch_end`.
    Raising, not just stopping as `keras.callbacks.TerminateOnNaN` does, matters: after a stop, Keras
    still runs the later callbacks' `on_train_batch_end` (a `ModelCheckpoint(save_freq=N)` saves the NaN
    weights if the batch is a save batch) and every callback's `on_epoch_end` and `on_train_end` (an
    epoch-end `ModelCheckpoint` or `BackupAndRestore` saves them; `BackupAndRestore` deletes its backup).
    The raise aborts `fit` before all of those, so every checkpoint on disk keeps the last finite weights
    and a `BackupAndRestore` backup survives to resume from.

    The step named is the value of `optimizer.iterations` when the failing batch began, i.e. the number
    of updates applied before it (the step whose schedules the batch trained with). A model's "loss" log is
    the epoch's running mean, which stays non-finite once one batch is, so the first failing batch is
    found exactly; with `steps_per_execution = n > 1` it is one of the n steps named in the message.

    Args:
        monitor: the log key to check.
    """

    def __init__(self, monitor: str = "loss"):
        super().__init__()
        self.monitor = monitor
        self.nan_step: int | None = None  # the failing optimizer step, once one failed
        self._first_step = self._first_batch = self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._first_step, self._first_batch = current_step(self.model), batch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isfinite(float(value)):
            return
        first = self._first_step
        last = first + max(0, batch - self._first_batch)  # Keras passes the execution's last batch here
        where = f"optimizer step {first}" if last == first else f"one of optimizer steps {first}..{last}"
        self.nan_step = first
        self.model.stop_training = True
        message = (f"{self.monitor} is {float(value)} at {where} (epoch {self._epoch}, batch {self._first_batch}, "
                   "0-based); training stopped before any later callback could save the non-finite weights, so "
                   "checkpoints on disk hold the last finite ones")
        log.error(message)
        raise NonFiniteLossError(message, step=first, value=float(value))


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the weights of the best evaluation of a whole run, also across a kill and a resume.

    At the end of every epoch (= evaluation period) it appends the epoch's logs, with the optimizer step, to
    `<directory>/history.json`, and if `logs[monitor]` beats every earlier evaluation of the run it saves the
    weights to `<directory>/best.weights.h5` and the step and value to `best.json`. With `resume=True` (the run
    continues from a `BackupAndRestore` backup) it starts from the files of the interrupted run: the best so
    far stays the bar a resumed epoch must beat, and evaluations after the restored step (the interrupted run
    evaluated them, the resumed run repeats them) are dropped from the history. Keras' `ModelCheckpoint(
    save_best_only=True)` instead starts from no best, so the first resumed epoch could overwrite a better
    checkpoint, and `fit`'s History restarts, so a best step read from it is offset.

    Put it before `BackupAndRestore` in the callbacks list: an epoch is then recorded here before it is backed
    up, and a kill between the two repeats the epoch instead of losing its evaluation.

    Args:
        directory: where the three files go.
        monitor: the log key to compare (e.g. "val_ap").
        mode: "max" or "min".
        resume: continue the record of an interrupted run in `directory` (else it is started afresh).
    """

    def __init__(self, directory, monitor: str, mode: str = "max", resume: bool = False):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}")
        self.directory, self.monitor, self.mode = Path(directory), monitor, mode
        self.weights_path = self.directory / "best.weights.h5"
        self.history: list[dict] = []
        self.best: dict | None = None  # {"step": int, "value": float}
        if resume and (self.directory / "history.json").exists():
            self.history = json.loads((self.directory / "history.json").read_text())
            if (self.directory / "best.json").exists():
                self.best = json.loads((self.directory / "best.json").read_text())
        self._trim_at_next_epoch = resume

    def on_epoch_begin(self, epoch, logs=None):
        if self._trim_at_next_epoch:  # after every on_train_begin, so BackupAndRestore has restored the step
            step = current_step(self.model)
            self.history = [entry for entry in self.history if entry["step"] <= step]
            self._trim_at_next_epoch = False

    def _better(self, value: float) -> bool:
        return improves(value, self.best, self.mode)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"BestCheckpoint monitors {self.monitor!r}, which the logs do not have: {sorted(logs)}")
        step = current_step(self.model)
        self.history.append({"step": step, **{key: float(value) for key, value in logs.items()}})
        value = float(logs[self.monitor])
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._better(value):
            self.best = {"step": step, "value": value}
            partial = self.directory / "best.partial.weights.h5"
            self.model.save_weights(partial)
            os.replace(partial, self.weights_path)  # a kill never leaves a half-written best
            _write_json(self.directory / "best.json", self.best)
        _write_json(self.directory / "history.json", self.history)


def _write_json(path: Path, value) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1))
    os.replace(partial, path)



class EarlyStopRestoreDecay(keras.callbacks.Callback):
    """SILOT's early stopping (supplement E.1): when the validation score has not improved for `patience`
    training steps, go back to the best weights so far, divide the learning rate by `lr_divisor`, and resume; the
    `max_stops`-th such stop ends training.

    "Once the network is training on full frames, we begin an early stopping regime wherein we train until the
    measure of performance (in most cases, MOTA on the validation set) does not improve for 30,000 training steps
    [...]. Each time an early stop is triggered, we go back to the set of weights that has the best performance so
    far, divide the learning rate by 3, and resume training. Training ends once early stopping has been triggered
    3 times." The patience is in optimizer steps (the supplement's "at the level of training steps"), checked at
    the end of every Keras epoch (= evaluation period of `fit_model`), after the `EvaluationCallback` has put the
    score in the logs. It counts from the latest of: `start_step` (the curriculum's end), the best score's step,
    and the previous stop. The best weights are those of the best score of the whole run (also from before
    `start_step`), kept in memory (the trainable variables; the optimizer's moments continue). `fit_model`'s
    `BestCheckpoint` keeps the run's final weights; this callback only decides the restarts and the end.

    With `state_dir`, the record (the stops, the best score and its weights) is kept there (`early_stops.json`,
    `early_stops_best.npz`, each written whole, then renamed), and a run resumed by `BackupAndRestore` continues
    it. The backup of the period in which a stop fires is written before the stop (`fit_model` runs its callbacks
    before the caller's), so a run killed after a stop and before the next backup resumes from weights and a
    learning rate from before the stop: the stop is then applied again when training resumes. Without
    `state_dir` a resumed run restarts the record (and keeps the learning rate of its last backup).

    Args:
        monitor: the log key (e.g. "val_mota").
        patience: steps without a better score before a stop (E.1: 30,000).
        start_step: the step from which stops may happen (E.1: once training is on whole videos).
        lr_divisor: the learning rate is divided by it at each stop that does not end training (E.1: 3).
        max_stops: the stop that ends training (E.1: the third).
        mode: "max" (MOTA) or "min".
        state_dir: where the record is kept across a resume (`fit_silot` passes `<run_dir>/early_stops`), or None.

    Attributes:
        stops: the optimizer steps at which stops were triggered.
        best: {"step", "value"} of the best score so far, or None.
    """

    def __init__(self, monitor: str, patience: int, start_step: int = 0, lr_divisor: float = 3.0,
                 max_stops: int = 3, mode: str = "max", state_dir: str | Path | None = None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}")
        for name, value, minimum in (("patience", patience, 1), ("start_step", start_step, 0),
                                     ("max_stops", max_stops, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
        if not lr_divisor >= 1.0:
            raise ValueError(f"lr_divisor must be >= 1; got {lr_divisor}")
        self.monitor, self.patience, self.start_step, self.mode = monitor, patience, start_step, mode
        self.lr_divisor, self.max_stops = float(lr_divisor), max_stops
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.stops: list[int] = []
        self.best: dict | None = None
        self._best_weights: list | None = None

    def on_train_begin(self, logs=None):
        if not isinstance(self.model.optimizer.learning_rate, keras.Variable):
            raise ValueError("EarlyStopRestoreDecay divides the optimizer's learning rate, which must be a number "
                             "(a variable), not a LearningRateSchedule")
        if self.state_dir is None or not (self.state_dir / "early_stops.json").exists():
            return
        import numpy as np

        record = json.loads((self.state_dir / "early_stops.json").read_text())
        self.stops, self.best = [int(step) for step in record["stops"]], record["best"]
        if self.best is not None:
            with np.load(self.state_dir / "early_stops_best.npz") as kept:
                self._best_weights = [kept[f"w{index}"] for index in range(len(kept.files))]
            if len(self._best_weights) != len(self.model.trainable_variables):
                raise ValueError(f"{self.state_dir}: the kept best weights are {len(self._best_weights)} arrays, the "
                                 f"model has {len(self.model.trainable_variables)} trainable variables")
        step = current_step(self.model)
        log.info("early stops: resumed at step %d with stops %s, best %s", step, self.stops, self.best)
        if self.stops and self.stops[-1] == step:  # the backup predates this step's stop: apply it again
            self._apply_stop(step, record=False)

    def _save_state(self, best_changed: bool) -> None:
        if self.state_dir is None:
            return
        import numpy as np

        self.state_dir.mkdir(parents=True, exist_ok=True)
        if best_changed:
            partial = self.state_dir / "early_stops_best.partial.npz"
            np.savez(partial, **{f"w{index}": value for index, value in enumerate(self._best_weights)})
            os.replace(partial, self.state_dir / "early_stops_best.npz")
        _write_json(self.state_dir / "early_stops.json", {"stops": self.stops, "best": self.best})

    def _better(self, value: float) -> bool:
        return improves(value, self.best, self.mode)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopRestoreDecay monitors {self.monitor!r}, which the logs do not have: "
                           f"{sorted(logs)}")
        value, step = float(logs[self.monitor]), current_step(self.model)
        if self._better(value):
            self.best = {"step": step, "value": value}
            self._best_weights = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables]
            self._save_state(best_changed=True)
            return
        since = max(self.start_step, self.best["step"], self.stops[-1] if self.stops else 0)
        if step - since < self.patience:
            return
        self._apply_stop(step, record=True)

    def _apply_stop(self, step: int, record: bool) -> None:
        """Back to the best weights; the learning rate / divisor, or the end of training at the last stop."""
        if record:
            self.stops.append(step)
            self._save_state(best_changed=False)
        for variable, kept in zip(self.model.trainable_variables, self._best_weights):
            variable.assign(kept)
        optimizer = self.model.optimizer
        if len(self.stops) >= self.max_stops:
            self.model.stop_training = True
            log.info("early stop %d/%d at step %d: back to the weights of step %d (%s = %.4f); training ends",
                     len(self.stops), self.max_stops, step, self.best["step"], self.monitor, self.best["value"])
            return
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) / self.lr_divisor
        optimizer.learning_rate = rate
        log.info("early stop %d/%d at step %d: back to the weights of step %d (%s = %.4f), learning rate %.3g",
                 len(self.stops), self.max_stops, step, self.best["step"], self.monitor, self.best["value"], rate)
