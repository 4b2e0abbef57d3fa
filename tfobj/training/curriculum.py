"""SILOT's training curriculum (supplement E.1): train on the first 2 frames of each video, then 2 more frames every
N_curric steps, until the whole video.

The curriculum is a schedule like the annealed values (`tfobj.training.schedules`): a pure function of the
optimizer step (`curriculum_frames`), applied inside every training step, so `model.fit`, `fit_model` and a
resumed run (the optimizer's step is checkpointed) all train on the frames of the step they are at. The
original code ran the stages as separate runs of its framework (e2crawfo/silot, branch aaai_2020, `run.py`:
`n_frames = min(2 + 2·floor(step / stage_steps), 8)`); here they are one `fit`.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfobj.training.schedules import Annealing

__all__ = ["VideoCurriculum", "curriculum_frames", "curriculum_lengths"]


def curriculum_frames(step, start: int, increment: int, stage_steps: int, max_frames: int | None = None) -> tf.Tensor:
    """The number of frames trained on at optimizer `step`: `start + increment·floor(step / stage_steps)`, at most
    `max_frames` (None: no bound here; the video's length bounds it), int32."""
    stage = tf.cast(step, tf.int64) // stage_steps
    frames = tf.cast(start, tf.int64) + tf.cast(increment, tf.int64) * stage
    if max_frames is not None:
        frames = tf.minimum(frames, max_frames)
    return tf.cast(frames, tf.int32)


def curriculum_lengths(num_frames: int, start: int, increment: int, max_frames: int | None = None) -> list[int]:
    """The clip lengths of the curriculum's stages for videos of `num_frames` frames, in order:
    `[start, start + increment, ...]`, each at most `min(num_frames, max_frames)`, ending at that bound.

    >>> curriculum_lengths(8, 2, 2)
    [2, 4, 6, 8]
    >>> curriculum_lengths(7, 2, 2, max_frames=5)
    [2, 4, 5]
    """
    if num_frames < 1 or start < 1 or increment < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError("curriculum_lengths needs num_frames, start, increment (and max_frames) >= 1; got "
                         f"{num_frames}, {start}, {increment}, {max_frames}")
    bound = num_frames if max_frames is None else min(num_frames, max_frames)
    lengths = []
    frames = start
    while not lengths or lengths[-1] < bound:
        lengths.append(min(frames, bound))
        frames += increment
    return lengths


class VideoCurriculum(Annealing):
    """Mixin for a `keras.Model` over videos `[B, T, H, W, C]` (or `{"videos": ...}`): every training step runs on
    the first `curriculum_frames(step)` frames of each video.

    It reads the config fields `curriculum_start_frames`, `curriculum_step_frames`, `curriculum_steps` and
    `curriculum_max_frames` (None: the whole video) from `self.config`. The model calls
    `create_curriculum_schedule()` in `__init__`, which creates `self.curriculum_frames`, the frame count of the
    current step (before the video's length bounds it), assigned in every training step with the other annealed
    values; `schedules()` lists it after the base class's.

    The training step is Keras' (forward, `compute_loss`, gradients, `optimizer.apply_gradients`,
    `compute_metrics`), on the clip. When the batch's T is static (`fit` on arrays, `fit_model`) each stage's clip
    has a static length and the step picks its stage with `tf.switch_case`, so a model whose frame loop unrolls on
    a static T keeps doing so (the step's graph holds one copy per stage; only the current stage runs). With T
    unknown the clip is sliced to a dynamic length.
    """

    def create_curriculum_schedule(self) -> None:
        self.curriculum_frames = keras.Variable(
            self._curriculum_frames(0), trainable=False, dtype="int32", name="curriculum_frames",
            aggregation="only_first_replica")

    def _curriculum_frames(self, step):
        c = self.config
        return curriculum_frames(step, c.curriculum_start_frames, c.curriculum_step_frames, c.curriculum_steps,
                                 c.curriculum_max_frames)

    def schedules(self):
        return super().schedules() + [(self.curriculum_frames, self._curriculum_frames)]

    def curriculum_stage(self, step, num_frames: int) -> tf.Tensor:
        """The index into `curriculum_lengths(num_frames, ...)` of the stage at optimizer `step`, int32."""
        c = self.config
        last = len(curriculum_lengths(num_frames, c.curriculum_start_frames, c.curriculum_step_frames,
                                      c.curriculum_max_frames)) - 1
        return tf.cast(tf.minimum(tf.cast(step, tf.int64) // c.curriculum_steps, last), tf.int32)

    def train_step(self, data):
        self.anneal(self.optimizer.iterations)
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        videos = x["videos"] if isinstance(x, dict) else x
        c = self.config
        step = self.optimizer.iterations

        def loss_on(clip):
            outputs = self(clip, training=True)
            return self.compute_loss(x=clip, y_pred=outputs, training=True)

        num_frames = videos.shape[1]
        with tf.GradientTape() as tape:
            if num_frames is None:  # unknown T: one dynamic clip
                frames = tf.minimum(self._curriculum_frames(step), tf.shape(videos)[1])
                loss = loss_on(videos[:, :frames])
            else:
                lengths = curriculum_lengths(num_frames, c.curriculum_start_frames, c.curriculum_step_frames,
                                             c.curriculum_max_frames)
                branches = [lambda k=k: loss_on(videos[:, :k]) for k in lengths]
                loss = branches[0]() if len(branches) == 1 else \
                    tf.switch_case(self.curriculum_stage(step, num_frames), branches)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.compute_metrics(x, None, None)
