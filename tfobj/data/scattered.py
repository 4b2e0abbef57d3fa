"""Scattered MNIST and Scattered Shapes images and videos (SPAIR supplement; SILOT supplement D.1, D.2).

A scene is a black canvas with objects composited in order, later objects over earlier ones:
`out = alpha * colour + (1 - alpha) * out`, with MNIST digits white (all three channels equal) and
shapes in one of six saturated colours (`tfobj.data.shapes`).

Placement (as in the original code): each object's patch (14 x 14 for digits; its sampled size for
shapes) gets a uniformly random integer top-left corner with the patch fully inside the image. A
candidate is rejected if the sum of the areas of its rectangle's intersections with the already
placed rectangles (the CUMULATIVE overlap, in pixels) exceeds `max_overlap`. After
`max_placement_tries` rejections for one object, all positions of the scene are re-sampled (the
objects are kept); after `max_restarts` such restarts generation fails with a ValueError.

Videos (SILOT): the first frame is placed as above; each object then moves at constant speed in a
direction drawn uniformly on the circle (a normalised 2-D standard normal), with float positions.
Objects pass through each other and bounce off the image borders: per axis the coordinate is
reflected at the walls, piecewise within a step, so the patch always stays inside the image and the
unfolded path of every step has length `speed`. A patch is drawn at the floor of its float
position (the original code truncates with `int()`, the same for non-negative positions).

Ground truth: the box of an object is the extent of its inked pixels (alpha > 0) as drawn in that
image or frame, clipped to the image, in tfobj's normalised convention
(`tfobj.ops.boxes.boxes_from_pixel_extent`) -- not its whole patch, and ignoring occlusion by
later objects (amodal boxes). The original code also annotates the inked extent.

Every generator returns a dict of numpy arrays, padded to K = the config's maximum object count;
entries at or beyond `num_objects` are zero. Random draws come only from the `rng` argument, so the
same generator state gives identical arrays; `scene_rng(seed, split, kind)` is
`np.random.default_rng([seed, split index, crc32(kind)])`. Per scene the draws are: the object
count ~ Uniform{min..max}; the objects (digits uniformly with replacement from the pool; or shape,
colour, then height and width); the placement candidates; for videos, the directions.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
import zlib

import numpy as np

from tfobj.data.digits import Digits, check_split, digit_alphas
from tfobj.data.shapes import COLOUR_NAMES, PALETTE, SHAPE_NAMES, shape_class, shape_mask
from tfobj.ops.boxes import boxes_from_pixel_extent

logger = logging.getLogger(__name__)

_CANDIDATE_BATCH = 16  # placement candidates drawn and tested per vectorised batch
_PROGRESS_INTERVAL = 10.0  # seconds between progress log lines
_WHITE = np.ones(3, dtype=np.float32)


# --------------------------------------------------------------------------- configs


@dataclasses.dataclass(frozen=True)
class ScatteredMNISTConfig:
    """Scattered MNIST images: 1-5 MNIST digits (14 x 14) on a 48 x 48 black canvas."""

    image_size: tuple[int, int] = (48, 48)  # SPAIR supp. / original code; SPAIR's transfer test uses (84, 84)
    digit_size: int = 14  # SPAIR supp.: 28 x 28 MNIST digits rescaled to 14 x 14
    min_digits: int = 1  # SPAIR supp.
    max_digits: int = 5  # SPAIR supp.
    max_overlap: float = 98.0  # original code: max_overlap=98 (= 14**2 / 2) pixels, cumulative
    max_placement_tries: int = 1000  # original code: max_attempts / 10
    max_restarts: int = 10000  # original code: max_attempts

    def __post_init__(self):
        _validate_scene(self, "digit_size", self.digit_size, "min_digits", "max_digits")
        _normalise(self, ints=("digit_size", "min_digits", "max_digits"))

    @property
    def max_objects(self) -> int:
        return self.max_digits


@dataclasses.dataclass(frozen=True)
class ScatteredShapesConfig:
    """Scattered Shapes images: 1-5 coloured shapes of size ~N(14, 1.4) on a 48 x 48 black canvas.

    Each of a shape's two dimensions is drawn independently from N(shape_size, shape_size_std),
    rounded to the nearest integer and clipped to [min_shape_size, image side].
    """

    image_size: tuple[int, int] = (48, 48)  # SILOT code's "shapes" env (its big runs: 96 x 96, 10-20 shapes)
    shape_size: float = 14.0  # SILOT supp. D.2 / code: patch_shape (14, 14)
    shape_size_std: float = 1.4  # SILOT code: patch_size_std=0.1 relative, i.e. 0.1 * 14 pixels
    min_shape_size: int = 7  # original code floors the size multiplier at 0.5, i.e. 7 pixels
    min_shapes: int = 1  # SILOT code: min_shapes=1
    max_shapes: int = 5  # tfobj choice (SILOT code: 8)
    max_overlap: float = 98.0  # SILOT code: max_overlap=14**2/2
    max_placement_tries: int = 1000  # original code: max_attempts / 10
    max_restarts: int = 10000  # original code: max_attempts

    def __post_init__(self):
        for name in ("shape_size", "shape_size_std"):
            _check_real(getattr(self, name), f"{type(self).__name__}.{name}", minimum=0.0)
        _validate_scene(self, "min_shape_size", self.min_shape_size, "min_shapes", "max_shapes")
        _normalise(self, ints=("min_shape_size", "min_shapes", "max_shapes"), reals=("shape_size", "shape_size_std"))

    @property
    def max_objects(self) -> int:
        return self.max_shapes


@dataclasses.dataclass(frozen=True)
class ScatteredMNISTVideoConfig(ScatteredMNISTConfig):
    """Scattered MNIST videos: 1-6 digits moving at 2 px/frame for 8 frames (SILOT supp. D.1)."""

    max_digits: int = 6  # SILOT supp. D.1: trained on 1-6 digits (also 1-12)
    num_frames: int = 8  # SILOT supp. D.1
    speed: float = 2.0  # SILOT code: patch_speed=2 pixels per frame

    def __post_init__(self):
        super().__post_init__()
        _validate_motion(self)


@dataclasses.dataclass(frozen=True)
class ScatteredShapesVideoConfig(ScatteredShapesConfig):
    """Scattered Shapes videos: 1-5 shapes moving at 5 px/frame for 8 frames (SILOT supp. D.2)."""

    num_frames: int = 8  # SILOT supp. D.2
    speed: float = 5.0  # SILOT code: patch_speed=5 pixels per frame

    def __post_init__(self):
        super().__post_init__()
        _validate_motion(self)


def _validate_scene(config, size_name: str, min_size, min_name: str, max_name: str) -> None:
    cls = type(config).__name__
    object.__setattr__(config, "image_size", _check_image_size(config.image_size, f"{cls}.image_size"))
    _check_int(min_size, f"{cls}.{size_name}", minimum=1)
    if min_size > min(config.image_size):
        raise ValueError(f"{cls}.image_size={config.image_size} is smaller than {size_name}={min_size}; "
                         f"each side must be >= {min_size}")
    min_count, max_count = getattr(config, min_name), getattr(config, max_name)
    _check_int(min_count, f"{cls}.{min_name}", minimum=0)
    _check_int(max_count, f"{cls}.{max_name}", minimum=0)
    if min_count > max_count:
        raise ValueError(f"{cls}.{min_name}={min_count} must be <= {max_name}={max_count}")
    _check_real(config.max_overlap, f"{cls}.max_overlap", minimum=0.0)
    _check_int(config.max_placement_tries, f"{cls}.max_placement_tries", minimum=1)
    _check_int(config.max_restarts, f"{cls}.max_restarts", minimum=0)
    _normalise(config, ints=("max_placement_tries", "max_restarts"), reals=("max_overlap",))
    height, width = config.image_size
    covered = max_count * min_size**2 - max(max_count - 1, 0) * config.max_overlap
    if covered > height * width:
        raise ValueError(
            f"{cls}: {max_name}={max_count} patches of at least {min_size} x {min_size} with cumulative overlap "
            f"<= max_overlap={config.max_overlap} cover at least {covered} pixels, more than image_size="
            f"{config.image_size} holds; use a larger image, fewer objects or a larger max_overlap")


def _validate_motion(config) -> None:
    cls = type(config).__name__
    _check_int(config.num_frames, f"{cls}.num_frames", minimum=1)
    _check_real(config.speed, f"{cls}.speed", minimum=0.0)
    _normalise(config, ints=("num_frames",), reals=("speed",))


def _normalise(config, ints=(), reals=()) -> None:
    """Stores numeric fields as plain int / float, so equal configs have equal reprs and cache keys."""
    for name in ints:
        object.__setattr__(config, name, int(getattr(config, name)))
    for name in reals:
        object.__setattr__(config, name, float(getattr(config, name)))


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_real(value, name: str, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a finite number >= {minimum}")


def _check_image_size(value, name: str) -> tuple[int, int]:
    try:
        height, width = value
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a pair (height, width) of positive integers") from None
    _check_int(height, f"{name}[0]", minimum=1)
    _check_int(width, f"{name}[1]", minimum=1)
    return int(height), int(width)


def check_count(value, name: str) -> int:
    """`value` as an int if it is an integer >= 0 (an empty dataset is allowed), else ValueError."""
    _check_int(value, name, minimum=0)
    return int(value)


def check_seed(seed) -> int:
    """`seed` as an int if it is an integer >= 0, else ValueError."""
    _check_int(seed, "seed", minimum=0)
    return int(seed)


def scene_rng(seed: int, split: str, kind: str) -> np.random.Generator:
    """The generator for one dataset: seeded by (seed, split, kind), so splits and kinds differ.

    Args:
        seed: Non-negative integer.
        split: One of `tfobj.data.digits.SPLITS`.
        kind: Dataset kind, e.g. "scattered_mnist"; hashed with crc32.
    """
    check_seed(seed)
    return np.random.default_rng([int(seed), check_split(split), zlib.crc32(kind.encode())])


# --------------------------------------------------------------------------- object sampling


@dataclasses.dataclass(frozen=True)
class _DigitPool:
    """Resized digits ready to draw: alphas `[P, s, s]`, labels `[P]`, inked extents `[P, 4]`."""

    alphas: np.ndarray
    labels: np.ndarray
    extents: np.ndarray

    @classmethod
    def from_digits(cls, digits: Digits, size: int) -> "_DigitPool":
        if len(digits) == 0:
            raise ValueError(f"digit pool {digits.source!r} is empty")
        alphas = digit_alphas(digits, size)
        extents = _inked_extents(alphas)
        blank = np.flatnonzero(extents[:, 2] < 0)
        if blank.size:
            raise ValueError(f"digits.images[{blank[0]}] (source {digits.source!r}) has no ink; every digit needs "
                             f"a pixel > 0")
        return cls(alphas, digits.labels.astype(np.int32), extents)


def _inked_extents(alphas: np.ndarray) -> np.ndarray:
    """Inclusive extents `(row_min, col_min, row_max, col_max)` `[N, 4]` of alpha > 0; -1s if blank."""
    rows = (alphas > 0).any(axis=2)
    cols = (alphas > 0).any(axis=1)
    extents = np.stack([
        rows.argmax(axis=1), cols.argmax(axis=1),
        rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1), cols.shape[1] - 1 - cols[:, ::-1].argmax(axis=1),
    ], axis=1)
    extents[~rows.any(axis=1)] = -1
    return extents


@dataclasses.dataclass(frozen=True)
class _Objects:
    """The objects of one scene, in drawing order."""

    alphas: list  # float32 [h, w] masks
    colours: np.ndarray  # float32 [n, 3]
    classes: np.ndarray  # int [n]
    extents: np.ndarray  # int [n, 4] inked extent within the patch
    extras: dict  # name -> int [n], e.g. "shapes", "colours"

    @property
    def sizes(self) -> np.ndarray:
        return np.array([alpha.shape for alpha in self.alphas], dtype=np.int64).reshape(-1, 2)


def _sample_digits(rng: np.random.Generator, pool: _DigitPool, count: int) -> _Objects:
    index = rng.integers(0, len(pool.labels), size=count)
    return _Objects(list(pool.alphas[index]), np.tile(_WHITE, (count, 1)), pool.labels[index], pool.extents[index], {})


def _sample_shapes(rng: np.random.Generator, config: ScatteredShapesConfig, count: int) -> _Objects:
    shapes = rng.integers(0, len(SHAPE_NAMES), size=count)
    colours = rng.integers(0, len(COLOUR_NAMES), size=count)
    sizes = np.rint(rng.normal(config.shape_size, config.shape_size_std, size=(count, 2))).astype(np.int64)
    sizes = np.clip(sizes, config.min_shape_size, np.array(config.image_size))
    keys = [(int(s), int(h), int(w)) for s, (h, w) in zip(shapes, sizes)]
    alphas = [shape_mask(*key) for key in keys]
    extents = np.array([_shape_extent(*key) for key in keys], dtype=np.int64).reshape(-1, 4)
    return _Objects(alphas, PALETTE[colours], shape_class(shapes, colours), extents,
                    {"shapes": shapes, "colours": colours})


@functools.lru_cache(maxsize=None)
def _shape_extent(shape_index: int, height: int, width: int) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in _inked_extents(shape_mask(shape_index, height, width)[None])[0])


# --------------------------------------------------------------------------- placement


def place_patches(rng: np.random.Generator, sizes: np.ndarray, image_size: tuple[int, int], max_overlap: float,
                  max_placement_tries: int = 1000, max_restarts: int = 10000) -> np.ndarray:
    """Random integer top-left corners with bounded cumulative overlap (see the module docstring).

    Args:
        rng: Random generator.
        sizes: int `[n, 2]` patch (height, width), each fitting inside the image.
        image_size: (height, width).
        max_overlap: Maximum summed intersection area (pixels) of a new patch with earlier ones.
        max_placement_tries: Candidates per object before restarting the scene.
        max_restarts: Scene restarts before giving up.

    Returns:
        int64 `[n, 2]` (row, col) top-left corners, patches fully inside the image.

    Raises:
        ValueError: No placement found within the budget.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    highs = np.asarray(image_size) - sizes + 1
    for _ in range(max_restarts + 1):
        corners = np.zeros_like(sizes)
        for i in range(len(sizes)):
            corner = _place_one(rng, corners[:i], sizes[:i], sizes[i], highs[i], max_overlap, max_placement_tries)
            if corner is None:
                break
            corners[i] = corner
        else:
            return corners
    raise ValueError(
        f"could not place {len(sizes)} patches of sizes {sizes.tolist()} in image_size={tuple(image_size)} with "
        f"cumulative overlap <= max_overlap={max_overlap} after {max_restarts} restarts of "
        f"{max_placement_tries} tries per object; use a larger image, fewer objects or a larger max_overlap")


