"""Procedural Tetrominoes in the layout of DeepMind's multi_object_datasets (TUSK, Table 10 / A.8.3).

The real data set is one TFRecord file (`tetrominoes_train.tfrecords`, read by
`tfobj.data.multi_object_records.read_tetrominoes`). This module draws scenes of the same kind with
numpy, so tests and quick runs need no download. It is a re-creation, not the data set: the facts
below that are marked "assumed" are not documented anywhere we could read, and a model trained on
one may not transfer exactly to the other.

Established (source in brackets):
  - 35 x 35 RGB images, three tetrominoes each; four entities per scene, the background first
    [multi_object_datasets `tetrominoes.py`: IMAGE_SIZE, MAX_NUM_ENTITIES = 4; README].
  - 19 shapes: the distinct rotations of the seven one-sided tetrominoes (I 2, O 1, T 4, S 2, Z 2,
    J 4, L 4). The README says 17; the issue "wrong number of tetrominoes shapes"
    (google-deepmind/multi_object_datasets#10) counts 19, and TUSK uses 19 x 6 = 114 prototypes
    and classes `(shape - 1) * 6 + colour` (TUSK `datasets/multi_object.py`).
  - Six colours, red, green, blue, yellow, magenta, cyan [README]; stored per entity as an RGB
    float triple `color [4, 3]` [`tetrominoes.py` schema] whose components are exactly 0 or 1
    (TUSK maps `"1-0-0"` .. `"1-1-0"` to colour classes 0..5 with `int(c)`).
  - Masks: uint8 `[entities, H, W, 1]` taking the values 0 and 255 [README, "canonical format"];
    TUSK tests `mask == 255`. Here `mask` uses that convention unchanged.
  - Shape codes of the pieces start at 1 (TUSK subtracts 1 before indexing 19 shapes).

Assumed (tfobj choices, configurable where it matters):
  - A black background; background entry: shape 0, colour (0, 0, 0), position (0, 0).
  - Pieces never share a pixel (`min_gap=0`: they may touch, including two of the same colour).
    The README says nothing; published descriptions say the pieces do not occlude each other.
  - Blocks of 5 x 5 pixels (`block_size`), flat colour, no outline or shading.
  - Shape and colour drawn independently and uniformly per piece (repeats allowed); the position is
    a uniform integer top-left corner with the piece inside the image, re-drawn while it would share
    a pixel with (or come within `min_gap` pixels of) an earlier piece.
  - `x`, `y`: column and row of the top-left pixel of the piece's bounding box (the real data
    stores float positions whose reference point is undocumented).
  - `visibility` is 1 for all four entities (every scene holds exactly three pieces).
  - The numbering of the 19 shape codes (`TETROMINO_NAMES`) and of the colour codes
    (`TETROMINO_COLOUR_NAMES`, TUSK's colour order) is tfobj's; the real data's shape numbering is
    unknown, so compare shape predictions across the two with cluster metrics, not raw codes.

Random draws come only from the `rng` argument (per scene: the piece shapes, then their colours,
then the placement candidates), so the same generator state gives identical arrays.
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from tfobj.data.cache import AUTO, _cached, _check_args, _config_or_default
from tfobj.data.scattered import _check_image_size, _check_int, _check_real, check_count

# --------------------------------------------------------------------------- shapes and colours

# The seven one-sided tetrominoes as (row, col) cells, in one reference orientation each.
_ONE_SIDED = (
    ("I", ((0, 0), (0, 1), (0, 2), (0, 3))),
    ("O", ((0, 0), (0, 1), (1, 0), (1, 1))),
    ("T", ((0, 0), (0, 1), (0, 2), (1, 1))),
    ("S", ((0, 1), (0, 2), (1, 0), (1, 1))),
    ("Z", ((0, 0), (0, 1), (1, 1), (1, 2))),
    ("J", ((0, 0), (1, 0), (1, 1), (1, 2))),
    ("L", ((0, 2), (1, 0), (1, 1), (1, 2))),
)


def _normalised(cells) -> tuple[tuple[int, int], ...]:
    rows, cols = zip(*cells)
    return tuple(sorted((r - min(rows), c - min(cols)) for r, c in cells))


def _fixed_tetrominoes() -> tuple[tuple[str, ...], tuple[tuple[tuple[int, int], ...], ...]]:
    names, shapes = [], []
    for letter, cells in _ONE_SIDED:
        distinct = []
        for _ in range(4):
            shape = _normalised(cells)
            if shape not in distinct:
                distinct.append(shape)
            cells = [(c, -r) for r, c in cells]  # rotate by 90 degrees
        names += [f"{letter}{k}" for k in range(len(distinct))]
        shapes += distinct
    return tuple(names), tuple(shapes)


TETROMINO_NAMES, TETROMINO_CELLS = _fixed_tetrominoes()
"""The 19 fixed tetrominoes. Shape code k (1..19) is `TETROMINO_NAMES[k - 1]`, e.g. "I0" (horizontal I),
"I1", "O0", "T0".."T3", "S0", "S1", "Z0", "Z1", "J0".."J3", "L0".."L3"; `TETROMINO_CELLS[k - 1]` holds its
four (row, col) cells, translated so the smallest row and column are 0."""
NUM_TETROMINO_SHAPES = len(TETROMINO_NAMES)  # 19

TETROMINO_COLOUR_NAMES = ("red", "green", "blue", "cyan", "magenta", "yellow")
TETROMINO_PALETTE = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=np.float32)
TETROMINO_PALETTE.flags.writeable = False
"""Colour code c (1..6) has RGB `TETROMINO_PALETTE[c - 1]`; the order is TUSK's `color_dict`, so TUSK's
colour class is `c - 1`."""


@functools.lru_cache(maxsize=None)
def tetromino_bitmap(code: int, block_size: int = 5) -> np.ndarray:
    """Boolean pixel mask of one tetromino, `[rows * block_size, cols * block_size]`.

    Args:
        code: Shape code, 1..19 (see `TETROMINO_NAMES`).
        block_size: Side of one block in pixels, >= 1.

    Returns:
        Read-only bool array; True on the piece's 4 * block_size**2 pixels.
    """
    _check_int(code, "code", minimum=1)
    if code > NUM_TETROMINO_SHAPES:
        raise ValueError(f"code={code!r} must be a tetromino shape code in 1..{NUM_TETROMINO_SHAPES}")
    _check_int(block_size, "block_size", minimum=1)
    cells = np.asarray(TETROMINO_CELLS[code - 1])
    grid = np.zeros(cells.max(axis=0) + 1, dtype=bool)
    grid[cells[:, 0], cells[:, 1]] = True
    bitmap = np.kron(grid, np.ones((block_size, block_size), dtype=bool))
    bitmap.flags.writeable = False
    return bitmap


def tetromino_class(shape, color_index):
    """TUSK's class id of a piece, `(shape - 1) * 6 + (color_index - 1)`, in 0..113.

    Args:
        shape: Shape codes 1..19, any integer array shape.
        color_index: Colour codes 1..6 (`TETROMINO_PALETTE` order), broadcastable with `shape`.

    Returns:
        int array; the number of TUSK prototypes for Tetrominoes is 114 (TUSK Table 10).
    """
    shape, color_index = np.asarray(shape), np.asarray(color_index)
    if np.any((shape < 1) | (shape > NUM_TETROMINO_SHAPES)) or np.any((color_index < 1) | (color_index > 6)):
        raise ValueError("tetromino_class needs piece codes: shape in 1..19 and color_index in 1..6 "
                         "(0 is the background entry, which has no class)")
    return (shape.astype(np.int64) - 1) * len(TETROMINO_COLOUR_NAMES) + (color_index.astype(np.int64) - 1)


# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class TetrominoesConfig:
    """Tetrominoes scenes: three flat-coloured tetrominoes on a black 35 x 35 canvas, no shared pixels."""

    image_size: tuple[int, int] = (35, 35)  # multi_object_datasets tetrominoes.py: IMAGE_SIZE = [35, 35]
    num_pieces: int = 3  # README "each 35x35 image contains three tetrominoes"; MAX_NUM_ENTITIES = 4 with background
    block_size: int = 5  # assumed: pixels per block side; not stated in the README or the reader
    shapes: tuple[int, ...] = tuple(range(1, NUM_TETROMINO_SHAPES + 1))  # all 19 (issue #10; TUSK: 114 = 19 x 6)
    palette: tuple[tuple[float, float, float], ...] = tuple(
        tuple(float(v) for v in rgb) for rgb in TETROMINO_PALETTE)  # README: six colours; RGB 0/1 as in TUSK color_dict
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # assumed: black (published descriptions)
    min_gap: int = 0  # assumed: background pixels required between pieces (Chebyshev); 0 = may touch, never overlap
    max_placement_tries: int = 1000  # tfobj choice: candidates per piece before re-placing the whole scene
    max_restarts: int = 100  # tfobj choice: scene re-placements before giving up with a ValueError

    def __post_init__(self):
        cls = type(self).__name__
        image_size = _check_image_size(self.image_size, f"{cls}.image_size")
        _check_int(self.num_pieces, f"{cls}.num_pieces", minimum=1)
        _check_int(self.block_size, f"{cls}.block_size", minimum=1)
        _check_int(self.min_gap, f"{cls}.min_gap", minimum=0)
        _check_int(self.max_placement_tries, f"{cls}.max_placement_tries", minimum=1)
        _check_int(self.max_restarts, f"{cls}.max_restarts", minimum=0)
        shapes = _check_shapes(self.shapes, f"{cls}.shapes")
        background = _check_rgb(self.background, f"{cls}.background")
        palette = _check_palette(self.palette, background, f"{cls}.palette")
        height, width = image_size
        for code in shapes:
            rows, cols = tetromino_bitmap(code, int(self.block_size)).shape
            if rows > height or cols > width:
                raise ValueError(
                    f"{cls}: shape {code} ({TETROMINO_NAMES[code - 1]}) is {rows} x {cols} pixels at "
                    f"block_size={self.block_size}, larger than image_size={image_size}; use a smaller block_size "
                    f"(at most {min(height, width) // 4} fits every shape) or drop the shape from `shapes`")
        needed = self.num_pieces * 4 * self.block_size**2
        if needed > height * width:
            raise ValueError(
                f"{cls}: num_pieces={self.num_pieces} pieces of 4 blocks of {self.block_size} x {self.block_size} "
                f"cover {needed} pixels, more than image_size={image_size} holds ({height * width}); use a larger "
                f"image, fewer pieces or a smaller block_size")
        object.__setattr__(self, "image_size", image_size)
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "background", background)
        object.__setattr__(self, "palette", palette)
        for name in ("num_pieces", "block_size", "min_gap", "max_placement_tries", "max_restarts"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def num_entities(self) -> int:
        """Masks per scene: the background and one per piece (4 by default, as MAX_NUM_ENTITIES)."""
        return self.num_pieces + 1


def _check_shapes(value, name: str) -> tuple[int, ...]:
    try:
        codes = tuple(value)
    except TypeError:
        raise ValueError(f"{name}={value!r} must be a non-empty sequence of distinct shape codes in "
                         f"1..{NUM_TETROMINO_SHAPES}") from None
    for code in codes:
        _check_int(code, f"{name} entry", minimum=1)
        if code > NUM_TETROMINO_SHAPES:
            raise ValueError(f"{name} entry {code!r} must be a shape code in 1..{NUM_TETROMINO_SHAPES}")
    if not codes or len(set(codes)) != len(codes):
        raise ValueError(f"{name}={value!r} must be a non-empty sequence of distinct shape codes in "
                         f"1..{NUM_TETROMINO_SHAPES}")
    return tuple(int(code) for code in codes)


def _check_rgb(value, name: str) -> tuple[float, float, float]:
    try:
        components = tuple(value)
    except TypeError:
        components = ()
    if len(components) != 3:
        raise ValueError(f"{name}={value!r} must be an RGB triple with components in [0, 1]")
    for component in components:
        _check_real(component, f"{name} component", minimum=0.0)
        if component > 1:
            raise ValueError(f"{name}={value!r} must be an RGB triple with components in [0, 1]")
    return tuple(float(component) for component in components)


def _check_palette(value, background, name: str) -> tuple[tuple[float, float, float], ...]:
    try:
        entries = tuple(value)
    except TypeError:
        entries = ()
    if not entries:
        raise ValueError(f"{name}={value!r} must be a non-empty sequence of RGB triples")
    palette = tuple(_check_rgb(rgb, f"{name} entry") for rgb in entries)
    if len(set(palette)) != len(palette):
        raise ValueError(f"{name}={value!r} must hold distinct colours (colour codes are recovered from the RGB)")
    if background in palette:
        raise ValueError(f"{name}={value!r} contains the background colour {background}; pieces must differ from "
                         f"the background")
    return palette


# --------------------------------------------------------------------------- generation


def generate_tetrominoes(config: TetrominoesConfig | None, num_images: int,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draws `num_images` Tetrominoes scenes (N = num_images, E = num_pieces + 1 = 4 by default).

    Args:
        config: Scene parameters; None for the defaults (`TetrominoesConfig()`).
        num_images: N >= 0.
        rng: The only source of randomness.

    Returns:
        dict of numpy arrays, entity 0 the background, entity k (1..E-1) piece k:
          "image" float32 `[N, H, W, 3]`, in [0, 1] (exactly the background or a palette colour),
          "mask" uint8 `[N, E, H, W, 1]`, 255 where the pixel belongs to the entity, else 0 (the
              multi_object_datasets convention); the E masks partition every image,
          "label_map" int32 `[N, H, W]`, 0 background, k on piece k's pixels (for ARI),
          "x", "y" float32 `[N, E]`: column and row of the piece's top-left bounding-box pixel (0 for
              the background),
          "shape" float32 `[N, E]`: shape code 1..19 (0 for the background; float as in the schema),
          "color" float32 `[N, E, 3]`: the entity's RGB in [0, 1] (the background colour for entity 0),
          "visibility" float32 `[N, E]`: all 1,
          "color_index" int32 `[N, E]`: colour code 1..len(palette) (index into `config.palette`
              plus 1; 0 for the background).

    Raises:
        ValueError: A scene could not be placed within `max_restarts` re-placements.
    """
    config = TetrominoesConfig() if config is None else config
    if not isinstance(config, TetrominoesConfig):
        raise TypeError(f"config must be a TetrominoesConfig or None; got {type(config).__name__}")
    num_images = check_count(num_images, "num_images")
    height, width = config.image_size
    pieces, entities = config.num_pieces, config.num_entities
    palette = np.asarray(config.palette, dtype=np.float32)
    background = np.asarray(config.background, dtype=np.float32)
    codes = np.asarray(config.shapes, dtype=np.int64)
    bitmaps = {int(code): tetromino_bitmap(int(code), config.block_size) for code in codes}
    arrays = {
        "image": np.empty((num_images, height, width, 3), np.float32),
        "mask": np.zeros((num_images, entities, height, width, 1), np.uint8),
        "label_map": np.zeros((num_images, height, width), np.int32),
        "x": np.zeros((num_images, entities), np.float32),
        "y": np.zeros((num_images, entities), np.float32),
        "shape": np.zeros((num_images, entities), np.float32),
        "color": np.zeros((num_images, entities, 3), np.float32),
        "visibility": np.ones((num_images, entities), np.float32),
        "color_index": np.zeros((num_images, entities), np.int32),
    }
    entity_ids = np.arange(entities, dtype=np.int32)[:, None, None]
    for i in range(num_images):
        shape_codes = codes[rng.integers(len(codes), size=pieces)]
        colours = rng.integers(len(palette), size=pieces)
        shapes = [bitmaps[int(code)] for code in shape_codes]
        corners = _place_pieces(rng, shapes, (height, width), config)
        labels = arrays["label_map"][i]
        for k, (bitmap, (row, col)) in enumerate(zip(shapes, corners), start=1):
            window = labels[row:row + bitmap.shape[0], col:col + bitmap.shape[1]]
            window[bitmap] = k
        table = np.concatenate([background[None], palette[colours]], axis=0)  # [E, 3]
        arrays["image"][i] = table[labels]
        arrays["mask"][i, ..., 0] = np.where(labels[None] == entity_ids, 255, 0).astype(np.uint8)
        arrays["y"][i, 1:], arrays["x"][i, 1:] = corners[:, 0], corners[:, 1]
        arrays["shape"][i, 1:] = shape_codes
        arrays["color"][i] = table
        arrays["color_index"][i, 1:] = colours + 1
    return arrays


