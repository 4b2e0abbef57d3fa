"""tfobj.data: procedural, seeded, deterministic datasets, and readers for DeepMind's multi_object_datasets.

Entry points (cached on disk, see `tfobj.data.cache`): `scattered_mnist`, `scattered_shapes`,
`scattered_mnist_videos`, `scattered_shapes_videos` (SPAIR, SILOT); `multi_mnist`, `multi_dsprites` (LAVAE);
`mnist_hard`, `tetrominoes` (TUSK); `read_tetrominoes`, `read_clevr_with_masks` read the real TFRecord files. `as_dataset` turns
a dict of arrays into a `tf.data.Dataset`. Digits come from `load_mnist` (real MNIST only; see
`tfobj.data.digits`).
"""
from tfobj.data.cache import (
    as_dataset, default_cache_dir, scattered_mnist, scattered_mnist_videos, scattered_shapes,
    scattered_shapes_videos)
from tfobj.data.crops import random_crops
from tfobj.data.digits import SPLITS, Digits, digit_alphas, load_mnist, split_digits
from tfobj.data.scattered import (
    ScatteredMNISTConfig, ScatteredMNISTVideoConfig, ScatteredShapesConfig, ScatteredShapesVideoConfig,
    generate_mnist_images, generate_mnist_videos, generate_shapes_images, generate_shapes_videos, scene_rng)
from tfobj.data.mnist_hard import MNISTHardConfig, generate_mnist_hard, mnist_hard
from tfobj.data.multi_object import (
    MultiDSpritesConfig, MultiMNISTConfig, generate_multi_dsprites, generate_multi_mnist, multi_dsprites, multi_mnist)
from tfobj.data.multi_object_records import read_clevr_with_masks, read_tetrominoes
from tfobj.data.shapes import COLOUR_NAMES, PALETTE, SHAPE_NAMES, shape_class, shape_mask
from tfobj.data.tetrominoes import TetrominoesConfig, generate_tetrominoes, tetrominoes

__all__ = [
    "COLOUR_NAMES", "Digits", "MNISTHardConfig", "MultiDSpritesConfig", "MultiMNISTConfig", "PALETTE", "SHAPE_NAMES", "SPLITS",
    "ScatteredMNISTConfig", "ScatteredMNISTVideoConfig", "ScatteredShapesConfig", "ScatteredShapesVideoConfig",
    "TetrominoesConfig", "as_dataset", "default_cache_dir", "digit_alphas", "generate_mnist_images",
    "generate_mnist_hard", "generate_mnist_videos", "generate_multi_dsprites", "generate_multi_mnist", "generate_shapes_images",
    "generate_shapes_videos", "generate_tetrominoes", "load_mnist", "mnist_hard", "multi_dsprites", "multi_mnist", "random_crops",
    "read_clevr_with_masks", "read_tetrominoes", "scattered_mnist", "scattered_mnist_videos", "scattered_shapes",
    "scattered_shapes_videos", "scene_rng", "shape_class", "shape_mask", "split_digits", "tetrominoes",
]
