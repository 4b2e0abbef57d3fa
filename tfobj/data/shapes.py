"""Procedural shape masks and colours for Scattered Shapes (SILOT supplement D.2).

Five shapes (circle, diamond, star, cross, x) in six saturated colours. A shape of size
`height` x `width` is drawn to fill that box (a circle becomes an axis-aligned ellipse when
height != width) as an anti-aliased alpha mask: the alpha of a pixel is the fraction of its
5 x 5 sub-pixel sample points that fall inside the shape, so edge pixels have fractional alpha and
interior pixels alpha exactly 1.

The original code resized RGBA icons and used matplotlib's named colours (whose "green" is
(0, 0.5, 0)); tfobj draws the shapes analytically and uses fully saturated RGB primaries and
secondaries, so every colour has channel values in {0, 1}.
"""
from __future__ import annotations

import functools

import numpy as np

SHAPE_NAMES = ("circle", "diamond", "star", "cross", "x")
COLOUR_NAMES = ("red", "green", "blue", "cyan", "yellow", "magenta")
PALETTE = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=np.float32)
PALETTE.flags.writeable = False
NUM_SHAPE_CLASSES = len(SHAPE_NAMES) * len(COLOUR_NAMES)

_SUPERSAMPLE = 5
_BAR_HALF_WIDTH = 1.0 / 3.0  # cross: arms one third of the box wide
_DIAGONAL_HALF_WIDTH = 0.4  # x: |u -+ v| <= 0.4, arms about 0.28 of the box wide
_STAR_INNER_RADIUS = 0.45  # five-pointed star, inner/outer radius (a regular star has 0.38)


def shape_class(shape_index, colour_index):
    """Class id of a (shape, colour) pair: `shape_index * 6 + colour_index`, in 0..29."""
    return np.asarray(shape_index) * len(COLOUR_NAMES) + np.asarray(colour_index)


@functools.lru_cache(maxsize=None)
def shape_mask(shape_index: int, height: int, width: int) -> np.ndarray:
    """Anti-aliased alpha mask of one shape filling a `height` x `width` box.

    Args:
        shape_index: Index into `SHAPE_NAMES`.
        height: Box height in pixels, >= 1.
        width: Box width in pixels, >= 1.

    Returns:
        Read-only float32 `[height, width]` in [0, 1] (cached per arguments).
    """
    if not 0 <= shape_index < len(SHAPE_NAMES):
        raise ValueError(f"shape_index={shape_index} must be in 0..{len(SHAPE_NAMES) - 1}")
    if height < 1 or width < 1:
        raise ValueError(f"shape size ({height}, {width}) must be at least 1 x 1")
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    v = ((np.arange(height)[:, None] + offsets[None, :]).reshape(-1) * 2.0 / height) - 1.0
    u = ((np.arange(width)[:, None] + offsets[None, :]).reshape(-1) * 2.0 / width) - 1.0
    v, u = np.meshgrid(v, u, indexing="ij")
    inside = _INSIDE[SHAPE_NAMES[shape_index]](u, v)
    coverage = inside.reshape(height, _SUPERSAMPLE, width, _SUPERSAMPLE).mean(axis=(1, 3))
    mask = coverage.astype(np.float32)
    mask.flags.writeable = False
    return mask


def _inside_circle(u, v):
    return u * u + v * v <= 1.0


def _inside_diamond(u, v):
    return np.abs(u) + np.abs(v) <= 1.0


def _inside_cross(u, v):
    return (np.abs(u) <= _BAR_HALF_WIDTH) | (np.abs(v) <= _BAR_HALF_WIDTH)


def _inside_x(u, v):
    return (np.abs(u - v) <= _DIAGONAL_HALF_WIDTH) | (np.abs(u + v) <= _DIAGONAL_HALF_WIDTH)


def _inside_star(u, v):
    """Five-pointed star, one point up (v grows downwards), outer radius 1; even-odd polygon test."""
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, _STAR_INNER_RADIUS)
    xs, ys = radii * np.cos(angles), radii * np.sin(angles)
    inside = np.zeros(u.shape, dtype=bool)
    for x0, y0, x1, y1 in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        crosses = (y0 > v) != (y1 > v)
        x_at_v = x0 + (v - y0) * (x1 - x0) / (y1 - y0 if y1 != y0 else 1.0)
        inside ^= crosses & (u < x_at_v)
    return inside


_INSIDE = {
    "circle": _inside_circle,
    "diamond": _inside_diamond,
    "star": _inside_star,
    "cross": _inside_cross,
    "x": _inside_x,
}