def _place_pieces(rng: np.random.Generator, bitmaps, image_size, config: TetrominoesConfig) -> np.ndarray:
    """Top-left (row, col) corners `[K, 2]` of pieces that share no pixel and keep `min_gap` apart."""
    height, width = image_size
    gap = config.min_gap
    for _ in range(config.max_restarts + 1):
        blocked = np.zeros((height, width), dtype=bool)  # pixels a new piece may not cover
        corners = np.zeros((len(bitmaps), 2), dtype=np.int64)
        for k, bitmap in enumerate(bitmaps):
            rows, cols = bitmap.shape
            for _ in range(config.max_placement_tries):
                row = int(rng.integers(height - rows + 1))
                col = int(rng.integers(width - cols + 1))
                if not blocked[row:row + rows, col:col + cols][bitmap].any():
                    break
            else:
                break  # this piece found no room: re-place the whole scene
            corners[k] = row, col
            _block(blocked, bitmap, row, col, gap)
        else:
            return corners
    raise ValueError(
        f"could not place {len(bitmaps)} tetrominoes without shared pixels (min_gap={gap}) in image_size="
        f"{image_size} after max_restarts={config.max_restarts} re-placements of max_placement_tries="
        f"{config.max_placement_tries} candidates each; use a larger image, fewer pieces or a smaller block_size")


