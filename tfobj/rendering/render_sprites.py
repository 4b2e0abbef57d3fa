"""SPAIR's differentiable sprite renderer (Crawford & Pineau, AAAI 2019, supplement C, Algorithm 1).

Every object k of image b has an appearance map `o` (`[h, w, C]`), an alpha map `alpha` (`[h, w, 1]`),
a box, a presence `z_pres` in [0, 1] and a real relative depth `z_depth`. Algorithm 1 first forms the
transparency `alpha~ = alpha * z_pres` and the importance `gamma = alpha * z_pres * sigmoid(-z_depth)`,
then, for every output pixel `(y, x)` and every object whose box CONTAINS the pixel::

    alpha' = INTERPOLATE(alpha~), gamma' = INTERPOLATE(gamma), o' = INTERPOLATE(o)
    o' <- alpha' * o' + (1 - alpha') * background[y, x]
    weighted_sum += gamma' * o';  normalizer += gamma';  n_writes += 1

and the pixel is `weighted_sum / normalizer` if `n_writes > 0`, else the background.

Conventions (the paper is silent on them; these are tfobj's, see docs/conventions.md):

* Pixel `(r, c)` has its centre at `(r + 0.5, c + 0.5)` in pixel units; a normalised box
  `(y_min, x_min, y_max, x_max)` is `(y_min * H, x_min * W, y_max * H, x_max * W)` in pixels.
* CONTAINS: the pixel centre lies in the half-open box `[y_min*H, y_max*H) x [x_min*W, x_max*W)`. So the
  rows an object touches are the integers `r` with `ceil(y_min*H - 0.5) <= r < ceil(y_max*H - 0.5)`
  (clipped to the image), and likewise for columns. Boxes with zero or negative height or width
  contain no pixel; boxes may extend beyond, or lie entirely outside, the image. A box with a NaN or
  infinite coordinate contains no pixel (NaN comparisons are false; an infinite box would give NaN
  sprite coordinates), and its gradient is zero.
* INTERPOLATE: the sprite's `h x w` texels tile the box (align_corners=False, half-pixel centres, the
  convention of `tf.image.resize(..., "bilinear")`). The pixel centre `y_c` maps to the sprite row
  coordinate `u = (y_c - y_min*H) / ((y_max - y_min) * H) * h - 0.5` (texel `i` is centred at `u = i`),
  likewise `v` for columns, and the map is read by bilinear interpolation with `u`, `v` clamped to
  `[0, h-1] x [0, w-1]` (edge replicate), so an opaque sprite covers its whole box.
* Empty normaliser: a pixel that no box contains, or whose covering objects all have `gamma' = 0`
  (e.g. all `z_pres = 0`, or alpha 0 there), is the background exactly. (Algorithm 1 would give 0/0
  in the second case; the background is also the limit of the formula as `gamma' -> 0`.) Division uses
  the double-`tf.where` pattern, so gradients are finite there too. (`n_writes` itself is not
  counted: `n_writes = 0` implies `normalizer = 0`, which already selects the background.)

Implementation: the (object, pixel) pairs are enumerated directly (ragged ranges over each object's
clipped pixel rectangle), the sprites are read by a 4-tap bilinear gather, and
`tf.math.unsorted_segment_sum` accumulates into the pixels. The division and blend run only on the
covered pixels (one representative pair per pixel, found with `unsorted_segment_min`), which are then
written into a copy of the background with `tf.tensor_scatter_nd_update`. The arithmetic therefore
grows with `sum_k (area of box k in pixels, clipped to the image)`, not with `K * H * W`; what
remains proportional to the image is zero-filling two `[B*H*W]`-row accumulators and copying the
background (memory traffic, no per-pixel arithmetic). Because `o' = bg + alpha' * (o - bg)`, the
accumulation uses the algebraically equal `weighted_sum = sum(gamma' alpha' o) + bg * sum(gamma'
(1 - alpha'))`, so the background is not gathered per pair. Since `z_pres` and `sigmoid(-z_depth)` are
per-object scalars and interpolation is linear, `INTERPOLATE(alpha~) = z_pres * INTERPOLATE(alpha)`
and `INTERPOLATE(gamma) = sigmoid(-z_depth) * INTERPOLATE(alpha~)`; the alpha map is therefore
interpolated once.

Gradients flow to the background, appearance, alpha, z_pres, z_depth and to the boxes (through the
bilinear coordinates `u, v`; which pixels a box contains is piecewise constant in the box).

Dtypes: everything is computed in float32 (also under a mixed-precision policy: float16 / bfloat16
inputs are cast up, so the normalisation is in float32) and the result is cast back to the
background's dtype. float64 inputs (background float64) are computed in float64 throughout, which
the tests use for tight finite-difference checks.

Limits: pixel and pair indices are int32, so `B*H*W` and the number of (object, pixel) pairs must stay
below 2**31.

XLA: the function runs under `tf.function(jit_compile=True)` (forward and gradient, same results), but
XLA needs static shapes, so TensorFlow treats the data-dependent sizes (the pair count, derived from
the box values) as compile-time constants and compiles a new XLA program for every new set of box
pixel ranges (1-5 s each on a 2-core CPU). That is correct but useless for training, where the boxes change
every step: call the renderer without `jit_compile` (the default). A static pair budget would be needed
to make it XLA-friendly; see benchmarks/render_sprites.py.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["render_sprites", "RenderSprites"]

# (argument name, layout) for the static shape checks; an int is a fixed size.
_LAYOUTS = (
    ("background", ("B", "H", "W", "C")),
    ("appearance", ("B", "K", "h", "w", "C")),
    ("alpha", ("B", "K", "h", "w", 1)),
    ("boxes", ("B", "K", 4)),
    ("z_pres", ("B", "K")),
    ("z_depth", ("B", "K")),
)


def render_sprites(background, appearance, alpha, boxes, z_pres, z_depth, name: str | None = None) -> tf.Tensor:
    """Renders sprites over a background with SPAIR's Algorithm 1 (see the module docstring).

    Args:
      background: `[B, H, W, C]` background image.
      appearance: `[B, K, h, w, C]` object appearance maps `o`.
      alpha: `[B, K, h, w, 1]` object alpha maps, in [0, 1].
      boxes: `[B, K, 4]` normalised boxes `(y_min, x_min, y_max, x_max)` (the `tf.image` format);
        coordinates may lie outside [0, 1]; empty or inverted boxes render nothing.
      z_pres: `[B, K]` presence in [0, 1] (0 for padding objects).
      z_depth: `[B, K]` real relative depth; lower depth = more importance = in front.
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
        output = _RENDER_FUNCTIONS[compute_dtype](*cast)
        return tf.cast(output, out_dtype)


