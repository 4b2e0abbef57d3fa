"""SPAIR's differentiable sprite renderer (Crawford & Pineau, AAAI 2019, supplement C, Algorithm 1).

Every object k of image b has an appearance map `o` (`[h, w, C]`), an alpha map `alpha` (`[h, w, 1]`),
a box, a presence `z_pres` in [0, 1] and a real relative depth `z_depth`. Algorithm 1 first forms the
transparency `alpha~ = alpha * z_pres` and the importance `gamma = alpha * z_pres * sigmoid(-z_depth)`,
then, for every output pixel `(y, x)` and every object whose box CONTAINS the pixel::

    alpha' = INTERPOLATE(alpha~), gamma' = INTERPOLATE(gamma), o' = INTERPOLATE(o)
    o' <- alpha' * o' + (1 - alpha') * background[y, x]
    weighted_sum += gamma' * o';  normalizer += gamma';  n_writes += 1

and the pixel is `weighted_sum / normalizer` if `n_writes > 0`, else the background.

Conventions. The supplement does not say how INTERPOLATE treats the sprite's edge nor exactly which
pixels CONTAINS selects; where the seed is silent tfobj follows the original code, here the edge
convention of the original kernel (`auto_yolo` `render_sprites_ops.cc`). Other choices are tfobj's
(see docs/conventions.md).

* Pixel `(r, c)` has its centre at `(r + 0.5, c + 0.5)` in pixel units; a normalised box
  `(y_min, x_min, y_max, x_max)` is `(y_min * H, x_min * W, y_max * H, x_max * W)` in pixels.
* Sprite coordinates: the sprite's `h x w` texels tile the box (align_corners=False, half-pixel
  centres, the convention of `tf.image.resize(..., "bilinear")`). The pixel centre `y_c` maps to
  `u = (y_c - y_min*H) / ((y_max - y_min) * H) * h - 0.5` (texel `i` is centred at `u = i`), likewise
  `v` for columns with `w`.
* CONTAINS (original kernel): `-1 < u < h` and `-1 < v < w`, strictly: the box grown by half a texel
  (`box_h / (2h)` pixels vertically, `box_w / (2w)` horizontally) on every side. The rows an object
  touches are therefore the integers `r` with `y_min*H - box_h/(2h) < r + 0.5 < y_max*H + box_h/(2h)`
  (clipped to the image; the range is computed so that it is exactly the set where the floating-point
  `u` passes the strict test, see `_pixel_range`), likewise columns. Boxes with zero or negative height
  or width contain no pixel; boxes may extend beyond, or lie entirely outside, the image. A box with a
  NaN or infinite coordinate (or whose extent overflows) contains no pixel and gets zero gradient.
* INTERPOLATE (original kernel): bilinear interpolation at `(u, v)` where each of the four taps that
  falls outside the texel grid (row -1 or h, column -1 or w) reads a pad value: 0 for the alpha map
  (hence for `alpha~` and `gamma`), the background pixel `bg[y, x]` for the colour, i.e.
  `o' = sum_{in-grid taps} weight * o + (1 - sum_{in-grid taps} weight) * bg[y, x]`.
* Empty normaliser: a pixel that no box contains, or whose covering objects all have `gamma' = 0`
  (e.g. all `z_pres = 0`, alpha 0 there, or the pixel on the fringe's limit), is the background
  exactly. (Algorithm 1 would give 0/0 in the second case; the background is also the limit of the
  formula as `gamma' -> 0`.) Division uses the double-`tf.where` pattern, so gradients are finite there
  too. (`n_writes` itself is not counted: `n_writes = 0` implies `normalizer = 0`, which already
  selects the background.)

Consequences: an opaque sprite is fully opaque (alpha' = 1) on the pixels whose centres are at least
half a texel inside the box (`0 <= u <= h-1`, `0 <= v <= w-1`), where the result equals the sprite
resized by `tf.image.resize`; across the one-texel band centred on the box edge alpha' falls linearly
(per axis) from 1 to 0 (1/2 on the edge itself, 0 half a texel outside), and the colour fades to the
background the same way, so an opaque white sprite on black renders `W^2` there (`W` = in-grid weight).
The output is continuous in the box.

Why: this band gives the box edges a gradient from coverage. With taps clamped to the edge texels and
CONTAINS exactly the box (tfobj's first version), the box's position/size gradient only saw the sprite
being resampled inside the box, never pixels entering or leaving the covered area; nothing in the
reconstruction loss resisted the KL pulling boxes small, and SPAIR's boxes shrank into oblivion once
gradients reached z_where. Now a box smaller than the object it must cover gets a gradient towards
growing (tests/rendering/test_render_sprites.py::test_box_size_gradient_resists_shrinking). Because
the band renders `W^2`, the box that best reconstructs a hard-edged object is slightly larger than the
object (in that test, under a squared error: about a quarter texel per side).

Importance: `importance="original"` replaces the supplement's importance by the original code's
`max(alpha * z_pres * 4 sigmoid(clip(z_depth, ±10)), 0.01)` (e2crawfo/auto_yolo, branch aaai_2019,
yolo_air.py): higher depth in front, and the floor lets an absent object (z_pres = 0) still write the
background with weight 0.01. That importance is a per-texel map (the floor makes it non-linear in alpha),
interpolated like alpha with zero padding.

Implementation: the (object, pixel) pairs are enumerated directly (ragged ranges over each object's
clipped pixel rectangle, the box plus its half-texel fringe), the sprites are read by a 4-tap bilinear
gather whose out-of-grid taps get weight 0, and `tf.math.unsorted_segment_sum` accumulates into the
pixels. The division and blend run only on the covered pixels (one representative pair per pixel,
found with `unsorted_segment_min`), which are then written into a copy of the background with
`tf.tensor_scatter_nd_update`. The arithmetic therefore grows with `sum_k (area of box k grown by half
a texel per side, in pixels, clipped to the image)`, not with `K * H * W`; what remains proportional
to the image is zero-filling two `[B*H*W]`-row accumulators and copying the background (memory
traffic, no per-pixel arithmetic). With `S = sum_{in-grid taps} weight * o` (the zero-padded colour
read) and `W` the in-grid weight, `o' = S + (1 - W) bg` and `alpha' o' + (1 - alpha') bg = alpha' S +
(1 - alpha' W) bg`, so the accumulation uses `weighted_sum = sum(gamma' alpha' S) + bg * sum(gamma'
(1 - alpha' W))` and the background is not gathered per pair. Since `z_pres` and `sigmoid(-z_depth)`
are per-object scalars and interpolation (with zero padding) is linear, `INTERPOLATE(alpha~) = z_pres *
INTERPOLATE(alpha)` and `INTERPOLATE(gamma) = sigmoid(-z_depth) * INTERPOLATE(alpha~)`; the alpha map
is therefore interpolated once.

Dense path (`method="dense"`, or `"auto"` where a box may cover the whole image, see below): every object
is evaluated at every pixel, with no gathers or scatters. Bilinear interpolation is separable, so an object's
maps at all pixel centres are `Wy · map · Wx^T` (per channel), two small matrix products, where the
interpolation matrix `Wy` (`[H, h]`) has in row `r` the weights `1 - du` and `du` of the two taps `floor(u)`,
`floor(u) + 1` of that row's `u` (the pair path's `_sprite_coordinate`, on the same operands), taps outside the
texel grid weighing 0 (zero padding), and is a zero row for the rows outside the object's CONTAINS range
(`_pixel_range`); likewise `Wx` for columns. The in-grid weight is `W = rowsum(Wy) · rowsum(Wx)`. A pixel
outside an object's rectangle then gets alpha' = gamma' = 0 from it, which adds nothing to the sums, as the
pair path's missing pair does, so the two paths compute the same sums (in another order; tests compare values
and gradients in float64). The per-object factors (z_pres, sigmoid(-z_depth)) are taken out of the per-pixel
products (`sum gamma' alpha' S = sum_k s_k z_k^2 a^2 S` with `a` the interpolated alpha) and applied by the
sums over objects, which are matrix products too. The cost is `B·K·H·W` per map channel whatever the boxes,
against the pair path's `sum_k` (box area) with a much larger constant (four gathered taps per pair, and
scatter-adds in the gradient). `method="auto"` picks the dense path where the static pair
window of `max_box_size` (below) covers the whole image, i.e. where a box may cover the image anyway: SPAIR at
48 x 48 px, where the renderer alone is faster than the pair path at every box size measured (docs/spair.md,
Speed); everywhere else, and without a bound, the pair path. `"auto"` is the default: on a quiet machine
SPAIR's whole training step ran 1.35x and its inference 1.36x faster with it than with `"pairs"`
(docs/spair.md, Speed). Under XLA the dense path replaces windows that would
cover the whole image (also without a bound): the same pairs, without gathers.

Gradients flow to the background, appearance, alpha, z_pres, z_depth and to the boxes (through the
bilinear coordinates `u, v`, including the fade across the band; which pixels a box contains is
piecewise constant in the box, but alpha' is 0 at the fringe's limit, so the output is continuous).

Dtypes: everything is computed in float32 (also under a mixed-precision policy: float16 / bfloat16
inputs are cast up, so the normalisation is in float32) and the result is cast back to the
background's dtype. float64 inputs (background float64) are computed in float64 throughout, which
the tests use for tight finite-difference checks.

Limits: pixel and pair indices are int32, so `B*H*W` and the number of (object, pixel) pairs must stay
below 2**31.

XLA: XLA needs static shapes, and the ragged pair list above has a data-dependent size. When traced
for XLA (`tf.function(jit_compile=True)`, Keras `compile(jit_compile=True)`, or Keras' "auto" on a GPU),
`render_sprites` therefore enumerates a static window of pairs per object instead: `min(floor(bound_h *
(1 + 1/h)) + 2, H)` rows by the same for columns, anchored at the object's first covered pixel, where
`max_box_size = (bound_h, bound_w)` bounds every box (in pixels; the box plus its fringe spans at most
`bound * (1 + 1/h)` pixels, so the window holds all of it), and pairs outside the object's rectangle are
dropped. All pixels are then blended (per-pixel arithmetic, no scatter). The result is the ragged path's
(tested, values and gradients, with boxes computed inside the compiled function, one compilation for
all box values); the cost is `K * window` pairs, which SPAIR bounds by its anchor (48 px). Without
`max_box_size` the window is the whole image (`K * H * W` pairs). A box larger than the bound keeps only
the first window rows and columns of its pixels. Where the window is the whole image (known from the static
shapes), `method="auto"` (the default) compiles the dense path above instead; `method="pairs"` keeps the windows.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfobj.ops.xla import in_xla_context

__all__ = ["render_sprites", "render_sprites_softmax", "RenderSprites", "IMPORTANCE_MODES"]

IMPORTANCE_MODES = ("seed", "original")
METHODS = ("auto", "pairs", "dense")
ORIGINAL_IMPORTANCE_FLOOR = 0.01  # original: importance = max(alpha * z_pres * 4 sigmoid(clip(z_depth, ±10)), 0.01)
ORIGINAL_DEPTH_SCALE = 4.0
_INDEX = tf.int32  # pixel and pair indices

# (argument name, layout) for the static shape checks; an int is a fixed size.
_LAYOUTS = (
    ("background", ("B", "H", "W", "C")),
    ("appearance", ("B", "K", "h", "w", "C")),
    ("alpha", ("B", "K", "h", "w", 1)),
    ("boxes", ("B", "K", 4)),
    ("z_pres", ("B", "K")),
    ("z_depth", ("B", "K")),
)


def render_sprites(background, appearance, alpha, boxes, z_pres, z_depth, importance: str = "seed",
                   max_box_size: tuple[float, float] | None = None, method: str = "auto",
                   name: str | None = None) -> tf.Tensor:
    """Renders sprites over a background with SPAIR's Algorithm 1 (see the module docstring).

    Args:
      background: `[B, H, W, C]` background image.
      appearance: `[B, K, h, w, C]` object appearance maps `o`.
      alpha: `[B, K, h, w, 1]` object alpha maps, in [0, 1].
      boxes: `[B, K, 4]` normalised boxes `(y_min, x_min, y_max, x_max)` (the `tf.image` format);
        coordinates may lie outside [0, 1]; empty or inverted boxes render nothing.
      z_pres: `[B, K]` presence in [0, 1] (0 for padding objects).
      z_depth: `[B, K]` real relative depth; lower depth = more importance = in front.
      importance: "seed" (default): the supplement's `alpha * z_pres * sigmoid(-z_depth)`; "original":
        the original code's `max(alpha * z_pres * 4 sigmoid(clip(z_depth, ±10)), 0.01)` (higher depth in front, and
        absent objects keep a small importance, so they pull covered pixels towards the background).
      max_box_size: `(height, width)` in pixels, an upper bound on every box's size, or None (no bound).
        Used by method "auto" (below) and when traced for XLA (`jit_compile=True`), where each object gets a static window of
        `min(floor(bound * (1 + 1/h)) + 2, H)` rows (likewise columns) of pairs: without a bound the
        window is the whole image (K·H·W pairs). A box larger than the bound is cut to its window.
      method: how the (object, pixel) pairs are evaluated; the methods give the same result (module
        docstring, "Dense path"). "pairs": the ragged pair list (under XLA: the static windows); "dense":
        every object at every pixel, the bilinear reads as two small matrix products per object; "auto"
        (default): "dense" where the static window of `max_box_size` covers the whole image (known from
        the static shapes; under XLA also without a bound), else "pairs".
      name: optional name scope.

    All arguments must have floating dtypes. Shapes may be unknown inside a `tf.function`
    (`B`, `K`, `H`, `W`, `h`, `w`, `C` may all be `None`); `B = 0` and `K = 0` are allowed.

    Returns:
      `[B, H, W, C]` tensor in the dtype of `background`, computed in float32 (float64 if the
      background is float64).

    Raises:
      ValueError: if a static rank or dimension does not match the layouts above (the message names
        the argument, its shape and the expected shape).
      TypeError: if an argument is not floating point.
    """
    _check_options(importance, max_box_size, method)
    with tf.name_scope(name or "render_sprites"):
        args = {}
        for (arg_name, _), value in zip(_LAYOUTS, (background, appearance, alpha, boxes, z_pres, z_depth)):
            tensor = tf.convert_to_tensor(value, name=arg_name)
            if not tensor.dtype.is_floating:
                raise TypeError(f"render_sprites: `{arg_name}` must be floating point; got dtype {tensor.dtype.name}")
            args[arg_name] = tensor
        _check_shapes(args)
        out_dtype = args["background"].dtype
        compute_dtype = tf.float64 if out_dtype == tf.float64 else tf.float32
        cast = [tf.cast(args[arg_name], compute_dtype) for arg_name, _ in _LAYOUTS]
        bound = (float("inf"),) * 2 if max_box_size is None else tuple(float(b) for b in max_box_size)
        if method == "auto":  # dense where the static pair windows would cover the whole image
            covers = _window_covers_image(cast[0], cast[1], bound)
            method = "dense" if covers and (max_box_size is not None or in_xla_context()) else "pairs"
        if in_xla_context():  # static shapes, traced into the caller's XLA program
            output = _render(*cast, importance=importance, max_box_size=bound, method=method)
        else:  # the exact ragged pair list, or the dense path
            output = _RENDER_FUNCTIONS[compute_dtype, importance, method](*cast)
        return tf.cast(output, out_dtype)


def render_sprites_softmax(background, appearance, alpha, boxes, z_pres, depth, temperature: float = 0.25,
                           max_box_size: tuple[float, float] | None = None, name: str | None = None) -> tf.Tensor:
    """Renders sprites with SILOT's softmax over depth (Crawford & Pineau, AAAI 2020, supplement A.2).

    With α = ξ·z_pres (transparency) and γ = α·depth (importance) per texel, and β′, α′, γ′ their values at a
    pixel (bilinear, zero outside the sprite), a pixel that the boxes of a set S of objects contain is

        Σ_{k∈S} β′_k α′_k e^{γ′_k/λ} / Σ_{k∈S} e^{γ′_k/λ}

    (γ′ = −∞ outside a box: an object that does not contain the pixel does not enter the softmax), and a pixel
    that no box contains is the background. Objects of larger depth (and more opaque) are drawn on top; an
    object's transparent texels darken a pixel towards 0 rather than show what is behind, as in the seed.

    The pairs of objects and pixels, the box convention (CONTAINS: the box and a half-texel fringe, across
    which α′ and β′ fade to 0) and the sprite reads are `render_sprites`' (module docstring): the cost grows
    with the boxes' areas, not with objects × image pixels, and under XLA each object gets the same static
    window of pairs (`max_box_size`). The softmax subtracts each pixel's largest γ′/λ, so it is finite for any
    temperature.

    Args:
      background: `[B, H, W, C]`, the pixels no box contains.
      appearance: `[B, K, h, w, C]` appearance maps β in [0, 1].
      alpha: `[B, K, h, w, 1]` partial transparency maps ξ in [0, 1].
      boxes: `[B, K, 4]` normalised (y_min, x_min, y_max, x_max).
      z_pres: `[B, K]` presence in [0, 1].
      depth: `[B, K]` o_depth in (0, 1); larger = in front.
      temperature: λ > 0 (SILOT Table 1: 0.25).
      max_box_size: as `render_sprites` (the XLA path's bound on every box, in pixels).
      name: optional name scope.

    Returns:
      `[B, H, W, C]` in the dtype of `background` (computed in float32, or float64 for float64 inputs).
    """
    _check_options("seed", max_box_size)
    if not float(temperature) > 0:
        raise ValueError(f"render_sprites_softmax: temperature must be > 0; got {temperature!r}")
    with tf.name_scope(name or "render_sprites_softmax"):
        args = {}
        for (arg_name, _), value in zip(_LAYOUTS, (background, appearance, alpha, boxes, z_pres, depth)):
            tensor = tf.convert_to_tensor(value, name=arg_name)
            if not tensor.dtype.is_floating:
                raise TypeError(f"render_sprites_softmax: `{arg_name}` must be floating point; got dtype "
                                f"{tensor.dtype.name}")
            args[arg_name] = tensor
        _check_shapes(args, "render_sprites_softmax", {"z_depth": "depth"})
        out_dtype = args["background"].dtype
        compute_dtype = tf.float64 if out_dtype == tf.float64 else tf.float32
        cast = [tf.cast(args[arg_name], compute_dtype) for arg_name, _ in _LAYOUTS]
        inverse_temperature = tf.constant(1.0 / float(temperature), compute_dtype)
        if in_xla_context():
            bound = (float("inf"),) * 2 if max_box_size is None else tuple(float(b) for b in max_box_size)
            output = _render_softmax(*cast, inverse_temperature, max_box_size=bound)
        else:
            output = _SOFTMAX_FUNCTIONS[compute_dtype](*cast, inverse_temperature)
        return tf.cast(output, out_dtype)


def _check_options(importance, max_box_size, method="auto") -> None:
    """Raises ValueError unless `importance` is one of IMPORTANCE_MODES, `method` one of METHODS and
    `max_box_size` is None or two positive sizes."""
    if importance not in IMPORTANCE_MODES:
        raise ValueError(f"render_sprites: importance must be one of {IMPORTANCE_MODES}; got {importance!r}")
    if method not in METHODS:
        raise ValueError(f"render_sprites: method must be one of {METHODS}; got {method!r}")
    if max_box_size is not None and not (isinstance(max_box_size, (tuple, list)) and len(max_box_size) == 2
                                         and all(float(b) > 0 for b in max_box_size)):
        raise ValueError(f"render_sprites: max_box_size must be (height, width) > 0 in pixels or None; "
                         f"got {max_box_size!r}")


def _check_shapes(args, function: str = "render_sprites", names: dict | None = None) -> None:
    """Checks static ranks and the consistency of every known dimension; raises ValueError naming `function`
    and the argument (`names` renames arguments in the messages, e.g. z_depth -> depth)."""
    names = names or {}
    for arg_name, layout in _LAYOUTS:
        shape = args[arg_name].shape
        if shape.rank is not None and shape.rank != len(layout):
            raise ValueError(
                f"{function}: `{names.get(arg_name, arg_name)}` must have rank {len(layout)} with layout "
                f"[{', '.join(map(str, layout))}]; got shape {_fmt(shape)} (rank {shape.rank})"
            )
    bound: dict[str, tuple[int, str]] = {}  # symbol -> (size, name of the argument that fixed it)
    for arg_name, layout in _LAYOUTS:
        shape = args[arg_name].shape
        if shape.rank is None:
            continue
        for axis, (symbol, size) in enumerate(zip(layout, shape.as_list())):
            if size is None:
                continue
            expected = symbol if isinstance(symbol, int) else bound.get(symbol, (size, arg_name))[0]
            if size != expected:
                expected_shape = [
                    s if isinstance(s, int) else bound.get(s, (s, None))[0] for s in layout
                ]
                why = (
                    f"the last axis must have size {symbol}"
                    if isinstance(symbol, int)
                    else f"{symbol} = {expected} from `{bound[symbol][1]}`"
                )
                raise ValueError(
                    f"{function}: `{names.get(arg_name, arg_name)}` has shape {_fmt(shape)} but expected "
                    f"[{', '.join(map(str, expected_shape))}] (layout [{', '.join(map(str, layout))}]; "
                    f"axis {axis}: {why})"
                )
            if not isinstance(symbol, int):
                bound.setdefault(symbol, (size, arg_name))
    for symbol in ("h", "w"):
        if symbol in bound and bound[symbol][0] == 0:
            raise ValueError(f"{function}: sprite size {symbol} must be positive; got 0 from `{bound[symbol][1]}`")


def _fmt(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape.as_list()) + "]"


def _sprite_coordinate(pixel, start, size, sprite_size):
    """Sprite-frame coordinate of the centre of pixel index `pixel` (float) for a box edge `start` and
    extent `size` in pixels: texel `i` is centred at `i`. The pair loop and the pixel-range search below
    both call this, so they evaluate the CONTAINS test on bit-identical values."""
    return (pixel + 0.5 - start) / size * sprite_size - 0.5


def _pixel_range(start, end, sprite_size, image_size, valid):
    """First pixel index and count of the pixels `r` with `-1 < u(r) < sprite_size` (strict), where
    `u = _sprite_coordinate(r, start, end - start, sprite_size)`, clipped to `[0, image_size)`;
    count 0 where `valid` is False. All arguments are per-object float vectors except `sprite_size`
    and `image_size` (float scalars) and `valid` (bool).

    For `size = end - start > 0` the test is `start - size/(2n) < r + 0.5 < end + size/(2n)` (n =
    `sprite_size`), i.e. `floor(start - size/(2n) - 0.5) + 1 <= r < ceil(end + size/(2n) - 0.5)`. That
    closed form is rounded differently from `u`, so each end is then moved by at most one pixel to
    where the floating-point `u` itself changes sides (`u` is non-decreasing in `r` after rounding):
    the range is exactly the set of pixels the per-pair `u` puts inside the fringe, as long as the closed
    form is within one pixel of it (checked for float32 box coordinates and sizes up to 1e6 px; beyond
    ~1e7 px a limit may be off by a pixel where alpha' is ~0). Should the per-pair `u` still land on
    or outside a limit (e.g. different rounding under XLA), its out-of-grid taps weigh 0, so the pair
    adds nothing.
    """
    size = end - start
    half_texel = size / (2.0 * sprite_size)
    lo = tf.math.floor(start - half_texel - 0.5) + 1.0
    hi = tf.math.ceil(end + half_texel - 0.5)  # exclusive

    def above(r):  # u(r) > -1
        return _sprite_coordinate(r, start, size, sprite_size) > -1.0

    def below(r):  # u(r) < n
        return _sprite_coordinate(r, start, size, sprite_size) < sprite_size

    lo = tf.where(above(lo - 1.0), lo - 1.0, tf.where(above(lo), lo, lo + 1.0))
    hi = tf.where(below(hi), hi + 1.0, tf.where(below(hi - 1.0), hi, hi - 1.0))
    # Clip in floating point before the integer cast (boxes may be far outside the image); invalid
    # boxes (NaN/inf, empty, inverted) get an empty range.
    lo = tf.where(valid, tf.clip_by_value(lo, 0.0, image_size), tf.zeros_like(lo))
    hi = tf.where(valid, tf.clip_by_value(hi, 0.0, image_size), tf.zeros_like(hi))
    lo, hi = tf.cast(lo, tf.int32), tf.cast(hi, tf.int32)
    return lo, tf.maximum(hi - lo, 0)


def _sample_pairs(background, appearance, boxes, texel_maps, max_box_size=None):
    """The (object, pixel) pairs of both renderers and the sprites' values there.

    Enumerates, per object, the pixels its box CONTAINS (the box plus its half-texel fringe): the exact
    ragged list (`max_box_size` None) or a static window per object (the XLA path, `max_box_size` =
    (height, width) in pixels, inf allowed). Reads `texel_maps` (`[B, K, h, w, D]`, D summed over the
    maps) bilinearly at the pixel centres, zero-padded.

    Returns a dict: "obj" `[P]` (flat object index b·K + k), "pixel" `[P]` (flat pixel index b·H·W + r·W + c;
    the window path's pairs outside their object's rectangle point at the extra index B·H·W), "sample"
    `[P, D]`, "coverage" `[P, 1]` (the in-grid weight W), "windowed" (bool), "num_pixels", "background"
    `[B·H·W, C]`, "shape" (the background's shape).
    """
    dtype = background.dtype
    bg_shape = tf.shape(background, out_type=_INDEX)
    batch, height, width, channels = bg_shape[0], bg_shape[1], bg_shape[2], bg_shape[3]
    sprite_shape = tf.shape(appearance, out_type=_INDEX)
    num_slots, sprite_h, sprite_w = sprite_shape[1], sprite_shape[2], sprite_shape[3]
    num_objects = batch * num_slots
    height_f, width_f = tf.cast(height, dtype), tf.cast(width, dtype)
    sprite_h_f, sprite_w_f = tf.cast(sprite_h, dtype), tf.cast(sprite_w, dtype)

    top, left, box_h, box_w, row0, num_rows, col0, num_cols = _object_rectangles(
        tf.reshape(boxes, [num_objects, 4]), height_f, width_f, sprite_h_f, sprite_w_f)

    # The (object, pixel) pairs: pair p writes object obj[p] into pixel (rows[p], cols[p]).
    if max_box_size is None:
        obj, rows, cols = _ragged_pairs(row0, num_rows, col0, num_cols)
        kept = None
    else:
        window = [tf.cast(tf.minimum(tf.floor(bound * (1.0 + 1.0 / n)) + 2.0, image), _INDEX)
                  for bound, n, image in zip(max_box_size, (sprite_h_f, sprite_w_f), (height_f, width_f))]
        obj, rows, cols, kept = _window_pairs(row0, num_rows, col0, num_cols, window)

    u = _sprite_coordinate(tf.cast(rows, dtype), tf.gather(top, obj), tf.gather(box_h, obj), sprite_h_f)
    v = _sprite_coordinate(tf.cast(cols, dtype), tf.gather(left, obj), tf.gather(box_w, obj), sprite_w_f)
    stacked = tf.concat(texel_maps, axis=-1)  # [B, K, h, w, D]
    texels = tf.reshape(stacked, tf.stack([-1, tf.shape(stacked, out_type=_INDEX)[-1]]))  # [B*K*h*w, D]
    sample, coverage = _bilinear_zero_padded(texels, obj, u, v, sprite_h, sprite_w)
    num_pixels = batch * height * width
    pixel = (obj // num_slots) * (height * width) + rows * width + cols
    if kept is not None:
        pixel = tf.where(kept, pixel, num_pixels)  # dropped pairs: an extra index, cut off after the sums
    return {"obj": obj, "pixel": pixel, "sample": sample, "coverage": coverage, "windowed": kept is not None,
            "num_pixels": num_pixels, "background": tf.reshape(background, tf.stack([num_pixels, channels])),
            "shape": bg_shape}


def _composite(pairs, contributions, blend):
    """Sums the pairs' `contributions` `[P, D]` into their pixels and blends them with the background
    (`blend(sums, background)`): only the covered pixels on the exact path, every pixel on the window path."""
    num_pixels, background = pairs["num_pixels"], pairs["background"]
    if pairs["windowed"]:
        sums = tf.math.unsorted_segment_sum(contributions, pairs["pixel"], num_segments=num_pixels + 1)[:-1]
        output = blend(sums, background)
    else:
        output = _blend_covered(contributions, pairs["pixel"], background, num_pixels, blend)
    return tf.reshape(output, pairs["shape"])


def _render(background, appearance, alpha, boxes, z_pres, z_depth, importance="seed", max_box_size=None,
            method="pairs"):
    """Algorithm 1 on validated tensors of one float dtype (see the module docstring).

    `importance` is "seed" or "original". `method` "pairs": `max_box_size` None enumerates the exact
    ragged pair list, else (height, width) in pixels (floats, inf allowed) bounds every box and gives each
    object a static window of pairs (the XLA path); "dense": every object at every pixel (`_render_dense`).
    """
    # The sprites' values at the pixel centres: colour S (zero-padded), alpha, in-grid weight W and,
    # for the original importance, the importance map (zero-padded).
    maps = [appearance, alpha]
    if importance == "original":
        depth_factor = ORIGINAL_DEPTH_SCALE * tf.sigmoid(tf.clip_by_value(z_depth, -10.0, 10.0))
        maps.append(tf.maximum(alpha * (z_pres * depth_factor)[:, :, None, None, None], ORIGINAL_IMPORTANCE_FLOOR))
    if method == "dense":
        return _render_dense(background, appearance, boxes, maps, z_pres, z_depth, importance)
    return _render_pairs(background, appearance, boxes, maps, z_pres, z_depth, importance, max_box_size)


def _contributions(rgb, alpha_sample, coverage, gamma_sample, z_pres, depth_weight):
    """The per-(object, pixel) terms Algorithm 1 sums, `[P, C + 2]`:
    [gamma' alpha' S (C), gamma' (1 - alpha' W) (1), gamma' (1)]. `rgb` is S, `alpha_sample` the
    interpolated alpha, `coverage` W, `gamma_sample` the interpolated importance map ("original") or None
    (seed: gamma' = alpha' sigmoid(-z_depth), `depth_weight`); `z_pres`, `depth_weight` broadcast per object."""
    # alpha' = INTERPOLATE(alpha * z_pres); gamma' = INTERPOLATE(importance): for the seed's importance
    # alpha * z_pres * sigmoid(-z_depth) that is alpha' * sigmoid(-z_depth) (interpolation is linear).
    alpha_p = alpha_sample * z_pres
    gamma_p = alpha_p * depth_weight if gamma_sample is None else gamma_sample
    # o' = S + (1 - W) bg (background padding), so alpha' o' + (1 - alpha' W) bg = alpha' S +
    # (1 - alpha' W) bg. Accumulate [sum gamma' alpha' S, sum gamma' (1 - alpha' W), sum gamma'].
    return tf.concat([gamma_p * alpha_p * rgb, gamma_p * (1.0 - alpha_p * coverage), gamma_p], axis=1)


def _render_pairs(background, appearance, boxes, maps, z_pres, z_depth, importance, max_box_size):
    """Algorithm 1 over the (object, pixel) pairs: the ragged list, or static windows (`max_box_size`)."""
    channels = tf.shape(background, out_type=_INDEX)[3]
    pairs = _sample_pairs(background, appearance, boxes, maps, max_box_size)
    obj, sample, coverage = pairs["obj"], pairs["sample"], pairs["coverage"]
    rgb, alpha_sample = sample[:, :channels], sample[:, channels : channels + 1]
    gamma_sample = sample[:, -1:] if importance == "original" else None
    contributions = _contributions(rgb, alpha_sample, coverage, gamma_sample,
                                   tf.gather(tf.reshape(z_pres, [-1]), obj)[:, None],
                                   tf.gather(tf.sigmoid(-tf.reshape(z_depth, [-1])), obj)[:, None])
    return _composite(pairs, contributions, _blend)


def _render_dense(background, appearance, boxes, maps, z_pres, z_depth, importance):
    """Algorithm 1 with every object evaluated at every pixel (no gathers or scatters; module docstring,
    "Dense path"). Same values as the pair path, summed in another order."""
    dtype = background.dtype
    shape = tf.shape(background, out_type=_INDEX)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    sprite_shape = tf.shape(appearance, out_type=_INDEX)
    num_slots, sprite_h, sprite_w = sprite_shape[1], sprite_shape[2], sprite_shape[3]
    num_objects = batch * num_slots
    top, left, box_h, box_w, row0, num_rows, col0, num_cols = _object_rectangles(
        tf.reshape(boxes, [num_objects, 4]), tf.cast(height, dtype), tf.cast(width, dtype), tf.cast(sprite_h, dtype),
        tf.cast(sprite_w, dtype))
    rows_w = _axis_weights(height, top, box_h, sprite_h, row0, num_rows)  # [N, H, h]
    cols_w = _axis_weights(width, left, box_w, sprite_w, col0, num_cols)  # [N, W, w]

    # The maps' values at the pixel centres, map channel first: [D, N, h, w] -> [D, N, H, w] -> [D, N, H, W].
    stacked = tf.concat(maps, axis=-1)  # [B, K, h, w, D]
    depth = channels + len(maps) - 1  # colour, alpha (and the original importance)
    texels = tf.transpose(tf.reshape(stacked, tf.stack([num_objects, sprite_h, sprite_w, depth])), [3, 0, 1, 2])
    # The interpolation matrices are tiled over D rather than broadcast: the gradient of a broadcasting batch
    # matmul corrupted the heap on TF 2.21's oneDNN CPU build when B·K = 1 (reproduced in isolation).
    tiles = tf.stack([depth, 1, 1, 1])
    sample = tf.matmul(tf.matmul(tf.tile(rows_w[None], tiles), texels), tf.tile(cols_w[None], tiles), transpose_b=True)
    coverage = tf.reduce_sum(rows_w, axis=2)[:, :, None] * tf.reduce_sum(cols_w, axis=2)[:, None, :]  # W, [N, H, W]
    # Split along the first axis: contiguous blocks.
    if importance == "original":
        rgb, alpha_sample, gamma_sample = tf.split(sample, tf.stack([channels, 1, 1]), axis=0)
        gamma_sample = gamma_sample[0]
    else:
        rgb, alpha_sample = tf.split(sample, tf.stack([channels, 1]), axis=0)
    alpha_sample = alpha_sample[0]  # [N, H, W]

    # The per-(object, pixel) terms of _contributions, with the per-object factors moved out of the
    # products and applied by the sums over the objects (matrix products, `weighted_sum`):
    # seed: gamma' = s alpha' with alpha' = z_pres a (a = interpolated alpha, s = sigmoid(-z_depth)), so
    #   sum gamma' alpha' S = sum (s z_pres^2) a^2 S, sum gamma' = sum (s z_pres) a,
    #   sum gamma' (1 - alpha' W) = sum gamma' - sum (s z_pres^2) a^2 W;
    # original: gamma' = g (interpolated importance map): sum g alpha' S = sum z_pres (g a) S, sum gamma' = sum g,
    #   sum gamma' (1 - alpha' W) = sum g - sum z_pres (g a) W.
    z_pres = tf.reshape(z_pres, tf.stack([batch, num_slots]))
    if importance == "original":
        product, importance_sample = gamma_sample * alpha_sample, gamma_sample
        product_weight, importance_weight = z_pres, tf.ones_like(z_pres)
    else:
        depth_weight = tf.sigmoid(-tf.reshape(z_depth, tf.stack([batch, num_slots])))
        product, importance_sample = alpha_sample * alpha_sample, alpha_sample
        product_weight, importance_weight = depth_weight * z_pres * z_pres, depth_weight * z_pres

    def weighted_sum(weights, values):  # sum_k weights[b, k] values[..., b·K + k, H, W] -> [..., B, H·W]
        weights = weights[:, None, :]  # [B, 1, K]
        if values.shape.rank == 4:  # [C, N, H, W]: tiled, not broadcast (above)
            weights = tf.tile(weights[None], tf.stack([tf.shape(values, out_type=_INDEX)[0], 1, 1, 1]))
        lead = tf.shape(values, out_type=_INDEX)[:-3]
        values = tf.reshape(values, tf.concat([lead, tf.stack([batch, num_slots, height * width])], 0))
        return tf.matmul(weights, values)[..., 0, :]

    object_sum = weighted_sum(product_weight, product * rgb)  # [C, B, H·W]
    normalizer = weighted_sum(importance_weight, importance_sample)  # [B, H·W]
    background_weight = normalizer - weighted_sum(product_weight, product * coverage)
    sums = tf.concat([object_sum, background_weight[None], normalizer[None]], axis=0)  # [C + 2, B, H·W]
    sums = tf.reshape(tf.transpose(sums, [1, 2, 0]), tf.stack([-1, channels + 2]))  # [B·H·W, C + 2]
    output = _blend(sums, tf.reshape(background, tf.stack([-1, channels])))
    return tf.reshape(output, shape)


def _axis_weights(size, start, extent, sprite_size, first, count):
    """The bilinear interpolation matrix along one axis, `[num_objects, size, sprite_size]`: entry
    `[k, r, i]` is the weight of texel `i` at pixel `r` for object k, with out-of-grid taps weighing 0 and
    every pixel outside the object's range `[first, first + count)` (CONTAINS) a zero row. Inside the range
    the coordinate is `_sprite_coordinate` of the same operands as on the pair path; outside it the
    operands are replaced by finite ones first, so the (zero) gradients stay finite."""
    dtype = start.dtype
    pixels = tf.range(size, dtype=_INDEX)[None, :]  # [1, size]
    inside = (pixels >= first[:, None]) & (pixels < (first + count)[:, None])  # [N, size]
    start = tf.where(inside, start[:, None], tf.zeros_like(start[:, None]))
    extent = tf.where(inside, extent[:, None], tf.ones_like(extent[:, None]))
    u = _sprite_coordinate(tf.cast(pixels, dtype), start, extent, tf.cast(sprite_size, dtype))
    u = tf.where(inside, u, tf.fill(tf.shape(u), tf.constant(-2.0, dtype)))  # outside: both taps off the grid
    u0f = tf.math.floor(u)
    du = (u - u0f)[:, :, None]
    u0 = tf.cast(u0f, _INDEX)
    # one_hot gives a zero row for an index outside [0, sprite_size): the zero padding.
    return (tf.one_hot(u0, sprite_size, dtype=dtype) * (1.0 - du)
            + tf.one_hot(u0 + 1, sprite_size, dtype=dtype) * du)


def _window_covers_image(background, appearance, bound):
    """Whether the XLA path's static window (`max_box_size` `bound`) is the whole image, known from the
    static shapes (False when a shape is unknown): the windows are then the dense path's K·H·W pairs."""
    height, width = background.shape[1], background.shape[2]
    sprite_h, sprite_w = appearance.shape[2], appearance.shape[3]
    if None in (height, width, sprite_h, sprite_w):
        return False
    return all(math.isinf(b) or math.floor(b * (1.0 + 1.0 / n)) + 2 >= image
               for b, n, image in zip(bound, (sprite_h, sprite_w), (height, width)))


def _render_softmax(background, appearance, alpha, boxes, z_pres, depth, inverse_temperature, max_box_size=None):
    """SILOT's softmax renderer on validated tensors of one float dtype (see `render_sprites_softmax`)."""
    channels = tf.shape(background, out_type=_INDEX)[3]
    pairs = _sample_pairs(background, appearance, boxes, [appearance, alpha], max_box_size)
    obj, sample, pixel = pairs["obj"], pairs["sample"], pairs["pixel"]
    beta_p, alpha_sample = sample[:, :channels], sample[:, channels : channels + 1]  # β′, ξ′ (zero-padded)
    alpha_p = alpha_sample * tf.gather(tf.reshape(z_pres, [-1]), obj)[:, None]  # α′ = INTERPOLATE(ξ·z_pres)
    logits = alpha_p * tf.gather(tf.reshape(depth, [-1]), obj)[:, None] * inverse_temperature  # γ′/λ, [P, 1]
    # Each pixel's largest logit is subtracted before the exponential (the softmax is unchanged by it).
    largest = tf.math.unsorted_segment_max(logits, pixel, num_segments=pairs["num_pixels"] + 1)
    weights = tf.exp(logits - tf.stop_gradient(tf.gather(largest, pixel)))  # [P, 1], the pixel's largest is 1
    return _composite(pairs, tf.concat([weights * alpha_p * beta_p, weights], axis=1), _softmax_blend)


def _softmax_blend(sums, background):
    """Per pixel: Σ e·α′β′ / Σ e, or the background where no pair wrote (Σ e = 0; a written pixel has Σ e >= 1)."""
    written = sums[:, -1:] > 0.0
    safe = tf.where(written, sums[:, -1:], tf.ones_like(sums[:, -1:]))
    return tf.where(written, sums[:, :-1] / safe, background)


def _object_rectangles(boxes, height_f, width_f, sprite_h_f, sprite_w_f):
    """Per object (`boxes` `[num_objects, 4]`): the box's top, left, height and width in pixels and the
    rectangle of pixels it CONTAINS (the box plus its half-texel fringe), as first row / number of rows
    and first column / number of columns (int32). A box with a non-finite coordinate or extent, or an
    empty or inverted one, contains no pixel; its top/left are set to 0 and its extent to 1, so that
    the window path's (dropped) pairs of it have finite coordinates and their zero gradients stay zero."""
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=1)
    boxes = tf.where(finite[:, None], boxes, tf.zeros_like(boxes))
    top, left = boxes[:, 0] * height_f, boxes[:, 1] * width_f
    bottom, right = boxes[:, 2] * height_f, boxes[:, 3] * width_f
    box_h, box_w = bottom - top, right - left
    valid = finite & (box_h > 0) & (box_w > 0) & tf.math.is_finite(box_h) & tf.math.is_finite(box_w)
    row0, num_rows = _pixel_range(top, bottom, sprite_h_f, height_f, valid)
    col0, num_cols = _pixel_range(left, right, sprite_w_f, width_f, valid)

    def where_valid(value, fallback):
        return tf.where(valid, value, fallback(value))

    top, left = where_valid(top, tf.zeros_like), where_valid(left, tf.zeros_like)
    box_h, box_w = where_valid(box_h, tf.ones_like), where_valid(box_w, tf.ones_like)
    return top, left, box_h, box_w, row0, num_rows, col0, num_cols


def _ragged_pairs(row0, num_rows, col0, num_cols):
    """Every object's pixel rectangle, listed: (obj, rows, cols), each `[P]` int32, P = sum of areas."""
    counts = num_rows * num_cols
    num_objects = tf.size(counts, out_type=_INDEX)
    obj = tf.repeat(tf.range(num_objects, dtype=_INDEX), counts)
    starts = tf.cumsum(counts, exclusive=True)
    local = tf.range(tf.size(obj, out_type=_INDEX), dtype=_INDEX) - tf.gather(starts, obj)
    pair_cols = tf.gather(num_cols, obj)
    return obj, tf.gather(row0, obj) + local // pair_cols, tf.gather(col0, obj) + local % pair_cols


def _window_pairs(row0, num_rows, col0, num_cols, window):
    """A static `window = (rows, cols)` of pairs per object, anchored at its rectangle's first pixel:
    (obj, rows, cols, kept), each `[num_objects * rows * cols]`; `kept` marks the pairs inside the
    object's rectangle (the others may lie outside the image)."""
    window_rows, window_cols = window
    num_objects = tf.size(row0, out_type=_INDEX)
    per_object = window_rows * window_cols
    obj = tf.repeat(tf.range(num_objects, dtype=_INDEX), per_object)
    local = tf.tile(tf.range(per_object, dtype=_INDEX), [num_objects])
    local_row, local_col = local // window_cols, local % window_cols
    kept = (local_row < tf.gather(num_rows, obj)) & (local_col < tf.gather(num_cols, obj))
    return obj, tf.gather(row0, obj) + local_row, tf.gather(col0, obj) + local_col, kept


def _bilinear_zero_padded(texels, obj, u, v, sprite_h, sprite_w):
    """Bilinear reads of `texels` (`[num_objects * h * w, D]`) at sprite coordinates (u, v) (`[P]`),
    taps outside the texel grid weighing 0. Returns (`[P, D]` samples, `[P, 1]` in-grid weight W)."""
    u0f, v0f = tf.math.floor(u), tf.math.floor(v)
    du, dv = u - u0f, v - v0f
    u0, v0 = tf.cast(u0f, _INDEX), tf.cast(v0f, _INDEX)
    u1, v1 = u0 + 1, v0 + 1
    zero = tf.zeros_like(du)

    def in_grid(index, size):  # inside the fringe only u0 = -1 and u1 = h can fail; test both bounds
        return (index >= 0) & (index < size)

    wu0, wu1 = tf.where(in_grid(u0, sprite_h), 1.0 - du, zero), tf.where(in_grid(u1, sprite_h), du, zero)
    wv0, wv1 = tf.where(in_grid(v0, sprite_w), 1.0 - dv, zero), tf.where(in_grid(v1, sprite_w), dv, zero)
    coverage = ((wu0 + wu1) * (wv0 + wv1))[:, None]

    # One gather of the four taps (indices clamped; clamped taps weigh 0).
    u0c, u1c = tf.clip_by_value(u0, 0, sprite_h - 1), tf.clip_by_value(u1, 0, sprite_h - 1)
    v0c, v1c = tf.clip_by_value(v0, 0, sprite_w - 1), tf.clip_by_value(v1, 0, sprite_w - 1)
    base = obj * (sprite_h * sprite_w)
    taps = tf.stack([base + u0c * sprite_w + v0c, base + u0c * sprite_w + v1c,
                     base + u1c * sprite_w + v0c, base + u1c * sprite_w + v1c], axis=1)
    t00, t01, t10, t11 = tf.unstack(tf.gather(texels, taps), num=4, axis=1)
    wu0, wu1, wv0, wv1 = wu0[:, None], wu1[:, None], wv0[:, None], wv1[:, None]
    return (t00 * wv0 + t01 * wv1) * wu0 + (t10 * wv0 + t11 * wv1) * wu1, coverage


def _blend(sums, background):
    """Per pixel: (sum gamma' alpha' S + bg * sum gamma' (1 - alpha' W)) / sum gamma', or the background
    where the normaliser is 0. `sums` `[P, C + 2]`, `background` `[P, C]`. The inner tf.where keeps the
    unused branch (and so the gradients) finite."""
    object_sum, background_weight, normalizer = sums[:, :-2], sums[:, -2:-1], sums[:, -1:]
    written = tf.not_equal(normalizer, 0.0)
    safe_normalizer = tf.where(written, normalizer, tf.ones_like(normalizer))
    blended = (object_sum + background * background_weight) / safe_normalizer
    return tf.where(written, blended, background)


def _blend_covered(contributions, pixel, background, num_pixels, blend):
    """Accumulates the pairs into their pixels and blends only the covered pixels (one representative
    pair per pixel, its first, picks them), written into a copy of the `[num_pixels, C]` background."""
    sums = tf.math.unsorted_segment_sum(contributions, pixel, num_segments=num_pixels)
    pair_id = tf.range(tf.size(pixel, out_type=_INDEX), dtype=_INDEX)
    first_pair = tf.math.unsorted_segment_min(pair_id, pixel, num_segments=num_pixels)
    covered = tf.boolean_mask(pixel, tf.equal(tf.gather(first_pair, pixel), pair_id))  # unique pixels
    blended = blend(tf.gather(sums, covered), tf.gather(background, covered))
    return tf.tensor_scatter_nd_update(background, covered[:, None], blended)


def _make_render_function(dtype: tf.DType, importance: str, method: str):
    signature = [tf.TensorSpec([None] * len(layout), dtype, name=arg_name) for arg_name, layout in _LAYOUTS]

    def render(*args):
        with tf.name_scope("render_sprites"):  # inside the function body, so profiles can attribute its ops
            return _render(*args, importance=importance, method=method)

    return tf.function(render, input_signature=signature, autograph=False)


_RENDER_FUNCTIONS = {(dtype, importance, method): _make_render_function(dtype, importance, method)
                     for dtype in (tf.float32, tf.float64) for importance in IMPORTANCE_MODES
                     for method in ("pairs", "dense")}


def _make_softmax_function(dtype: tf.DType):
    signature = [tf.TensorSpec([None] * len(layout), dtype, name=arg_name) for arg_name, layout in _LAYOUTS]
    signature.append(tf.TensorSpec([], dtype, name="inverse_temperature"))
    return tf.function(_render_softmax, input_signature=signature, autograph=False)


_SOFTMAX_FUNCTIONS = {dtype: _make_softmax_function(dtype) for dtype in (tf.float32, tf.float64)}


@keras.saving.register_keras_serializable(package="tfobj")
class RenderSprites(keras.layers.Layer):
    """Keras layer for `render_sprites`: `layer(background, appearance, alpha, boxes, z_pres, z_depth)`.

    The layer does not autocast its inputs (boxes in float16 would lose sub-pixel precision); the
    renderer computes in float32 and the layer returns its `compute_dtype` (float16 under
    `mixed_float16`). It has no weights. `importance` and `max_box_size` are `render_sprites`'.
    """

    def __init__(self, importance: str = "seed", max_box_size: tuple[float, float] | None = None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        _check_options(importance, max_box_size)
        self.importance = importance
        self.max_box_size = None if max_box_size is None else tuple(float(b) for b in max_box_size)

    def call(self, background, appearance, alpha, boxes, z_pres, z_depth):
        output = render_sprites(background, appearance, alpha, boxes, z_pres, z_depth, importance=self.importance,
                                max_box_size=self.max_box_size)
        return tf.cast(output, self.compute_dtype)

    def compute_output_shape(self, background_shape, *unused_shapes):
        return tuple(background_shape)

    def get_config(self):
        return {**super().get_config(), "importance": self.importance, "max_box_size": self.max_box_size}