def _block(blocked: np.ndarray, bitmap: np.ndarray, row: int, col: int, gap: int) -> None:
    """Marks the piece's pixels, dilated by `gap` pixels in the 8-neighbourhood sense, clipped to the image."""
    rows, cols = bitmap.shape
    grown = np.zeros((rows + 2 * gap, cols + 2 * gap), dtype=bool)
    for dr in range(2 * gap + 1):
        for dc in range(2 * gap + 1):
            grown[dr:dr + rows, dc:dc + cols] |= bitmap
    top, left = row - gap, col - gap
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + grown.shape[0], blocked.shape[0]), min(left + grown.shape[1], blocked.shape[1])
    blocked[r0:r1, c0:c1] |= grown[r0 - top:r1 - top, c0 - left:c1 - left]


# --------------------------------------------------------------------------- cached entry point


def tetrominoes(config: TetrominoesConfig | None, split: str, num_images: int, seed: int = 0,
                cache_dir: str | os.PathLike | None = AUTO) -> dict[str, np.ndarray]:
    """Procedural Tetrominoes scenes, seeded, split-aware and cached on disk (`tfobj.data.cache`).

    Args:
        config: Scene parameters; None for the defaults (`TetrominoesConfig()`).
        split: "train", "val" or "test"; selects the random stream only.
        num_images: N >= 0.
        seed: Non-negative integer; with `split`, seeds `np.random.default_rng`.
        cache_dir: Cache directory, "auto" (`$TFOBJ_CACHE` or `~/.cache/tfobj`) or None (no cache).

    Returns:
        The arrays of `generate_tetrominoes`: image `[N, 35, 35, 3]`, mask `[N, 4, 35, 35, 1]`,
        label_map `[N, 35, 35]`, x, y, shape, visibility, color_index `[N, 4]`, color `[N, 4, 3]`.
    """
    config = _config_or_default(config, TetrominoesConfig)
    _check_args(split, num_images, "num_images", seed)
    return _cached("tetrominoes", config, split, num_images, seed, cache_dir, None,
                   lambda rng: generate_tetrominoes(config, num_images, rng))


__all__ = [
    "NUM_TETROMINO_SHAPES", "TETROMINO_CELLS", "TETROMINO_COLOUR_NAMES", "TETROMINO_NAMES", "TETROMINO_PALETTE",
    "TetrominoesConfig", "generate_tetrominoes", "tetromino_bitmap", "tetromino_class", "tetrominoes",
]
