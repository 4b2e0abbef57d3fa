"""SILOT experiments: trained with `fit_model` on Scattered MNIST videos, evaluated by MOTA (CLEAR MOT).

Config: `model` (`SILOTConfig`, supplement Tables 1 and 2, with the curriculum and early-stopping parameters of
E.1), `data` (`VideoData`: 48×48 videos of 8 frames with 1–6 digits, supplement D.1) and `train` (`TrainConfig`;
default `SILOT_TRAINING`: Adam 1e-4, batch 16, gradient norm clipped at 10, evaluation every 5,000 steps).

Training (supplement E.1): the curriculum (`tfobj.training.curriculum.VideoCurriculum`, in the model's training
step), the training wheels (the model's annealed `wheels`), and the early stops on validation MOTA that restore
the best weights and divide the learning rate by 3, the third ending training
(`tfobj.training.callbacks.EarlyStopRestoreDecay`); `fit_model` keeps the best validation MOTA's weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfobj.data.experiment_data import VideoData
from tfobj.experiments.common import track_examples, tracking_scores
from tfobj.models.silot.silot_config import SILOT_TRAINING, SILOTConfig
from tfobj.training.curriculum import curriculum_lengths
from tfobj.training.train_config import TrainConfig

__all__ = ["SILOTExperiment", "curriculum_end_step", "figure_outputs", "fit_silot", "run_silot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SILOTExperiment:
    """SILOT on Scattered MNIST videos 48×48, 8 frames, 1–6 digits (supplement D.1: 60,000 training and 1,000
    validation videos, 1,000 test videos per condition). Full mode is the supplement's protocol: the curriculum
    (2, 4, 6, 8 frames, 40,000 steps each), then early stops on validation MOTA (patience 30,000 steps, learning
    rate / 3 at each, the third ends training), the best validation MOTA's weights tested."""

    model: SILOTConfig = field(default_factory=SILOTConfig)
    data: VideoData = field(default_factory=lambda: VideoData(num_train_videos=60000, num_val_videos=1000,
                                                              num_test_videos=1000))
    train: TrainConfig = field(default_factory=lambda: SILOT_TRAINING)

    def __post_init__(self):
        # Checked here, when the config is loaded: before any data is generated or any model built.
        m, scene = self.model, self.data.scene
        height, width = scene.image_size
        if height % m.cell_size or width % m.cell_size:
            raise ValueError(f"data.scene.image_size must be multiples of model.cell_size = {m.cell_size} (SILOT's "
                             f"discovery grid); got {scene.image_size}")
        cells = (height // m.cell_size) * (width // m.cell_size)
        if cells < m.num_objects:
            raise ValueError(f"data.scene.image_size {scene.image_size} gives {cells} discovery cells of "
                             f"{m.cell_size} px, fewer than model.num_objects = {m.num_objects} (K objects are "
                             "selected among the propagated and the discovered ones); use larger frames or a "
                             "smaller K")
        for split in ("train", "val", "test"):
            value = getattr(self.data, f"num_{split}_videos")
            if value < 1:
                raise ValueError(f"data.num_{split}_videos must be at least 1 (SILOT is trained on, validated on "
                                 f"and tested on videos); got {value}")
        if scene.num_frames < 2:
            raise ValueError(f"data.scene.num_frames must be at least 2 (tracking propagates objects from frame to "
                             f"frame); got {scene.num_frames}")
        if m.curriculum_start_frames > scene.num_frames:
            raise ValueError(f"model.curriculum_start_frames = {m.curriculum_start_frames} is more than the videos' "
                             f"data.scene.num_frames = {scene.num_frames}")
        if self.train.batch_size > self.data.num_train_videos:
            raise ValueError(f"train.batch_size = {self.train.batch_size} is more than data.num_train_videos = "
                             f"{self.data.num_train_videos} (every batch is a full batch)")


def curriculum_end_step(model: SILOTConfig, num_frames: int) -> int:
    """The first optimizer step of the curriculum's last stage (whole videos, or `curriculum_max_frames`): where
    the early-stopping regime begins (supplement E.1)."""
    stages = len(curriculum_lengths(num_frames, model.curriculum_start_frames, model.curriculum_step_frames,
                                    model.curriculum_max_frames))
    return (stages - 1) * model.curriculum_steps


def fit_silot(model: SILOTConfig, train: TrainConfig, train_videos: np.ndarray, val: dict,
              run_dir: str | Path | None = None):
    """Trains SILOT on `train_videos [N, T, H, W, 3]` with `fit_model`: validation MOTA on `val` (videos,
    track_ids, boxes) every `train.eval_every` steps, early stops (`EarlyStopRestoreDecay` with the config's
    patience, divisor and number of stops, from the curriculum's end; with `run_dir`, their record is kept in
    `run_dir/early_stops` so a resumed run continues it), the best validation MOTA's weights kept.

    Returns:
        `(FitResult, EarlyStopRestoreDecay)`: the callback holds the steps of the early stops.
    """
    from tfobj.models.silot.silot import SILOT
    from tfobj.training.callbacks import EarlyStopRestoreDecay
    from tfobj.training.evaluation import TRACKING
    from tfobj.training.fit import fit_model
    from tfobj.training.precision import dtype_policy

    from tfobj.training.strategies import is_chief, worker_index

    state_dir = None  # the early stops' record, kept across a resume (each worker its own, as fit_model's files)
    if run_dir is not None:
        own = Path(run_dir) if is_chief() else Path(run_dir) / "workers" / str(worker_index())
        state_dir = own / "early_stops"
    stops = EarlyStopRestoreDecay("val_mota", patience=model.patience,
                                  start_step=curriculum_end_step(model, train_videos.shape[1]),
                                  lr_divisor=model.stop_lr_divisor, max_stops=model.max_stops, mode="max",
                                  state_dir=state_dir)
    result = fit_model(lambda: SILOT(model, seed=train.seed, dtype=dtype_policy(train.precision)),
                       {"videos": train_videos}, val, train, run_dir=run_dir, evaluation=TRACKING, callbacks=[stops])
    return result, stops


def figure_outputs(model, videos: np.ndarray) -> dict:
    """`model(videos, training=False)` (the posterior mode) as numpy arrays, only the keys
    `tfobj.figures.plot_silot_objects` draws (boxes, ids, is_new, z_pres, reconstruction, appearance, alpha)."""
    from tfobj.figures import SILOT_FIGURE_KEYS

    outputs = model(videos, training=False)
    return {key: np.asarray(outputs[key]) for key in SILOT_FIGURE_KEYS}


def run_silot(config: SILOTExperiment, run_dir: str | Path | None = None) -> dict:
    """Trains SILOT, keeps the weights of the best validation MOTA, tracks the test videos with them.

    With `run_dir`, the run keeps its files there (`fit_model`: TensorBoard, backup for resuming, history,
    best weights, SavedModel).

    Returns:
        dict with "metrics" (on the test videos, posterior mode: mota, motp, num_switches, count_abs_error and
        the other CLEAR MOT counts, as the ConnComp tracking row), "history" (per evaluation period), "best_step",
        "early_stops" (their steps), "setting", and "examples" (test videos with true and predicted tracks, and
        "outputs": the model's `figure_outputs` on those videos, for `tfobj.figures.plot_silot_objects`).
    """
    train, val, test = (config.data.load(split) for split in ("train", "val", "test"))
    result, stops = fit_silot(config.model, config.train, train["videos"], val, run_dir=run_dir)
    tracks = result.model.predict_objects(test["videos"])
    last_step = result.history[-1]["step"] if result.history else 0
    examples = track_examples(test, tracks)
    examples["outputs"] = figure_outputs(result.model, examples["videos"])
    return {
        "metrics": tracking_scores(tracks, test),
        "history": result.history,
        "best_step": result.best_step,
        "early_stops": list(stops.stops),
        "setting": f"{last_step} steps, best val MOTA at step {result.best_step}",
        "examples": examples,
    }
