"""tfobj.data: procedural, seeded, deterministic datasets (Scattered MNIST / Shapes images and videos).

Entry points (cached on disk, see `tfobj.data.cache`): `scattered_mnist`, `scattered_shapes`,
`scattered_mnist_videos`, `scattered_shapes_videos`; `as_dataset` turns their dict of arrays into a
`tf.data.Dataset`. Digits come from `load_mnist` (real MNIST only; see `tfobj.data.digits`).
"""
from tfobj.data.cache import (
    as_dataset, default_cache_dir, scattered_mnist, scattered_mnist_videos, scattered_shapes,
    scattered_shapes_videos)
from tfobj.data.crops import random_crops
from tfobj.data.digits import SPLITS, Digits, digit_alphas, load_mnist, split_digits
from tfobj.data.scattered import (
    ScatteredMNISTConfig, ScatteredMNISTVideoConfig, ScatteredShapesConfig, ScatteredShapesVideoConfig,
    generate_mnist_images, generate_mnist_videos, generate_shapes_images, generate_shapes_videos, scene_rng)
from tfobj.data.shapes import COLOUR_NAMES, PALETTE, SHAPE_NAMES, shape_class, shape_mask

__all__ = [
    "COLOUR_NAMES", "Digits", "PALETTE", "SHAPE_NAMES", "SPLITS", "ScatteredMNISTConfig", "ScatteredMNISTVideoConfig",
    "ScatteredShapesConfig", "ScatteredShapesVideoConfig", "as_dataset", "default_cache_dir", "digit_alphas",
    "generate_mnist_images", "generate_mnist_videos", "generate_shapes_images", "generate_shapes_videos",
    "load_mnist", "random_crops", "scattered_mnist", "scattered_mnist_videos", "scattered_shapes",
    "scattered_shapes_videos", "scene_rng", "shape_class", "shape_mask", "split_digits",
]
