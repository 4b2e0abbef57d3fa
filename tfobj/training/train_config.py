"""TrainConfig: the `train` part of every experiment (run length, optimiser, batch, seed, runtime).

Each model keeps its paper's values as a `TrainConfig` beside its model config (e.g.
`tfobj.models.spair.spair_config.SPAIR_TRAINING`), which its experiment uses as the default; the
dataclass defaults below are only Keras-like fallbacks for a model without one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tfobj.config import check_choices

__all__ = ["STRATEGIES", "TrainConfig"]

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclass(frozen=True)
class TrainConfig:
    """How `tfobj.training.fit_model` trains a model.

    Run length: `steps` optimizer steps, with an evaluation on the validation set every `eval_every`
    steps (Keras "epochs" of `eval_every` steps); `steps` must be a multiple of `eval_every`.
    Batch: `batch_size` is the global batch; under a strategy it is split evenly across the replicas, so
    a run on 4 GPUs or 2 machines trains at the paper's batch size.
    Optimiser: `optimizer` ("adam", "adamax", "sgd") at `learning_rate`, with clipping of the global gradient
    norm at `global_clipnorm` (None: no clipping) and, for Adam with `gradient_noise > 0`, the original SPAIR
    code's gradient noise (`tfobj.training.optimizers.AdamWithGradientNoise`).
    Runtime: `precision` ("auto": mixed float16 on a GPU, float32 on CPU; "float32"; "mixed"), `xla`
    ("auto": Keras decides, XLA on a GPU; "on"; "off"), `strategy` ("default": one device; "mirrored":
    `tf.distribute.MirroredStrategy` over the machine's devices; "multi_worker":
    `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`, see docs/scaling.md).
    """

    steps: int = 1000
    eval_every: int = 100
    batch_size: int = 32
    optimizer: Literal["adam", "adamax", "sgd"] = "adam"
    learning_rate: float = 1e-3
    global_clipnorm: float | None = None
    gradient_noise: float = 0.0  # 0 = off
    gradient_noise_decay_rate: float = 0.1
    gradient_noise_decay_steps: int = 1000
    seed: int = 0  # weight initialisation, the model's noise, the order of the training data
    precision: Literal["auto", "float32", "mixed"] = "auto"
    xla: Literal["auto", "on", "off"] = "auto"
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"

    def __post_init__(self):
        for name in ("steps", "eval_every", "batch_size", "gradient_noise_decay_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"train.{name} must be a positive integer; got {value!r}")
        if self.steps % self.eval_every:
            raise ValueError(f"train.steps must be a multiple of train.eval_every (an evaluation ends every "
                             f"period); got steps={self.steps}, eval_every={self.eval_every}")
        if not self.learning_rate > 0:
            raise ValueError(f"train.learning_rate must be > 0; got {self.learning_rate}")
        if self.global_clipnorm is not None and not self.global_clipnorm > 0:
            raise ValueError(f"train.global_clipnorm must be > 0 or None (no clipping); got {self.global_clipnorm}")
        if self.gradient_noise < 0 or not 0 <= self.gradient_noise_decay_rate <= 1:
            raise ValueError("train.gradient_noise must be >= 0 (0 = off) and train.gradient_noise_decay_rate in "
                             f"[0, 1]; got {self.gradient_noise}, {self.gradient_noise_decay_rate}")
        check_choices(self, prefix="train.")
        if self.gradient_noise > 0 and self.optimizer != "adam":
            raise ValueError(f"train.gradient_noise needs train.optimizer = 'adam' (the original SPAIR code's); got "
                             f"{self.optimizer!r}")

    @property
    def epochs(self) -> int:
        """Evaluation periods in the run (Keras epochs of `eval_every` steps)."""
        return self.steps // self.eval_every
