"""Thin-plate-spline (TPS) warps for TUSK's equivariance losses, pure functions.

TUSK's feature step has two equivariance losses (Table 10: "Eqv. Heatmap Loss", coefficient 0.01; "Eqv.
Featuremap Loss", coefficient 100): a training example is a pair of images related by a random TPS warp, and the
first image's maps, warped by that TPS, should equal the second image's maps. The seed gives only the two names
and coefficients; everything below is the original code's (ubc-vision/TUSK@04ba610), read from its files.

Shapes: B batch, H, W image (or map), C channels, N control points (16 in the original). **Coordinates here are
PyTorch `grid_sample`'s, not tfobj's (row, col):** a sampling grid is `[B, H_out, W_out, 2]` of normalised
(x, y) in [-1, 1] over the *input's* extent, x along the width (grid[..., 0]) and y along the height
(grid[..., 1], downwards). TPS control points and displacements are in the same normalised (x, y).

The original's parameterisation (`utils/tps.py`, `get_tps_para(B, scal, scal_var, tps_scal, off_scal,
rot_scal)`), as `random_tps_params` draws it, all uniforms independent per example:

* 8 control points c: the corners of two squares, (±0.7, ±0.7) and (±0.5, ±0.5) (the fixed order of
  `CONTROL_POINTS`), each jittered by U(−0.1, 0.1) per coordinate;
* a perturbation v ~ U(−tps_var, tps_var) per control point and coordinate (`tps_scal`);
* a scale s ~ U(scale − scale_var, scale + scale_var), drawn *per axis* (anisotropic), about a centre
  o₁ ~ U(−offset_var, offset_var)²;
* a rotation θ ~ U(−rotation_var, rotation_var) radians about a second centre o₂ ~ U(−offset_var, offset_var)²;
* target t = R(θ)·(s ⊙ (c + v − o₁) + o₁ − o₂) + o₂, R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]] acting on (x, y);
  displacement t − c;
* 8 more "frame" control points near the border, (±0.99, ±0.99), (0, ±0.99), (0.99, 0), (−0.95, 0) (sic: not
  −0.99), with displacement 0: the border is pinned, so the warp is not globally affine even without v.

`tps_grid` (the original `get_thin_plate_spline_grid`) solves the TPS through the N control points: the map
f(p) = a₀ + A·p + Σ_n w_n U(‖p − c_n‖²) with f(c_n) = c_n + d_n and Σ_n w_n = Σ_n w_n c_n = 0, kernel U(r²) =
r²·log(r² + 1e-6) (the original's; twice the textbook r² log r up to the 1e-6, which does not change the
interpolant), and evaluates f at every output pixel centre: the grid. `warp(images, grid)` then reads the input
at f(p) for output pixel p (PyTorch `grid_sample` semantics): content at c_n + d_n moves to c_n.

Conventions of the original, and the choices here:

* **align_corners.** The original builds the grid's pixel centres with `torch.linspace(-1, 1, n)` (the
  `align_corners=True` placement: ±1 at the first and last pixel centres) but samples with `grid_sample(...,
  align_corners=False)` (`datasets/dataset_utils.py`, `tps_transform`, explicitly; `train.py`'s loss warps by the
  default, which is False since PyTorch 1.3). The two halves disagree, so the original's identity parameters do
  not give the identity: every warp also shrinks the content towards the centre by (n − 1)/n (n the canvas side;
  for MNIST-Hard's 80-pixel images on the 112-pixel canvas, ≈ 0.9 %, half a pixel at the border). The data pairs
  and the loss use the same grid and the same sampling, so the loss is consistent either way. Default here: one
  convention on both sides, `align_corners=False` (docs/conventions.md), so identity parameters leave an image
  unchanged; the original is `tps_grid(..., align_corners=True)` with `warp(..., align_corners=False)`.
* **Padding.** Both warps of a pair act on a canvas: the image padded by int(H/5) pixels on every side
  (`gen_image_pairs`: `ReflectionPad2d` for CLEVR, Tetrominoes and CelebA, `ConstantPad2d(·, 0)` for MNIST,
  `ConstantPad2d(·, 1)` for H36M), warped by `grid_sample` with its default zeros padding, then both images
  cropped back to H × W. The second warp's grid, on that (H + 2m) × (W + 2m) canvas, is what a pair carries.
  The loss (`train.py`) pads the first image's maps with `ReflectionPad2d(int(H/5))` for every dataset, warps them
  with that grid, crops the centre H × W and compares (`equivariance_loss`).
* **Presets** (`TPS_PRESETS`): the arguments the original's datasets pass (`datasets/*.py`), and the fixed mild
  first warp of every pair (`gen_image_pairs`: 0.98, 0.02, 0.03, 0.02, 0.05). The second warp's grid is the one
  the loss uses; the first only makes the two images of a pair differently distorted copies.

`warp(padding="reflect")` extends the image by mirror reflection about its border pixels (`ReflectionPad2d`'s,
`tf.pad(mode="REFLECT")`'s rule: the border pixel is not repeated) to any distance. That equals the original's
"reflection-pad by m, then sample with zeros" wherever the bilinear taps stay within m pixels of the image, and
it is not `grid_sample(padding_mode="reflection")`, which repeats the border pixel. `equivariance_loss` pads
and crops literally as the original does.

References:
    - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, Table 10.
    - ubc-vision/TUSK `utils/tps.py`, `datasets/dataset_utils.py`, `datasets/{mnist,multi_object,celeba,h36m}.py`,
      `train.py` (the original code).
    - Bookstein, "Principal warps: thin-plate splines and the decomposition of deformations", TPAMI 1989.
"""
from __future__ import annotations

