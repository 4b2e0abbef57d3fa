"""The data part of an experiment config: which scenes, how many per split, which seed.

An experiment is `model` + `data` + `train` (tfobj.experiments). Its data part holds the scene config
exactly as the generators take it (passed through, never rebuilt field by field) and the split sizes,
so `--set data.num_train_images=200` or `--set data.scene.max_digits=9` reach the data directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfobj.data.cache import scattered_mnist, scattered_mnist_videos, scattered_shapes, scattered_shapes_videos
from tfobj.data.scattered import (
    ScatteredMNISTConfig, ScatteredMNISTVideoConfig, ScatteredShapesConfig, ScatteredShapesVideoConfig)

__all__ = ["ImageData", "VideoData"]

_SPLITS = ("train", "val", "test")


def _check_sizes(config, unit: str) -> None:
    for split in _SPLITS:
        value = getattr(config, f"num_{split}_{unit}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{type(config).__name__}.num_{split}_{unit} must be an integer >= 0; got {value!r}")


@dataclass(frozen=True)
class ImageData:
    """Scattered MNIST or Scattered Shapes images for an experiment's train / val / test splits.

    `scene`'s type picks the generator (`tfobj.data.scattered_mnist` or `scattered_shapes`); the three
    splits are disjoint (digits: disjoint per-class parts of the pool; every split: its own random stream).
    """

    scene: ScatteredMNISTConfig | ScatteredShapesConfig = field(default_factory=ScatteredMNISTConfig)
    num_train_images: int = 64000  # SPAIR original code: n_train
    num_val_images: int = 1000
    num_test_images: int = 1000
    seed: int = 0

    def __post_init__(self):
        _check_sizes(self, "images")

    def load(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays (cached on disk): images `[N, H, W, 3]`, boxes, num_objects, ..."""
        generate = scattered_shapes if isinstance(self.scene, ScatteredShapesConfig) else scattered_mnist
        return generate(self.scene, split, getattr(self, f"num_{split}_images"), seed=self.seed)


@dataclass(frozen=True)
class VideoData:
    """Scattered MNIST or Scattered Shapes videos for an experiment's train / val / test splits."""

    scene: ScatteredMNISTVideoConfig | ScatteredShapesVideoConfig = field(default_factory=ScatteredMNISTVideoConfig)
    num_train_videos: int = 1000
    num_val_videos: int = 0
    num_test_videos: int = 1000  # SILOT supp. D.1: 1000 videos per test condition
    seed: int = 0

    def __post_init__(self):
        _check_sizes(self, "videos")

    @property
    def palette(self) -> tuple[tuple[float, float, float], ...] | None:
        """The scene's object colours (Scattered Shapes), or None (Scattered MNIST: white digits)."""
        from tfobj.data.shapes import PALETTE

        if not isinstance(self.scene, ScatteredShapesVideoConfig):
            return None
        return tuple(tuple(float(v) for v in colour) for colour in PALETTE)

    def load(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays (cached on disk): videos `[N, T, H, W, 3]`, boxes, track_ids, ..."""
        generate = scattered_shapes_videos if isinstance(self.scene, ScatteredShapesVideoConfig) else \
            scattered_mnist_videos
        return generate(self.scene, split, getattr(self, f"num_{split}_videos"), seed=self.seed)
