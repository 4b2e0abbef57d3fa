"""Procedural MNIST-Hard: nine real MNIST digits at varying scales on an 80 x 80 black canvas (TUSK, MIST).

TUSK (Jin et al., NeurIPS 2022) evaluates multiple-instance detection and classification on
MNIST-Hard, a fixed pre-generated data set from the MIST paper (Angles et al., CVPR 2021),
distributed as `mnist_hard.zip` (ubc-vision/mist README; TUSK README). Its generator is not
public. This module draws scenes of the same kind with numpy from real MNIST digits
(`tfobj.data.digits`); it is a re-creation, not the data set. The facts marked "assumed" below
could not be established from either repository, and a model trained on one may not transfer
exactly to the other.

Established (source in brackets; ubc-vision/TUSK@04ba610, ubc-vision/mist@ef8ab35):
  - 9 digits per image, images of 80 x 80 [mist `json/mnist.json`: "k": 9, "image_size": 80;
    TUSK `configs/mnist.yaml`: `top_k: 9`, `preprocess.image_size: 80`]. Both loaders resize
    every stored image to 80 x 80 with `skimage.transform.resize`, so 80 x 80 is what the models see.
    (MIST's loader computes its keypoint scale factor after that resize, i.e. always 1, TUSK's before
    it; the two agree only if the stored images are 80 x 80 already, which is therefore likely.)
  - Three channels: both loaders `permute(2, 0, 1)` the image read by `skimage.io.imread` (a 2-D
    grey image would fail there), TUSK's `inference_celeba_h36m_mnist.py` raises unless images
    are `(B, 3, H, W)`, and TUSK's appendix Table 9 has the encoder input in [0, 1]^{H x W x 3}.
    Here the three channels are equal (grey digits), as in tfobj's Scattered MNIST.
  - White digits on black: the images in TUSK's README figure (`images/mnist_results.png`) and
    MIST's pipeline figure (`images/mist_pipeline.png`).
  - Ground truth per image: digit labels 0..9 (`{mode}_labels.txt`; TUSK adds 1 before use) and
    keypoints `(x, y, radius)` (`{mode}_keypoints.npy`). Both loaders turn the keypoint into the
    box `(x, y, w, h) = (x, y, 2 * radius, 2 * radius)` (`keypoints[:, 2] *= 2`, then the side
    repeated), i.e. an axis-aligned square centred at (x, y) whose half side is `radius`;
    TUSK's `evaluate_mnist.py` and MIST's `utils/torch_utils.py eval_accuracy` intersect it with
    a fixed 20 x 20 box (MIST `anchor_size` 0.25 x 80) around each predicted keypoint.
  - Digit scales vary and digits may overlap: both README figures show digits of clearly different
    sizes, some touching or overlapping.

Assumed (tfobj choices, configurable):
  - Scale: each 28 x 28 MNIST frame is resized (area resampling, `digit_alphas`) to a square
    patch of side s, an integer drawn uniformly from [`min_digit_size`, `max_digit_size`] =
    [16, 24] pixels (scale s / 28 in [0.57, 0.86]). Evidence, not a source: in the two README
    figures (measured at 80 x 80) the digits' inked heights are about 9-17 pixels (MIST figure)
    and 13-16 pixels (TUSK figure); an MNIST digit's ink is about 20/28 of its frame, so frames of
    about 13-24 pixels. And TUSK's MNIST-Hard localisation accuracy is listed as 99.9% (a
    Papers-with-Code-derived leaderboard; not checked against the paper) with 20 x 20 boxes at
    IoU > 0.5: a perfectly centred 20 x 20 box has IoU > 0.5 with a square GT box of side b only
    for 20 / sqrt(2) < b < 20 sqrt(2), i.e. 14.1 < b < 28.3, so the GT box sides of the original
    must lie (almost) all in that interval. [16, 24] satisfies both.
  - Keypoint and radius: (x, y) is the centre of the digit's s x s patch and `radius = s / 2`,
    so the MIST-style box (centre +- radius) is the patch. MNIST centres each digit's centre of
    mass in its 28 x 28 frame, so the patch centre is (up to resampling) the digit's centre of
    mass. (A radius from the inked extent, about 0.36 s, would give GT boxes of 11-17 pixels at
    these scales, too small for the ~99.9% above.)
  - Placement: each patch lies fully inside the image at a uniform integer top-left corner; a
    candidate is rejected if the summed intersection area of its patch with the earlier patches
    (cumulative overlap, pixels) exceeds `max_overlap` = 100 (a quarter of a 20 x 20 patch), with
    the tries/restarts of `tfobj.data.scattered.place_patches` (the same rule as Scattered MNIST).
  - Compositing: digits are drawn in order as white with alpha = intensity,
    `out = alpha + (1 - alpha) * out` (equal to `1 - prod(1 - alpha)`, order-independent).
  - Digits are drawn uniformly with replacement from the split's pool; scenes of the train, val
    and test splits use the disjoint per-class parts of `split_digits` (80/10/10). The original
    split of MIST's digits is unknown.

Coordinates: tfobj's convention (docs/conventions.md): pixel (row, col) covers
[row, row + 1) x [col, col + 1), so the centre of pixel (0, 0) is (0.5, 0.5). A patch with
top-left pixel (r0, c0) and side s covers [r0, r0 + s) x [c0, c0 + s); its centre is
(r0 + s / 2, c0 + s / 2). `centres` hold (row, col) = (y, x); `keypoints` hold the original's
order (x, y, radius) in the same units. (The original's reference point for x, y -- pixel
centres or corners -- is not documented; it shifts keypoints by at most half a pixel.)

Ground truth returned (K = `num_digits` = 9; every image has exactly K digits, `num_objects` = K
is kept for tfobj's padded-array conventions): `boxes` are tfobj's boxes, the extent of each
digit's inked pixels (alpha > 0) as placed, normalised (y_min, x_min, y_max, x_max), amodal
(ignoring occlusion by later digits), the rule of every tfobj data set; `centres`, `radii` and
`keypoints` are the MIST-style keypoints above, for `tfobj.metrics.keypoint_detection`.

Random draws: per image, the K pool indices, then the K patch sides, then the placement candidates,
all from the `rng` argument; `tfobj.data.cache._cached` seeds it with (seed, split, kind).

References:
    - Y. Jin, W. Sun, J. Hosang, E. Trulls, K. M. Yi. TUSK: Task-agnostic unsupervised keypoints.
      NeurIPS 2022; github.com/ubc-vision/TUSK `datasets/mnist.py`,
      `evaluate_mnist.py`, `configs/mnist.yaml`.
    - B. Angles, Y. Jin, S. Kornblith, A. Tagliasacchi, K. M. Yi. MIST: Multiple instance spatial
      transformer. CVPR 2021; github.com/ubc-vision/mist `datasets/mnist.py`, `json/mnist.json`.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from tfobj.data.cache import AUTO, _cached, _check_args, _config_or_default, _split_pool
from tfobj.data.digits import Digits, _area_weights
from tfobj.data.scattered import (
    _Progress, _boxes, _check_image_size, _check_int, _check_real, _inked_extents, _normalise, check_count,
    place_patches)


@dataclasses.dataclass(frozen=True)
class MNISTHardConfig:
    """MNIST-Hard scenes: `num_digits` real MNIST digits of sides `min_digit_size`..`max_digit_size`.

    See the module docstring for what is established and what is assumed.
    """

    image_size: tuple[int, int] = (80, 80)  # mist json/mnist.json image_size 80; TUSK configs/mnist.yaml
    num_digits: int = 9  # mist json/mnist.json k: 9; TUSK configs/mnist.yaml top_k: 9
    min_digit_size: int = 16  # assumed: README figures + TUSK's ~99.9% at 20 px boxes (module doc)
    max_digit_size: int = 24  # assumed: as min_digit_size
    max_overlap: float = 100.0  # assumed: cumulative patch overlap in pixels, a quarter of a 20 x 20 patch
    max_placement_tries: int = 1000  # scattered.py / SPAIR original code: max_attempts / 10
    max_restarts: int = 10000  # scattered.py / SPAIR original code: max_attempts

    def __post_init__(self):
        cls = type(self).__name__
        object.__setattr__(self, "image_size", _check_image_size(self.image_size, f"{cls}.image_size"))
        _check_int(self.num_digits, f"{cls}.num_digits", minimum=1)
        _check_int(self.min_digit_size, f"{cls}.min_digit_size", minimum=1)
        _check_int(self.max_digit_size, f"{cls}.max_digit_size", minimum=1)
        _check_real(self.max_overlap, f"{cls}.max_overlap", minimum=0.0)
        _check_int(self.max_placement_tries, f"{cls}.max_placement_tries", minimum=1)
        _check_int(self.max_restarts, f"{cls}.max_restarts", minimum=0)
        _normalise(self, ints=("num_digits", "min_digit_size", "max_digit_size", "max_placement_tries",
                               "max_restarts"), reals=("max_overlap",))
        if self.min_digit_size > self.max_digit_size:
            raise ValueError(f"{cls}.min_digit_size={self.min_digit_size} must be <= "
                             f"max_digit_size={self.max_digit_size}")
        if self.max_digit_size > min(self.image_size):
            raise ValueError(f"{cls}.max_digit_size={self.max_digit_size} does not fit in image_size="
                             f"{self.image_size}; each side must be >= {self.max_digit_size}")
        height, width = self.image_size
        covered = self.num_digits * self.min_digit_size**2 - (self.num_digits - 1) * self.max_overlap
        if covered > height * width:
            raise ValueError(
                f"{cls}: num_digits={self.num_digits} patches of at least {self.min_digit_size} x "
                f"{self.min_digit_size} with cumulative overlap <= max_overlap={self.max_overlap} cover at least "
                f"{covered} pixels, more than image_size={self.image_size} holds; use a larger image, fewer or "
                f"smaller digits, or a larger max_overlap")


def generate_mnist_hard(config: MNISTHardConfig, digits: Digits, num_images: int,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """MNIST-Hard images (see the module docstring).

    Args:
        config: Scene parameters.
        digits: The digit pool to draw from (already split; digits drawn uniformly with
            replacement). Every digit needs a pixel > 0.
        num_images: N >= 0.
        rng: Random generator (all randomness comes from it).

    Returns:
        Dict of numpy arrays, K = `config.num_digits`:
          images float32 `[N, H, W, 3]` in [0, 1], three equal channels, white digits on black;
          classes int32 `[N, K]` digit labels 0..9 (TUSK's labels are these + 1);
          num_objects int32 `[N]`, all K;
          boxes float32 `[N, K, 4]` inked extent of each digit, normalised (y_min, x_min, y_max, x_max);
          centres float32 `[N, K, 2]` (row, col) patch centres in pixels, pixel centres at +0.5;
          radii float32 `[N, K]` half the patch side, pixels;
          keypoints float32 `[N, K, 3]` (x, y, radius) = (col, row, radius), the original's layout;
          positions int32 `[N, K, 2]` patch top-left (row, col); sizes int32 `[N, K, 2]` patch
          (height, width), both the drawn side s; digit_indices int32 `[N, K]` index into `digits`.

    Raises:
        TypeError: `config` is not an `MNISTHardConfig` or `digits` not a `Digits`.
        ValueError: `num_images` is not an integer >= 0, the pool is empty or holds a blank digit,
            or a scene cannot be placed within the configured tries.
    """
    if type(config) is not MNISTHardConfig:
        raise TypeError(f"config must be a MNISTHardConfig; got {type(config).__name__}")
    if not isinstance(digits, Digits):
        raise TypeError(f"digits must be a tfobj.data.Digits; got {type(digits).__name__}")
    num_images = check_count(num_images, "num_images")
    _check_pool(digits)
    height, width = config.image_size
    k = config.num_digits
    canvas = np.zeros((num_images, height, width), np.float32)
    classes = np.zeros((num_images, k), np.int32)
    indices = np.zeros((num_images, k), np.int32)
    sides = np.zeros((num_images, k), np.int64)
    corners = np.zeros((num_images, k, 2), np.int64)
    extents = np.zeros((num_images, k, 4), np.int64)
    progress = _Progress(num_images, "MNIST-Hard images")
    for i in range(num_images):
        chosen = rng.integers(0, len(digits), size=k)
        sides[i] = rng.integers(config.min_digit_size, config.max_digit_size + 1, size=k)
        try:
            corners[i] = place_patches(rng, np.stack([sides[i], sides[i]], axis=1), config.image_size,
                                       config.max_overlap, config.max_placement_tries, config.max_restarts)
        except ValueError as error:
            raise ValueError(f"MNISTHardConfig: {error}") from None
        for j, (index, side, (top, left)) in enumerate(zip(chosen, sides[i], corners[i])):
            alpha = _resize(digits.images[index], int(side))
            region = canvas[i, top:top + side, left:left + side]
            region += alpha * (1.0 - region)  # white over: out = alpha + (1 - alpha) * out
            extents[i, j] = _inked_extents(alpha[None])[0]
        classes[i] = digits.labels[chosen]
        indices[i] = chosen
        progress.update(i + 1)
    np.clip(canvas, 0.0, 1.0, out=canvas)
    valid = np.ones((num_images, k), bool)
    centres = corners + sides[..., None] / 2.0  # [N, K, 2] (row, col)
    radii = sides / 2.0  # [N, K]
    progress.finish()
    return {
        "images": np.repeat(canvas[..., None], 3, axis=-1),  # [N, H, W, 3]
        "classes": classes,
        "num_objects": np.full(num_images, k, np.int32),
        "boxes": _boxes(corners, extents, valid, config.image_size),
        "centres": centres.astype(np.float32),
        "radii": radii.astype(np.float32),
        "keypoints": np.stack([centres[..., 1], centres[..., 0], radii], axis=-1).astype(np.float32),
        "positions": corners.astype(np.int32),
        "sizes": np.stack([sides, sides], axis=-1).astype(np.int32),
        "digit_indices": indices,
    }


def mnist_hard(config: MNISTHardConfig | None, split: str, num_images: int, seed: int = 0,
               cache_dir: str | os.PathLike | None = AUTO, digits: Digits | None = None) -> dict[str, np.ndarray]:
    """MNIST-Hard images, cached (keys: `generate_mnist_hard`).

    Args:
        config: Scene parameters; None for the defaults (`MNISTHardConfig()`).
        split: "train", "val" or "test": selects the disjoint per-class part of the digit pool
            (`split_digits`, 80/10/10) and the random stream.
        num_images: N >= 0.
        seed: Non-negative integer; with `split`, seeds `np.random.default_rng`.
        cache_dir: Cache directory, "auto" (`$TFOBJ_CACHE` or `~/.cache/tfobj`) or None (no cache).
        digits: The full digit pool to split; default `load_mnist()`.

    Returns:
        The dict of `generate_mnist_hard`; `digit_indices` index into `split_digits(digits, split)`.
    """
    config = _config_or_default(config, MNISTHardConfig)
    _check_args(split, num_images, "num_images", seed)
    pool = _split_pool(digits, split)
    return _cached("mnist_hard", config, split, num_images, seed, cache_dir, pool,
                   lambda rng: generate_mnist_hard(config, pool, num_images, rng))


def _check_pool(digits: Digits) -> None:
    if len(digits) == 0:
        raise ValueError(f"digit pool {digits.source!r} is empty; expected at least one digit")
    blank = np.flatnonzero(np.asarray(digits.images).reshape(len(digits), -1).max(axis=1) <= 0)
    if blank.size:
        raise ValueError(f"digits.images[{blank[0]}] (source {digits.source!r}) has no ink; every digit needs "
                         f"a pixel > 0")


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    """float32 `[side, side]` alpha in [0, 1]: the area resampling of `digit_alphas`, for one digit."""
    rows, cols = _weights(image.shape[0], image.shape[1], side)
    alpha = rows @ (np.asarray(image, dtype=np.float64) / 255.0) @ cols.T
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _weights(height: int, width: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    return _area_weights(height, side), _area_weights(width, side)


__all__ = ["MNISTHardConfig", "generate_mnist_hard", "mnist_hard"]
