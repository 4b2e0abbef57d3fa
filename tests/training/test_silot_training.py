"""SILOT's training (supplement E.1) on stub models: the curriculum's frame counts at each step, the early stops
(best weights restored, learning rate / 3, the third ends training), the training wheels' steps, and the tracking
evaluation (MOTA, count error) against hand-made tracks."""
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfobj.models.baselines.conncomp import Track
from tfobj.models.silot.silot_config import SILOTConfig
from tfobj.training.callbacks import EarlyStopRestoreDecay
from tfobj.training.curriculum import VideoCurriculum, curriculum_frames, curriculum_lengths
from tfobj.training.evaluation import TRACKING, tracking_metrics, tracking_scores
from tfobj.training.schedules import Annealing, PresenceAnnealing


# --- The curriculum ---

def test_curriculum_lengths_and_frames():
    assert curriculum_lengths(8, 2, 2) == [2, 4, 6, 8]  # E.1: 2 frames, then 2 more per stage, to the full video
    assert curriculum_lengths(7, 2, 2) == [2, 4, 6, 7]
    assert curriculum_lengths(8, 2, 2, max_frames=4) == [2, 4]
    assert curriculum_lengths(3, 5, 2) == [3]
    steps = np.arange(0, 200_000, 997)
    expected = np.minimum(2 + 2 * (steps // 40000), 10**9)
    np.testing.assert_array_equal(curriculum_frames(steps, 2, 2, 40000).numpy(), expected)
    np.testing.assert_array_equal(curriculum_frames(steps, 2, 2, 40000, max_frames=4).numpy(),
                                  np.minimum(expected, 4))
    with pytest.raises(ValueError, match="num_frames, start, increment"):
        curriculum_lengths(8, 0, 2)


class _Schedules(Annealing):
    def schedules(self):
        return []


class VideoStub(VideoCurriculum, _Schedules, keras.Model):
    """A one-weight model over videos that records the number of frames its forward pass and its loss saw."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.w = self.add_weight(shape=(), initializer="ones", name="w")
        self.seen = keras.Variable(0, dtype="int32", trainable=False, name="seen")
        self.loss_seen = keras.Variable(0, dtype="int32", trainable=False, name="loss_seen")
        self.tracker = keras.metrics.Mean(name="loss")
        self.create_curriculum_schedule()

    def call(self, videos, training=False):
        videos = videos["videos"] if isinstance(videos, dict) else videos
        self.seen.assign(tf.shape(videos)[1])
        return {"reconstruction": videos * self.w}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        videos = x["videos"] if isinstance(x, dict) else x
        self.loss_seen.assign(tf.shape(videos)[1])
        loss = tf.reduce_mean(tf.square(videos - y_pred["reconstruction"]))
        self.tracker.update_state(loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


class Record(keras.callbacks.Callback):
    """After every batch: (the step it ran at, frames in the forward pass, frames in the loss, the schedule's value)."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        m = self.model
        self.rows.append((int(m.optimizer.iterations.numpy()) - 1, int(m.seen.numpy()), int(m.loss_seen.numpy()),
                          int(m.curriculum_frames.numpy())))


def curriculum_config(**kwargs):
    values = dict(curriculum_start_frames=2, curriculum_step_frames=2, curriculum_steps=3,
                  curriculum_max_frames=None)
    values.update(kwargs)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("max_frames", [None, 4])
def test_the_curriculum_trains_on_the_first_frames_of_each_video(static, max_frames):
    """Videos of 7 frames, 3 steps per stage: steps 0-2 see 2 frames, 3-5 see 4, 6-8 see 6, then 7 (the whole
    video); with max_frames 4, never more than 4. Static T (arrays) takes the per-stage branches, unknown T
    (a generator) the dynamic slice: the same frames."""
    config = curriculum_config(curriculum_max_frames=max_frames)
    videos = np.random.default_rng(0).random((4, 7, 2, 2, 3)).astype(np.float32)
    model = VideoStub(config)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    record = Record()
    if static:
        data = tf.data.Dataset.from_tensor_slices({"videos": videos}).repeat().batch(2)
    else:
        spec = {"videos": tf.TensorSpec([2, None, 2, 2, 3], tf.float32)}
        data = tf.data.Dataset.from_generator(lambda: iter([{"videos": videos[:2]}] * 100), output_signature=spec)
    assert (data.element_spec["videos"].shape[1] is None) != static
    model.fit(data, steps_per_epoch=12, epochs=1, verbose=0, shuffle=False, callbacks=[record])
    steps = [row[0] for row in record.rows]
    assert steps == list(range(12))
    expected = [min(2 + 2 * (step // 3), 7, max_frames or 7) for step in steps]
    assert [row[1] for row in record.rows] == expected  # the forward pass
    assert [row[2] for row in record.rows] == expected  # the loss
    assert [row[3] for row in record.rows] == [min(2 + 2 * (step // 3), max_frames or 99) for step in steps]


def test_the_curriculum_follows_the_checkpointed_step():
    """A resumed run (the optimizer's step restored) continues the curriculum where it was."""
    model = VideoStub(curriculum_config())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    videos = np.zeros((2, 8, 2, 2, 3), np.float32)
    model.fit({"videos": videos}, batch_size=2, epochs=1, verbose=0)  # builds the optimizer
    model.optimizer.iterations.assign(7)
    record = Record()
    model.fit({"videos": videos}, batch_size=2, epochs=2, verbose=0, callbacks=[record])
    assert record.rows == [(7, 6, 6, 6), (8, 6, 6, 6)]


def test_silot_uses_the_curriculum_and_its_config_fields():
    from tfobj.models.silot.silot import SILOT

    assert issubclass(SILOT, VideoCurriculum) and issubclass(SILOT, PresenceAnnealing)
    c = SILOTConfig()
    assert (c.curriculum_start_frames, c.curriculum_step_frames, c.curriculum_steps) == (2, 2, 40000)  # E.1
    with pytest.raises(ValueError, match="curriculum_max_frames must be None"):
        SILOTConfig(curriculum_max_frames=1)


# --- Training wheels (E.1: no gradient through where, depth, pres for the first 1000 steps) ---

def test_training_wheels_are_on_for_the_first_1000_steps_only():
    """SILOT's `wheels` (PresenceAnnealing) at the steps around the switch: 1 (gradients of the where, depth and
    pres heads zeroed, tests/models/silot/test_silot_cells.py) up to step 999, 0 from step 1000."""
    stub = SimpleNamespace(config=SILOTConfig())
    values = [float(PresenceAnnealing._wheels(stub, step)) for step in (0, 1, 998, 999, 1000, 1001, 50000)]
    assert values == [1, 1, 1, 1, 0, 0, 0]


@pytest.mark.slow
def test_silot_training_wheels_freeze_the_where_heads_at_the_right_steps():
    """Two SGD steps of a tiny SILOT with training_wheels_steps = 1: the discovery where head's weights do not
    move in step 0 (no gradient), and do in step 1."""
    import dataclasses
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "silot"))
    from test_silot import TINY

    from tfobj.models.silot.silot import SILOT

    model = SILOT(dataclasses.replace(TINY, training_wheels_steps=1, curriculum_steps=100), seed=0)
    videos = np.random.default_rng(0).random((2, 2, 24, 24, 3)).astype(np.float32)
    model(videos)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    where = [w for w in model.trainable_weights if "where_net" in w.path]
    assert where
    before = [w.numpy().copy() for w in where]
    model.fit({"videos": videos}, batch_size=2, epochs=1, verbose=0)
    after_first = [w.numpy().copy() for w in where]
    model.fit({"videos": videos}, batch_size=2, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, after_first))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(after_first, where))


# --- Early stops (E.1) ---

class LinearStub(keras.Model):
    """One weight w and loss w: plain SGD moves w by −learning_rate every step."""

    def __init__(self):
        super().__init__()
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")

    def call(self, x, training=False):
        return x[:, 0] * 0.0 + self.w

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return tf.reduce_mean(y_pred)


class Scores(keras.callbacks.Callback):
    """Puts a scripted "val_mota" in the logs at each epoch's end (as EvaluationCallback), and records w."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.w = scores, {}

    def on_epoch_end(self, epoch, logs=None):
        logs["val_mota"] = self.scores[epoch]
        self.w[int(self.model.optimizer.iterations.numpy())] = float(self.model.w.numpy())


def fit_with_scores(scores, epochs, **kwargs):
    """2 steps per epoch, SGD at 0.1; returns (model, callback, Scores, w after each epoch's callbacks)."""
    model = LinearStub()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    scripted, stops = Scores(scores), EarlyStopRestoreDecay("val_mota", **kwargs)
    after = {}

    class After(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after[int(self.model.optimizer.iterations.numpy())] = (float(self.model.w.numpy()),
                                                                  float(self.model.optimizer.learning_rate.numpy()))

    model.fit(np.zeros((4, 1), np.float32), batch_size=2, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[scripted, stops, After()])
    return model, stops, scripted, after


def test_early_stops_restore_the_best_weights_divide_the_rate_and_end_at_the_third():
    """Patience 4 steps, an evaluation every 2 steps. Worked by hand: best 0.5 at step 4; no better by step 8:
    stop 1 (back to step 4's w, rate 0.1/3); none better by step 12: stop 2 (step 4's w again, rate 0.1/9); 0.6 at
    step 14; none better by 18: stop 3, back to step 14's w, training ends (9 of 20 epochs)."""
    scores = [0.1, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.1, 0.1] + [0.0] * 11
    model, stops, scripted, after = fit_with_scores(scores, 20, patience=4, lr_divisor=3.0, max_stops=3)
    assert stops.stops == [8, 12, 18]
    assert max(after) == 18  # ended after the third stop
    w = scripted.w  # w before the stop's restore, at each evaluation
    assert w[4] == pytest.approx(-0.4) and w[8] == pytest.approx(-0.8)
    assert after[8] == (pytest.approx(-0.4), pytest.approx(0.1 / 3))  # restored; rate / 3
    assert w[10] == pytest.approx(-0.4 - 2 * 0.1 / 3)  # two steps at the new rate
    assert after[12] == (pytest.approx(-0.4), pytest.approx(0.1 / 9))
    assert w[14] == pytest.approx(-0.4 - 2 * 0.1 / 9)
    assert after[18][0] == pytest.approx(w[14])  # the best weights, at the end
    assert after[18][1] == pytest.approx(0.1 / 9)  # the last stop ends training; no further division
    assert stops.best == {"step": 14, "value": 0.6}
    assert model.w.numpy() == pytest.approx(w[14])


def test_early_stops_kept_in_state_dir_continue_across_a_resume(tmp_path):
    """The first test's run cut after epoch 5 (step 10, between the first and second stops) and continued by a new
    callback reading the record: the same stops, rates and best weights as the uninterrupted run."""
    scores = [0.1, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.1, 0.1] + [0.0] * 11
    whole = fit_with_scores(scores, 20, patience=4, max_stops=3)
    model = LinearStub()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    data = np.zeros((4, 1), np.float32)
    first = EarlyStopRestoreDecay("val_mota", patience=4, max_stops=3, state_dir=tmp_path / "stops")
    model.fit(data, batch_size=2, epochs=5, verbose=0, shuffle=False, callbacks=[Scores(scores[:5]), first])
    assert first.stops == [8] and sorted(p.name for p in (tmp_path / "stops").iterdir()) == [
        "early_stops.json", "early_stops_best.npz"]
    resumed = EarlyStopRestoreDecay("val_mota", patience=4, max_stops=3, state_dir=tmp_path / "stops")
    model.fit(data, batch_size=2, epochs=15, verbose=0, shuffle=False, callbacks=[Scores(scores[5:]), resumed])
    assert resumed.stops == whole[1].stops == [8, 12, 18]
    assert resumed.best == whole[1].best == {"step": 14, "value": 0.6}
    assert model.w.numpy() == pytest.approx(whole[0].w.numpy())
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1 / 9)
    fresh = EarlyStopRestoreDecay("val_mota", patience=4, max_stops=3)  # no state_dir: the record restarts
    model.fit(data, batch_size=2, epochs=1, verbose=0, shuffle=False, callbacks=[Scores([0.0]), fresh])
    assert fresh.stops == [] and fresh.best["value"] == 0.0


def test_a_stop_after_the_last_backup_is_applied_again_on_resume(tmp_path):
    """Killed after the stop at step 8 but restored from a backup of step 8 written before it (the weights of
    step 8 and the rate 0.1): the resumed callback goes back to step 4's weights and divides the rate."""
    scores = [0.1, 0.5, 0.3, 0.2]
    model = LinearStub()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    data = np.zeros((4, 1), np.float32)
    scripted = Scores(scores)
    stops = EarlyStopRestoreDecay("val_mota", patience=4, max_stops=3, state_dir=tmp_path)
    model.fit(data, batch_size=2, epochs=4, verbose=0, shuffle=False, callbacks=[scripted, stops])
    assert stops.stops == [8]
    model.w.assign(scripted.w[8])  # what the backup of step 8 holds: before the stop
    model.optimizer.learning_rate = 0.1
    resumed = EarlyStopRestoreDecay("val_mota", patience=4, max_stops=3, state_dir=tmp_path)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert model.w.numpy() == pytest.approx(scripted.w[4])
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1 / 3)
    assert resumed.stops == [8]


def test_early_stops_wait_for_the_start_step():
    """The same scores stop at step 4 from step 0, but not before start_step (the curriculum's end) + patience."""
    scores = [0.5] + [0.1] * 9
    assert fit_with_scores(scores, 10, patience=2, max_stops=1)[1].stops == [4]
    assert fit_with_scores(scores, 10, patience=2, start_step=8, max_stops=1)[1].stops == [10]


def test_early_stops_min_mode_and_bad_arguments():
    scores = [0.5, 0.2, 0.3, 0.3, 0.3]  # lower is better: best 0.2 at step 4
    assert fit_with_scores(scores, 5, patience=4, max_stops=1, mode="min")[1].stops == [8]
    for kwargs, message in ((dict(patience=0), "patience must be"), (dict(patience=2, max_stops=0), "max_stops"),
                            (dict(patience=2, lr_divisor=0.5), "lr_divisor"), (dict(patience=2, mode="best"), "mode"),
                            (dict(patience=2, start_step=-1), "start_step")):
        with pytest.raises(ValueError, match=message):
            EarlyStopRestoreDecay("val_mota", **kwargs)
    model = LinearStub()
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)))
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        model.fit(np.zeros((2, 1), np.float32), epochs=1, verbose=0,
                  callbacks=[EarlyStopRestoreDecay("val_mota", patience=2)])
    model = LinearStub()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(KeyError, match="val_mota"):
        model.fit(np.zeros((2, 1), np.float32), epochs=1, verbose=0,
                  callbacks=[EarlyStopRestoreDecay("val_mota", patience=2)])


# --- The tracking evaluation ---

def _videos():
    """Two videos of 2 frames; video 0 has objects 1 and 2, video 1 has object 1 in its second frame only."""
    boxes = np.zeros((2, 2, 2, 4), np.float32)
    ids = np.zeros((2, 2, 2), np.int32)
    boxes[0, :, 0], boxes[0, :, 1] = [0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.8, 0.8]
    ids[0, :] = [1, 2]
    boxes[1, 1, 0], ids[1, 1, 0] = [0.2, 0.2, 0.4, 0.4], 1
    return {"videos": np.zeros((2, 2, 24, 24, 3), np.float32), "boxes": boxes, "track_ids": ids}


class TrackStub:
    def __init__(self, tracks):
        self.tracks = tracks

    def predict_objects(self, videos):
        assert len(videos) == len(self.tracks)
        return self.tracks


def test_tracking_evaluation_scores_tracks_by_mota_and_count_error():
    val = _videos()
    perfect = [Track(ids=[val["track_ids"][v, t][val["track_ids"][v, t] > 0] for t in range(2)],
                     boxes=[val["boxes"][v, t][val["track_ids"][v, t] > 0] for t in range(2)]) for v in range(2)]
    assert tracking_metrics(TrackStub(perfect), val) == {"mota": 1.0, "motp": pytest.approx(0.0, abs=1e-6),
                                                         "num_switches": 0, "count_abs_error": 0.0}
    # Video 0 loses object 2 in frame 1 and video 1 reports a false object in frame 0: by hand, 5 true boxes,
    # 1 miss, 1 false positive: MOTA 1 − 2/5; count errors per frame |2−2|, |1−2|, |1−0|, |1−1| → 0.5.
    faulty = [Track(ids=[np.array([1, 2]), np.array([1])], boxes=[val["boxes"][0, 0], val["boxes"][0, 1][:1]]),
              Track(ids=[np.array([7]), np.array([1])], boxes=[np.array([[0.6, 0.6, 0.9, 0.9]]), val["boxes"][1, 1][:1]])]
    scores = tracking_scores(faulty, val)
    assert scores["mota"] == pytest.approx(0.6) and scores["num_misses"] == 1 and scores["num_false_positives"] == 1
    assert scores["count_abs_error"] == pytest.approx(0.5)
    assert TRACKING.monitor == "mota" and TRACKING.mode == "max" and TRACKING.metrics is tracking_metrics