def _check_shapes(args) -> None:
    """Checks static ranks and the consistency of every known dimension; raises ValueError."""
    for arg_name, layout in _LAYOUTS:
        shape = args[arg_name].shape
        if shape.rank is not None and shape.rank != len(layout):
            raise ValueError(
                f"render_sprites: `{arg_name}` must have rank {len(layout)} with layout [{', '.join(map(str, layout))}]; "
                f"got shape {_fmt(shape)} (rank {shape.rank})"
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
                    f"render_sprites: `{arg_name}` has shape {_fmt(shape)} but expected "
                    f"[{', '.join(map(str, expected_shape))}] (layout [{', '.join(map(str, layout))}]; "
                    f"axis {axis}: {why})"
                )
            if not isinstance(symbol, int):
                bound.setdefault(symbol, (size, arg_name))
    for symbol in ("h", "w"):
        if symbol in bound and bound[symbol][0] == 0:
            raise ValueError(f"render_sprites: sprite size {symbol} must be positive; got 0 from `{bound[symbol][1]}`")


def _fmt(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape.as_list()) + "]"


def _render(background, appearance, alpha, boxes, z_pres, z_depth):
    """Algorithm 1 on validated tensors of one float dtype (see the module docstring)."""
    dtype = background.dtype
    index_dtype = tf.int32
    bg_shape = tf.shape(background, out_type=index_dtype)
    batch, height, width, channels = bg_shape[0], bg_shape[1], bg_shape[2], bg_shape[3]
    sprite_shape = tf.shape(appearance, out_type=index_dtype)
    num_slots, sprite_h, sprite_w = sprite_shape[1], sprite_shape[2], sprite_shape[3]
    num_objects = batch * num_slots
    height_f, width_f = tf.cast(height, dtype), tf.cast(width, dtype)

    # Per object: the box in pixels and the rectangle of pixel indices whose centres it contains.
    # A box with a non-finite coordinate renders nothing (it would give NaN sprite coordinates).
    boxes = tf.reshape(boxes, [num_objects, 4])
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=1)
    boxes = tf.where(finite[:, None], boxes, tf.zeros_like(boxes))
    top, left = boxes[:, 0] * height_f, boxes[:, 1] * width_f
    bottom, right = boxes[:, 2] * height_f, boxes[:, 3] * width_f
    box_h, box_w = bottom - top, right - left

    def pixel_range(start, end, size_f):
        # Integer c with centre c + 0.5 in [start, end)  <=>  ceil(start - 0.5) <= c < ceil(end - 0.5).
        # Clip in floating point before the integer cast (boxes may be far outside the image).
        lo = tf.cast(tf.clip_by_value(tf.math.ceil(start - 0.5), 0.0, size_f), index_dtype)
        hi = tf.cast(tf.clip_by_value(tf.math.ceil(end - 0.5), 0.0, size_f), index_dtype)
        return lo, tf.maximum(hi - lo, 0)

    row0, num_rows = pixel_range(top, bottom, height_f)
    col0, num_cols = pixel_range(left, right, width_f)
    counts = num_rows * num_cols  # zero for empty/inverted boxes, boxes outside the image, non-finite boxes

    # Enumerate the (object, pixel) pairs: pair p belongs to object obj[p] and is its local-th pixel.
    obj = tf.repeat(tf.range(num_objects, dtype=index_dtype), counts)
    starts = tf.cumsum(counts, exclusive=True)
    local = tf.range(tf.size(obj, out_type=index_dtype), dtype=index_dtype) - tf.gather(starts, obj)
    pair_cols = tf.gather(num_cols, obj)
    rows = tf.gather(row0, obj) + local // pair_cols
    cols = tf.gather(col0, obj) + local % pair_cols

    # Sprite coordinates of the pixel centres (differentiable in the boxes), clamped to the texel grid.
    sprite_h_f, sprite_w_f = tf.cast(sprite_h, dtype), tf.cast(sprite_w, dtype)
    u = (tf.cast(rows, dtype) + 0.5 - tf.gather(top, obj)) / tf.gather(box_h, obj) * sprite_h_f - 0.5
    v = (tf.cast(cols, dtype) + 0.5 - tf.gather(left, obj)) / tf.gather(box_w, obj) * sprite_w_f - 0.5
    u = tf.clip_by_value(u, 0.0, sprite_h_f - 1.0)
    v = tf.clip_by_value(v, 0.0, sprite_w_f - 1.0)
    u0f, v0f = tf.math.floor(u), tf.math.floor(v)
    du, dv = (u - u0f)[:, None], (v - v0f)[:, None]
    u0, v0 = tf.cast(u0f, index_dtype), tf.cast(v0f, index_dtype)
    u1, v1 = tf.minimum(u0 + 1, sprite_h - 1), tf.minimum(v0 + 1, sprite_w - 1)

    # Bilinear read of [appearance, alpha] with one gather of the four taps.
    texels = tf.reshape(tf.concat([appearance, alpha], axis=-1), [-1, channels + 1])
    base = obj * (sprite_h * sprite_w)
    taps = tf.stack([base + u0 * sprite_w + v0, base + u0 * sprite_w + v1, base + u1 * sprite_w + v0, base + u1 * sprite_w + v1], axis=1)
    t00, t01, t10, t11 = tf.unstack(tf.gather(texels, taps), num=4, axis=1)
    sample = (t00 * (1.0 - dv) + t01 * dv) * (1.0 - du) + (t10 * (1.0 - dv) + t11 * dv) * du
    rgb, alpha_sample = sample[:, :-1], sample[:, -1:]

    # alpha' = INTERPOLATE(alpha * z_pres), gamma' = INTERPOLATE(alpha * z_pres * sigmoid(-z_depth)).
    alpha_p = alpha_sample * tf.gather(tf.reshape(z_pres, [-1]), obj)[:, None]
    gamma_p = alpha_p * tf.gather(tf.sigmoid(-tf.reshape(z_depth, [-1])), obj)[:, None]

    # Accumulate [sum gamma' alpha' o, sum gamma' (1 - alpha'), sum gamma'] per pixel.
    num_pixels = batch * height * width
    pixel = (obj // num_slots) * (height * width) + rows * width + cols
    contributions = tf.concat([gamma_p * alpha_p * rgb, gamma_p * (1.0 - alpha_p), gamma_p], axis=1)
    sums = tf.math.unsorted_segment_sum(contributions, pixel, num_segments=num_pixels)

    # Blend only the covered pixels: one representative pair per pixel (its first pair) picks them.
    pair_id = tf.range(tf.size(pixel, out_type=index_dtype), dtype=index_dtype)
    first_pair = tf.math.unsorted_segment_min(pair_id, pixel, num_segments=num_pixels)
    covered = tf.boolean_mask(pixel, tf.equal(tf.gather(first_pair, pixel), pair_id))  # unique pixels
    background = tf.reshape(background, tf.stack([num_pixels, channels]))
    sums, pixel_background = tf.gather(sums, covered), tf.gather(background, covered)
    object_sum, background_weight, normalizer = sums[:, :-2], sums[:, -2:-1], sums[:, -1:]

    # weighted_sum / normalizer where the normaliser is non-zero, else the background; the inner
    # tf.where keeps the unused branch (and so the gradients) finite.
    written = tf.not_equal(normalizer, 0.0)
    safe_normalizer = tf.where(written, normalizer, tf.ones_like(normalizer))
    blended = (object_sum + pixel_background * background_weight) / safe_normalizer
    blended = tf.where(written, blended, pixel_background)
    output = tf.tensor_scatter_nd_update(background, covered[:, None], blended)
    return tf.reshape(output, bg_shape)


def _make_render_function(dtype: tf.DType):
    signature = [tf.TensorSpec([None] * len(layout), dtype, name=arg_name) for arg_name, layout in _LAYOUTS]
    return tf.function(_render, input_signature=signature, autograph=False)


_RENDER_FUNCTIONS = {tf.float32: _make_render_function(tf.float32), tf.float64: _make_render_function(tf.float64)}


class RenderSprites(keras.layers.Layer):
    """Keras layer for `render_sprites`: `layer(background, appearance, alpha, boxes, z_pres, z_depth)`.

    The layer does not autocast its inputs (boxes in float16 would lose sub-pixel precision); the
    renderer computes in float32 and the layer returns its `compute_dtype` (float16 under
    `mixed_float16`). It has no weights.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def call(self, background, appearance, alpha, boxes, z_pres, z_depth):
        output = render_sprites(background, appearance, alpha, boxes, z_pres, z_depth)
        return tf.cast(output, self.compute_dtype)

    def compute_output_shape(self, background_shape, *unused_shapes):
        return tuple(background_shape)

    def get_config(self):
        return super().get_config()