def _place_one(rng, corners, sizes, size, high, max_overlap, max_tries):
    """First acceptable candidate corner `[2]` for a patch of `size`, or None after `max_tries`."""
    if len(corners) == 0:
        return rng.integers(0, high)
    tried = 0
    while tried < max_tries:
        batch = min(_CANDIDATE_BATCH, max_tries - tried)
        candidates = rng.integers(0, high, size=(batch, 2))
        low = np.maximum(candidates[:, None, :], corners[None])
        top = np.minimum(candidates[:, None, :] + size, (corners + sizes)[None])
        sides = np.maximum(top - low, 0)
        overlap = (sides[..., 0] * sides[..., 1]).sum(axis=1)
        accepted = np.flatnonzero(overlap <= max_overlap)
        if accepted.size:
            return candidates[accepted[0]]
        tried += batch
    return None


# --------------------------------------------------------------------------- motion


def initial_velocities(rng: np.random.Generator, count: int, speed: float) -> np.ndarray:
    """float64 `[count, 2]` (row, col) velocities of norm `speed`, direction uniform on the circle."""
    directions = rng.normal(size=(count, 2))
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    directions = np.where(norms > 0, directions / np.where(norms > 0, norms, 1.0), [1.0, 0.0])
    return speed * directions


def bounce_step(positions: np.ndarray, velocities: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame of motion with reflection off the walls, per axis.

    Each coordinate lives in [0, limit] (limit = image side - patch side). The unconstrained move
    `p + v` is folded back into the interval as often as it crosses a wall, and the velocity
    component flips once per crossing; this equals the piecewise move-to-wall-and-reflect of the
    original code. An axis with limit 0 (patch as large as the image) stays at 0.

    Args:
        positions: float `[n, 2]` in [0, limits].
        velocities: float `[n, 2]`.
        limits: `[n, 2]` non-negative.

    Returns:
        (positions, velocities) after the step, float64 `[n, 2]` each.
    """
    limits = np.asarray(limits, dtype=np.float64)
    moved = np.asarray(positions, dtype=np.float64) + velocities
    safe = np.where(limits > 0, limits, 1.0)
    crossings = np.floor(moved / safe)
    folded = moved - crossings * safe
    odd = crossings % 2 == 1
    new_positions = np.where(odd, safe - folded, folded)
    new_positions = np.where(limits > 0, np.clip(new_positions, 0.0, limits), 0.0)
    new_velocities = np.where(odd & (limits > 0), -velocities, velocities)
    return new_positions, new_velocities


def trajectories(corners: np.ndarray, velocities: np.ndarray, limits: np.ndarray, num_frames: int) -> np.ndarray:
    """float64 `[num_frames, n, 2]` top-left positions, starting at `corners` (frame 0)."""
    positions = np.asarray(corners, dtype=np.float64)
    frames = [positions]
    for _ in range(num_frames - 1):
        positions, velocities = bounce_step(positions, velocities, limits)
        frames.append(positions)
    return np.stack(frames) if len(corners) else np.zeros((num_frames, 0, 2))


# --------------------------------------------------------------------------- rendering


def _composite(canvas: np.ndarray, objects: _Objects, corners: np.ndarray) -> None:
    """Draws `objects` in order into `canvas` float32 `[H, W, 3]` at int `corners` `[n, 2]`, in place.

    `out = out + alpha * (colour - out)`, i.e. `alpha * colour + (1 - alpha) * out`; every patch must
    lie inside the canvas. The result is >= 0 exactly; float rounding can exceed 1 by an ulp, which
    the callers clip once per dataset.
    """
    for alpha, colour, (top, left) in zip(objects.alphas, objects.colours, corners):
        height, width = alpha.shape
        region = canvas[top:top + height, left:left + width]
        region += alpha[..., None] * (colour - region)


def _boxes(corners: np.ndarray, extents: np.ndarray, valid: np.ndarray, image_size) -> np.ndarray:
    """float32 `[..., K, 4]` normalised boxes of inked extents at int `corners`, zero where not `valid`."""
    height, width = image_size
    rows = np.clip(corners[..., 0:1] + extents[..., 0::2], 0, height - 1)
    cols = np.clip(corners[..., 1:2] + extents[..., 1::2], 0, width - 1)
    boxes = boxes_from_pixel_extent(rows[..., 0], cols[..., 0], rows[..., 1], cols[..., 1], height, width)
    return np.where(valid[..., None], boxes, 0.0).astype(np.float32)


class _Progress:
    """INFO log lines every `_PROGRESS_INTERVAL` seconds and at the end of a long generation."""

    def __init__(self, total: int, what: str):
        self.total, self.what = total, what
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_INTERVAL:
            self.last = now
            logger.info("generating %s: %d/%d (%.0f s)", self.what, done, self.total, now - self.start)

    def finish(self) -> None:
        logger.info("generated %d %s in %.1f s", self.total, self.what, time.monotonic() - self.start)


# --------------------------------------------------------------------------- generators


def generate_mnist_images(config: ScatteredMNISTConfig, digits: Digits, num_images: int,
                          rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scattered MNIST images.

    Args:
        config: Scene parameters.
        digits: The digit pool to draw from (already split; digits drawn uniformly with replacement).
        num_images: N >= 0.
        rng: Random generator (all randomness comes from it).

    Returns:
        images float32 `[N, H, W, 3]` in [0, 1]; boxes float32 `[N, K, 4]`; classes int32 `[N, K]`
        (digit labels); num_objects int32 `[N]`; positions int32 `[N, K, 2]` patch top-left
        (row, col) in pixels; sizes int32 `[N, K, 2]` patch (height, width). K = max_digits.
    """
    _require_config(config, ScatteredMNISTConfig)
    pool = _DigitPool.from_digits(digits, config.digit_size)
    return _generate_images(config, num_images, rng, lambda count: _sample_digits(rng, pool, count),
                            (config.min_digits, config.max_digits), "Scattered MNIST images")


def generate_shapes_images(config: ScatteredShapesConfig, num_images: int,
                           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scattered Shapes images.

    Returns:
        As `generate_mnist_images`, with classes = `shape * 6 + colour` (0..29), plus shapes int32
        `[N, K]` (index into `SHAPE_NAMES`) and colours int32 `[N, K]` (index into `COLOUR_NAMES`).
    """
    _require_config(config, ScatteredShapesConfig)
    return _generate_images(config, num_images, rng, lambda count: _sample_shapes(rng, config, count),
                            (config.min_shapes, config.max_shapes), "Scattered Shapes images")


def generate_mnist_videos(config: ScatteredMNISTVideoConfig, digits: Digits, num_videos: int,
                          rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scattered MNIST videos.

    Returns:
        videos float32 `[N, T, H, W, 3]`; boxes float32 `[N, T, K, 4]` (inked extent per frame);
        track_ids int32 `[N, T, K]` (object k has id k + 1 in every frame, 0 for padding); classes
        int32 `[N, K]` (constant over time); num_objects int32 `[N]`; positions float64
        `[N, T, K, 2]` exact top-left (row, col), drawn at their floor; sizes int32 `[N, K, 2]`.
    """
    _require_config(config, ScatteredMNISTVideoConfig)
    pool = _DigitPool.from_digits(digits, config.digit_size)
    return _generate_videos(config, num_videos, rng, lambda count: _sample_digits(rng, pool, count),
                            (config.min_digits, config.max_digits), "Scattered MNIST videos")


def generate_shapes_videos(config: ScatteredShapesVideoConfig, num_videos: int,
                           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Scattered Shapes videos: as `generate_mnist_videos`, plus shapes and colours int32 `[N, K]`."""
    _require_config(config, ScatteredShapesVideoConfig)
    return _generate_videos(config, num_videos, rng, lambda count: _sample_shapes(rng, config, count),
                            (config.min_shapes, config.max_shapes), "Scattered Shapes videos")


def _require_config(config, cls) -> None:
    if type(config) is not cls:
        raise TypeError(f"config must be a {cls.__name__}; got {type(config).__name__}")


def _scene_arrays(num: int, max_objects: int, extra_names) -> dict[str, np.ndarray]:
    arrays = {
        "classes": np.zeros((num, max_objects), np.int32),
        "num_objects": np.zeros(num, np.int32),
        "sizes": np.zeros((num, max_objects, 2), np.int32),
    }
    arrays.update({name: np.zeros((num, max_objects), np.int32) for name in extra_names})
    return arrays


def _sample_scene(config, rng, sample_objects, count_range) -> tuple[_Objects, np.ndarray]:
    count = int(rng.integers(count_range[0], count_range[1] + 1))
    objects = sample_objects(count)
    corners = place_patches(rng, objects.sizes, config.image_size, config.max_overlap,
                            config.max_placement_tries, config.max_restarts)
    return objects, corners


def _record_objects(arrays: dict, i: int, objects: _Objects) -> None:
    count = len(objects.alphas)
    arrays["num_objects"][i] = count
    arrays["classes"][i, :count] = objects.classes
    arrays["sizes"][i, :count] = objects.sizes
    for name, values in objects.extras.items():
        arrays[name][i, :count] = values


def _generate_images(config, num_images, rng, sample_objects, count_range, what) -> dict[str, np.ndarray]:
    num_images = check_count(num_images, "num_images")
    height, width = config.image_size
    max_objects = config.max_objects
    extra_names = ("shapes", "colours") if isinstance(config, ScatteredShapesConfig) else ()
    arrays = {"images": np.zeros((num_images, height, width, 3), np.float32), **_scene_arrays(
        num_images, max_objects, extra_names)}
    corners = np.zeros((num_images, max_objects, 2), np.int64)
    extents = np.zeros((num_images, max_objects, 4), np.int64)
    progress = _Progress(num_images, what)
    for i in range(num_images):
        objects, scene_corners = _sample_scene(config, rng, sample_objects, count_range)
        _composite(arrays["images"][i], objects, scene_corners)
        _record_objects(arrays, i, objects)
        corners[i, :len(scene_corners)] = scene_corners
        extents[i, :len(scene_corners)] = objects.extents
        progress.update(i + 1)
    valid = np.arange(max_objects)[None, :] < arrays["num_objects"][:, None]
    np.minimum(arrays["images"], 1.0, out=arrays["images"])
    arrays["boxes"] = _boxes(corners, extents, valid, config.image_size)
    arrays["positions"] = corners.astype(np.int32)
    progress.finish()
    return arrays


def _generate_videos(config, num_videos, rng, sample_objects, count_range, what) -> dict[str, np.ndarray]:
    num_videos = check_count(num_videos, "num_videos")
    height, width = config.image_size
    frames, max_objects = config.num_frames, config.max_objects
    extra_names = ("shapes", "colours") if isinstance(config, ScatteredShapesConfig) else ()
    arrays = {"videos": np.zeros((num_videos, frames, height, width, 3), np.float32), **_scene_arrays(
        num_videos, max_objects, extra_names)}
    positions = np.zeros((num_videos, frames, max_objects, 2), np.float64)
    extents = np.zeros((num_videos, 1, max_objects, 4), np.int64)
    progress = _Progress(num_videos, what)
    for i in range(num_videos):
        objects, corners = _sample_scene(config, rng, sample_objects, count_range)
        velocities = initial_velocities(rng, len(corners), config.speed)
        limits = np.asarray(config.image_size) - objects.sizes
        path = trajectories(corners, velocities, limits, frames)
        for t in range(frames):
            _composite(arrays["videos"][i, t], objects, np.floor(path[t]).astype(np.int64))
        _record_objects(arrays, i, objects)
        positions[i, :, :len(corners)] = path
        extents[i, 0, :len(corners)] = objects.extents
        progress.update(i + 1)
    np.minimum(arrays["videos"], 1.0, out=arrays["videos"])
    valid = np.arange(max_objects)[None, None, :] < arrays["num_objects"][:, None, None]
    valid = np.broadcast_to(valid, (num_videos, frames, max_objects))
    arrays["boxes"] = _boxes(np.floor(positions).astype(np.int64), extents, valid, config.image_size)
    arrays["track_ids"] = np.where(valid, np.arange(1, max_objects + 1, dtype=np.int32), 0).astype(np.int32)
    arrays["positions"] = positions
    progress.finish()
    return arrays


__all__ = [
    "ScatteredMNISTConfig", "ScatteredShapesConfig", "ScatteredMNISTVideoConfig",
    "ScatteredShapesVideoConfig", "generate_mnist_images", "generate_shapes_images", "generate_mnist_videos",
    "generate_shapes_videos", "place_patches", "bounce_step", "trajectories", "initial_velocities", "scene_rng",
    "check_count", "check_seed",
]