import numbers
import types

import numpy as np
import tensorflow as tf

from tfobj.models.tusk.sliced_wasserstein import _stateless_seed
from tfobj.models.tusk.tusk_math import positive_count

__all__ = [
    "CONTROL_POINTS",
    "FRAME_POINTS",
    "PAIR_PADDING",
    "TPS_PRESETS",
    "canvas_margin",
    "equivariance_loss",
    "pad_images",
    "random_tps_params",
    "tps_grid",
    "warp",
]

# The original's control points (`get_tps_para`, `coord` and `f_vector`), normalised (x, y).
CONTROL_POINTS = ((-0.7, -0.7), (0.7, -0.7), (-0.7, 0.7), (0.7, 0.7),
                  (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (-0.5, -0.5))
FRAME_POINTS = ((-0.99, -0.99), (0.0, -0.99), (0.99, -0.99), (0.99, 0.0),
                (0.99, 0.99), (0.0, 0.99), (-0.99, 0.99), (-0.95, 0.0))
CONTROL_JITTER = 0.1  # the original's (rand − 0.5) / 5
KERNEL_EPSILON = 1e-6  # U(r²) = r² log(r² + 1e-6), the original's
PADDINGS = ("zeros", "reflect")
PAD_MODES = ("reflect", "constant")

_preset = types.MappingProxyType
TPS_PRESETS = _preset({
    # datasets/mnist.py (MNIST-Hard): scal=0.95, scal_var=0.05, tps_scal=0.1, off_scal=0.01, rot_scal=0.25
    "mnist": _preset(dict(scale=0.95, scale_var=0.05, tps_var=0.1, offset_var=0.01, rotation_var=0.25)),
    # datasets/multi_object.py (CLEVR, Tetrominoes): scal=0.95, scal_var=0.02, tps_scal=0.02, off_scal=0.05,
    # rot_scal=0.1
    "multi_object": _preset(dict(scale=0.95, scale_var=0.02, tps_var=0.02, offset_var=0.05, rotation_var=0.1)),
    # datasets/celeba.py: gen_image_pairs' defaults
    "celeba": _preset(dict(scale=0.9, scale_var=0.05, tps_var=0.05, offset_var=0.05, rotation_var=0.25)),
    # datasets/h36m.py
    "h36m": _preset(dict(scale=0.95, scale_var=0.1, tps_var=0.05, offset_var=0.1, rotation_var=0.25)),
    # datasets/dataset_utils.py, gen_image_pairs: the fixed first warp of every pair, for every dataset
    "first_warp": _preset(dict(scale=0.98, scale_var=0.02, tps_var=0.03, offset_var=0.02, rotation_var=0.05)),
})
# How each dataset's pairs pad the image before the two warps (`gen_image_pairs`' padding, const): (mode, value)
# for `pad_images`. The loss pads the maps with "reflect" for every dataset (train.py).
PAIR_PADDING = _preset({"mnist": ("constant", 0.0), "multi_object": ("reflect", 0.0), "celeba": ("reflect", 0.0),
                        "h36m": ("constant", 1.0)})


# === Parameters (utils/tps.py, get_tps_para) ======================================================================


def random_tps_params(batch: int, seed, scale=0.9, scale_var=0.05, tps_var=0.05, offset_var=0.05,
                      rotation_var=0.5) -> dict:
    """Random TPS parameters, the original's parameterisation (`utils/tps.py`, `get_tps_para`; module docstring).

    The defaults are `get_tps_para`'s own, which no dataset uses: pass a preset, e.g.
    `random_tps_params(B, seed, **TPS_PRESETS["mnist"])`.

    Args:
        batch: B >= 1, a python int or a scalar integer tensor (a batch size only known at run time).
        seed: python int, or an integer tensor of shape [] or [2] (e.g. `[seed, step]`), for TensorFlow's stateless
            RNG: the same parameters for the same seed, eagerly and in a `tf.function`.
        scale: the mean scale (`scal`), > 0.
        scale_var: the half-width of the per-axis scale's uniform (`scal_var`), >= 0.
        tps_var: the half-width of the control points' perturbations (`tps_scal`), >= 0, normalised units.
        offset_var: the half-width of the scale and rotation centres' uniforms (`off_scal`), >= 0.
        rotation_var: the half-width of the rotation's uniform (`rot_scal`), >= 0, radians.

    Returns:
        dict of float32 tensors (normalised (x, y)):
          "control_points" `[B, 16, 2]`: the 8 jittered points, then the 8 `FRAME_POINTS`;
          "displacements" `[B, 16, 2]`: t − c for the first 8, 0 for the frame;
          the draws, for inspection: "perturbations" `[B, 8, 2]` (v), "scales" `[B, 2]` (s, per axis),
          "scale_centres" `[B, 2]` (o₁), "rotations" `[B]` (θ), "rotation_centres" `[B, 2]` (o₂).
        `tps_grid` reads "control_points" and "displacements".

    Raises:
        ValueError: if `batch` is not a positive int, `scale` is not positive, a `*_var` is negative, or `seed`
            is not an int or an integer `[]`/`[2]` tensor.
    """
    batch = positive_count("batch", batch)
    _check_real("scale", scale, positive=True)
    for name, value in (("scale_var", scale_var), ("tps_var", tps_var), ("offset_var", offset_var),
                        ("rotation_var", rotation_var)):
        _check_real(name, value, positive=False)
    seeds = tf.random.experimental.stateless_split(_stateless_seed(seed), 6)  # [6, 2], one per draw

    def uniform(index, shape, half_width, centre=0.0):  # U(centre − half_width, centre + half_width)
        unit = tf.random.stateless_uniform(shape, seed=seeds[index], dtype=tf.float32)  # U[0, 1), as torch.rand
        return centre + (2.0 * unit - 1.0) * half_width

    count = len(CONTROL_POINTS)
    points = tf.constant(CONTROL_POINTS, tf.float32) + uniform(0, [batch, count, 2], CONTROL_JITTER)  # [B, 8, 2]
    perturbations = uniform(1, [batch, count, 2], tps_var)  # [B, 8, 2]
    scale_centres = uniform(2, [batch, 2], offset_var)  # [B, 2]
    rotation_centres = uniform(3, [batch, 2], offset_var)  # [B, 2]
    scales = uniform(4, [batch, 2], scale_var, scale)  # [B, 2], per axis
    rotations = uniform(5, [batch], rotation_var)  # [B]

    scaled = scales[:, None] * (points + perturbations - scale_centres[:, None]) + scale_centres[:, None]
    relative = scaled - rotation_centres[:, None]  # [B, 8, 2]
    cos, sin = tf.cos(rotations)[:, None], tf.sin(rotations)[:, None]  # [B, 1]
    rotated = tf.stack([cos * relative[..., 0] - sin * relative[..., 1],
                        sin * relative[..., 0] + cos * relative[..., 1]], axis=-1)  # [B, 8, 2]
    targets = rotated + rotation_centres[:, None]
    frame = tf.broadcast_to(tf.constant(FRAME_POINTS, tf.float32), [batch, len(FRAME_POINTS), 2])
    return {
        "control_points": tf.concat([points, frame], axis=1),  # [B, 16, 2]
        "displacements": tf.concat([targets - points, tf.zeros_like(frame)], axis=1),  # [B, 16, 2]
        "perturbations": perturbations,
        "scales": scales,
        "scale_centres": scale_centres,
        "rotations": rotations,
        "rotation_centres": rotation_centres,
    }


# === Grid (utils/tps.py, get_thin_plate_spline_grid) ==============================================================


def tps_grid(params, height: int, width: int, align_corners: bool = False) -> tf.Tensor:
    """The sampling grid of the thin-plate spline through the control points (module docstring).

    The TPS system is solved in float64 (`tf.linalg.solve`; the original inverts it in float32), the grid is
    evaluated in the parameters' precision. Differentiable in the parameters (TUSK does not need it).

    Args:
        params: mapping with "control_points" and "displacements", float `[B, N, 2]` normalised (x, y), e.g.
            `random_tps_params`'s. The control points must not all lie on one line (N >= 3), else the system is
            singular.
        height, width: the output grid's size, python ints >= 1 (TUSK: the padded canvas, H + 2·int(H/5)).
        align_corners: where the output pixel centres lie in normalised coordinates. False (default): at
            (2j + 1)/n − 1, `grid_sample(align_corners=False)`'s placement; True: at `linspace(−1, 1, n)`, the
            original's (which it samples with align_corners=False; module docstring). Use the same value in
            `warp` for identity parameters to give the identity warp.

    Returns:
        `[B, height, width, 2]` normalised (x, y) sampling positions f(p), float32 (float64 for float64 params),
        `grid_sample`'s layout; with zero displacements, the output pixel centres themselves.

    Raises:
        ValueError: if `params` lacks a key, a tensor is not float `[B, N, 2]` or the two differ in shape,
            `height`/`width` is not a positive int, or `align_corners` is not a bool.
    """
    for key in ("control_points", "displacements"):
        if key not in params:
            raise ValueError(f"params must hold {key!r} (e.g. random_tps_params' output); got keys {sorted(params)}")
    points = _as_float("control_points", params["control_points"], 3, "[B, N, 2]")
    displacements = _as_float("displacements", params["displacements"], 3, "[B, N, 2]")
    if points.shape[2] != 2 or not points.shape.is_compatible_with(displacements.shape):
        raise ValueError(
            f"control_points and displacements must both have shape [B, N, 2]; got {points.shape} and "
            f"{displacements.shape}"
        )
    _check_size("height", height)
    _check_size("width", width)
    _check_bool("align_corners", align_corners)
    dtype = tf.float64 if tf.float64 in (points.dtype, displacements.dtype) else tf.float32

    # Solve [[U(C, C), P], [Pᵀ, 0]] · [w; a] = [C + D; 0], P = [1, x, y] (the original orders the blocks
    # [[P, U], [0, Pᵀ]] · [a; w], the same system).
    centres = tf.cast(points, tf.float64)  # [B, N, 2]
    targets = centres + tf.cast(displacements, tf.float64)  # [B, N, 2]
    count = tf.shape(centres)[1]
    kernel = _kernel(tf.reduce_sum(tf.square(centres[:, :, None] - centres[:, None]), axis=-1))  # [B, N, N]
    affine_basis = tf.concat([tf.ones_like(centres[..., :1]), centres], axis=-1)  # [B, N, 3]
    top = tf.concat([kernel, affine_basis], axis=2)  # [B, N, N + 3]
    bottom = tf.concat([tf.transpose(affine_basis, [0, 2, 1]), tf.zeros_like(kernel[:, :3, :3])], axis=2)  # [B, 3, N+3]
    system = tf.concat([top, bottom], axis=1)  # [B, N + 3, N + 3]
    rhs = tf.concat([targets, tf.zeros_like(targets[:, :3])], axis=1)  # [B, N + 3, 2]
    coefficients = tf.cast(tf.linalg.solve(system, rhs), dtype)  # [B, N + 3, 2]
    weights, affine = coefficients[:, :count], coefficients[:, count:]  # [B, N, 2], [B, 3, 2]

    xs = _pixel_centres(width, align_corners, dtype)  # [W]
    ys = _pixel_centres(height, align_corners, dtype)  # [H]
    grid_x, grid_y = tf.meshgrid(xs, ys)  # [H, W] each ("xy" indexing: grid_x[i, j] = xs[j])
    positions = tf.reshape(tf.stack([grid_x, grid_y], axis=-1), [-1, 2])  # [H·W, 2], raster order
    centres = tf.cast(centres, dtype)
    radial = _kernel(tf.reduce_sum(tf.square(positions[None, :, None, :] - centres[:, None, :, :]), axis=-1))
    mapped = affine[:, :1] + tf.einsum("pc,bcd->bpd", positions, affine[:, 1:]) + \
        tf.einsum("bpn,bnd->bpd", radial, weights)  # [B, H·W, 2]
    return tf.reshape(mapped, [-1, height, width, 2])  # [B, H, W, 2]


def _kernel(squared_distances):
    return squared_distances * tf.math.log(squared_distances + KERNEL_EPSILON)


def _pixel_centres(size: int, align_corners: bool, dtype) -> tf.Tensor:
    """Normalised positions of the `size` pixel centres along one axis."""
    if align_corners:
        return tf.linspace(tf.constant(-1.0, dtype), tf.constant(1.0, dtype), size)  # [-1] for size 1, as torch
    return (2.0 * tf.range(size, dtype=dtype) + 1.0) / size - 1.0


# === Sampling (torch.nn.functional.grid_sample, bilinear) =========================================================


def warp(images, grid, padding: str = "zeros", align_corners: bool = False) -> tf.Tensor:
    """Bilinear sampling of `images` at `grid`, as PyTorch's `grid_sample(mode="bilinear")`.

    Output pixel (i, j) reads the input at the normalised position grid[b, i, j] = (x, y), i.e. at pixel-index
    position u = ((x + 1)·W − 1)/2, v = ((y + 1)·H − 1)/2 (align_corners=False) or u = (x + 1)(W − 1)/2,
    v = (y + 1)(H − 1)/2 (True), interpolating its four neighbours (floor(u), floor(u) + 1) × (floor(v),
    floor(v) + 1). Gradients flow into `images` and `grid`.

    Args:
        images: float `[B, H, W, C]`.
        grid: float `[B, H_out, W_out, 2]` normalised (x, y), `grid_sample`'s layout (e.g. `tps_grid`'s).
        padding: the value of a tap outside the image. `"zeros"`: 0 (`grid_sample`'s default `padding_mode`,
            which the original uses). `"reflect"`: the image continued by mirror reflection about its border
            pixels (`ReflectionPad2d`'s rule, border pixel not repeated), to any distance; see the module
            docstring for how it relates to the original's pad-then-warp.
        align_corners: `grid_sample`'s convention (the original: False).

    Returns:
        `[B, H_out, W_out, C]`, float32 (float64 if an input is float64).

    Raises:
        ValueError: if a tensor is not float or has the wrong rank, the grid's last axis is not 2, the batch sizes
            differ (when static), `padding` is unknown or `align_corners` is not a bool.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    _check_bool("align_corners", align_corners)
    images = _as_float("images", images, 4, "[B, H, W, C]")
    grid = _as_float("grid", grid, 4, "[B, H_out, W_out, 2]")
    if grid.shape[3] != 2:
        raise ValueError(f"grid must have shape [B, H_out, W_out, 2] of normalised (x, y); got {grid.shape}")
    if images.shape[0] is not None and grid.shape[0] is not None and images.shape[0] != grid.shape[0]:
        raise ValueError(f"images and grid must have the same batch size; got {images.shape} and {grid.shape}")
    dtype = tf.float64 if tf.float64 in (images.dtype, grid.dtype) else tf.float32
    images, grid = tf.cast(images, dtype), tf.cast(grid, dtype)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    cols = _unnormalise(grid[..., 0], width, align_corners)  # [B, H_out, W_out], pixel-index units
    rows = _unnormalise(grid[..., 1], height, align_corners)
    if padding == "zeros":  # beyond [−1, n] every tap is outside: clip before the integer cast
        cols = tf.clip_by_value(cols, -2.0, tf.cast(width, dtype) + 1.0)
        rows = tf.clip_by_value(rows, -2.0, tf.cast(height, dtype) + 1.0)
    col_0, row_0 = tf.floor(cols), tf.floor(rows)
    col_frac, row_frac = cols - col_0, rows - row_0  # [B, H_out, W_out]
    if padding == "reflect":  # fold the integer taps first (exact for |u| < 2^24 in float32)
        col_0 = tf.math.floormod(col_0, tf.cast(_period(width), dtype))
        row_0 = tf.math.floormod(row_0, tf.cast(_period(height), dtype))
    col_0, row_0 = tf.cast(col_0, tf.int32), tf.cast(row_0, tf.int32)

    output = 0.0
    for row_step, row_weight in ((0, 1.0 - row_frac), (1, row_frac)):
        for col_step, col_weight in ((0, 1.0 - col_frac), (1, col_frac)):
            tap_rows, tap_cols = row_0 + row_step, col_0 + col_step  # [B, H_out, W_out]
            weight = row_weight * col_weight
            if padding == "zeros":
                inside = (tap_rows >= 0) & (tap_rows < height) & (tap_cols >= 0) & (tap_cols < width)
                weight = tf.where(inside, weight, tf.zeros_like(weight))
                tap_rows = tf.clip_by_value(tap_rows, 0, height - 1)
                tap_cols = tf.clip_by_value(tap_cols, 0, width - 1)
            else:
                tap_rows, tap_cols = _reflect(tap_rows, height), _reflect(tap_cols, width)
            values = tf.gather_nd(images, tf.stack([tap_rows, tap_cols], axis=-1), batch_dims=1)  # [B, Ho, Wo, C]
            output += weight[..., None] * values
    return output


def _unnormalise(coordinate, size, align_corners: bool):
    size = tf.cast(size, coordinate.dtype)
    if align_corners:
        return (coordinate + 1.0) * (size - 1.0) / 2.0
    return ((coordinate + 1.0) * size - 1.0) / 2.0


def _period(size):
    """The period of the reflected index sequence 0, 1, .., n − 1, n − 2, .., 1, 0, 1, ..: 2(n − 1) (1 for n = 1)."""
    return tf.maximum(2 * (size - 1), 1)


def _reflect(index, size):
    """Any integer index folded into [0, n − 1] by reflection about the border pixels (torch ReflectionPad2d)."""
    period = _period(size)
    index = tf.math.floormod(index, period)
    return tf.where(index > size - 1, period - index, index)


# === Padding and the equivariance loss (datasets/dataset_utils.py, train.py) ======================================


def canvas_margin(height: int) -> int:
    """The original's padding before warping, int(H / 5) pixels on every side (`gen_image_pairs`, `train.py`)."""
    _check_size("height", height)
    return int(height) // 5


def pad_images(images, margin: int, mode: str = "reflect", value=0.0) -> tf.Tensor:
    """Pads `[B, H, W, C]` (or `[B, H, W]`) by `margin` pixels on every side, as the original before a warp.

    Args:
        images: float `[B, H, W, C]` or `[B, H, W]`.
        margin: python int m >= 0 (the original: `canvas_margin(H)`); for "reflect", m < H and m < W.
        mode: `"reflect"` (`ReflectionPad2d`: the border pixel not repeated) or `"constant"` (`ConstantPad2d`).
        value: the constant of `"constant"` (the original: 0 for MNIST, 1 for H36M; `PAIR_PADDING`).

    Returns:
        `[B, H + 2m, W + 2m(, C)]` in the input's dtype.

    Raises:
        ValueError: for an unknown mode, a negative or non-int margin, a reflection margin >= H or W (when
            static), or an input that is not a float tensor of rank 3 or 4.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}; got {mode!r}")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Integral) or margin < 0:
        raise ValueError(f"margin must be a python int >= 0; got {margin!r}")
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating or images.shape.rank not in (3, 4):
        raise ValueError(f"images must be a float tensor [B, H, W, C] or [B, H, W]; got {images.dtype.name} "
                         f"{images.shape}")
    if mode == "reflect":
        for name, size in (("H", images.shape[1]), ("W", images.shape[2])):
            if size is not None and margin >= size:
                raise ValueError(f"a reflection margin must be smaller than {name}; got margin {margin} for "
                                 f"shape {images.shape}")
    paddings = [[0, 0], [margin, margin], [margin, margin]] + [[0, 0]] * (images.shape.rank - 3)
    if mode == "reflect":
        return tf.pad(images, paddings, mode="REFLECT")
    return tf.pad(images, paddings, constant_values=tf.cast(value, images.dtype))


def equivariance_loss(reference_maps, warped_maps, grid, margin=None, padding: str = "reflect",
                      align_corners: bool = False) -> tf.Tensor:
    """TUSK's equivariance loss, as the original computes it (`train.py`; module docstring).

    With m = `margin` (the original: int(H/5)): the first images' maps are padded by m on every side
    (`ReflectionPad2d(m)` in the original, for every dataset), warped by the pair's TPS grid on the
    (H + 2m) × (W + 2m) canvas (bilinear, zeros outside the canvas, `grid_sample`), cropped back to the centre
    H × W, and compared with the second images' maps by the mean squared error over every element (B·H·W·C,
    `torch.nn.MSELoss()`). No validity mask (the original's datasets compute one; `train.py` does not use it).
    Multiply by the coefficient yourself (Table 10: 0.01 on the score map, 100 on the feature map).

    Args:
        reference_maps: float `[B, H, W]` or `[B, H, W, C]`, the first images' maps (the original: S, or F).
            Differentiable.
        warped_maps: the second images' maps, same shape. Differentiable.
        grid: float `[B, H + 2m, W + 2m, 2]`, the pair's (second) warp's grid on the padded canvas, as
            `tps_grid(params, H + 2m, W + 2m)` gives it.
        margin: python int m >= 0, or None for the original's int(H/5) (needs a static H).
        padding: `"reflect"` (the original) or `"zeros"` (the maps continued by 0).
        align_corners: `warp`'s convention (the original samples with False).

    Returns:
        scalar float32 (float64 for float64 inputs), the mean squared error.

    Raises:
        ValueError: if the maps' shapes differ or are not rank 3/4, the grid's size is not the padded canvas
            (when static), `margin` or `padding` is invalid.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    reference_maps = tf.convert_to_tensor(reference_maps)
    warped_maps = tf.convert_to_tensor(warped_maps)
    for name, maps in (("reference_maps", reference_maps), ("warped_maps", warped_maps)):
        if not maps.dtype.is_floating or maps.shape.rank not in (3, 4):
            raise ValueError(f"{name} must be a float tensor [B, H, W] or [B, H, W, C]; got {maps.dtype.name} "
                             f"{maps.shape}")
    if not reference_maps.shape.is_compatible_with(warped_maps.shape):
        raise ValueError(f"reference_maps and warped_maps must have the same shape; got {reference_maps.shape} "
                         f"and {warped_maps.shape}")
    if reference_maps.shape.rank == 3:
        reference_maps, warped_maps = reference_maps[..., None], warped_maps[..., None]  # [B, H, W, 1]
    height, width = reference_maps.shape[1], reference_maps.shape[2]
    if margin is None:
        if height is None:
            raise ValueError("margin=None (the original's int(H/5)) needs a static H; pass margin explicitly")
        margin = canvas_margin(height)
    grid = tf.convert_to_tensor(grid)
    if grid.shape.rank == 4 and height is not None and width is not None:
        expected = (height + 2 * margin, width + 2 * margin)
        if (grid.shape[1] is not None and grid.shape[1] != expected[0]) or \
                (grid.shape[2] is not None and grid.shape[2] != expected[1]):
            raise ValueError(f"grid must cover the padded canvas, [B, H + 2m, W + 2m, 2] = [B, {expected[0]}, "
                             f"{expected[1]}, 2] for m = {margin}; got {grid.shape}")
    dtype = tf.float64 if tf.float64 in (reference_maps.dtype, warped_maps.dtype, grid.dtype) else tf.float32
    reference_maps, warped_maps = tf.cast(reference_maps, dtype), tf.cast(warped_maps, dtype)
    canvas = pad_images(reference_maps, margin, "reflect" if padding == "reflect" else "constant")
    moved = warp(canvas, grid, "zeros", align_corners)  # [B, H + 2m, W + 2m, C]
    shape = tf.shape(reference_maps)
    moved = moved[:, margin:margin + shape[1], margin:margin + shape[2]]  # [B, H, W, C]
    return tf.reduce_mean(tf.square(moved - warped_maps))


# === Argument checks ==============================================================================================


def _as_float(name: str, x, rank: int, expected: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a float tensor {expected}; got dtype {x.dtype.name}")
    if x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {expected} (rank {rank}); got shape {x.shape}")
    return x


def _check_real(name: str, value, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(float(value))
    if not ok or (positive and value <= 0) or (not positive and value < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite python float {bound}; got {value!r}")


def _check_size(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a python int >= 1; got {value!r}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool; got {value!r}")
