"""LAVAE's generative placement (eq. 4), Bernoulli mean (eq. 12), count inference f_count and relaxed location
sampling (eq. 11 with Gumbel-softmax), pure functions (Dittadi & Winther 2019, section 2 and appendix B).

Shapes: B batch, M maximum number of objects (the padded object axis; the paper's M = 10), H, W the canvas,
D = H·W locations in raster order (index d = row·W + col, as `location.py`), s_h × s_w a sprite (the paper's
17 × 17 for multi-MNIST, 21 × 21 for multi-dSprites), C channels. Entries of the object axis at index ≥ n
(`num_objects`) are padding and are never read.

Choices where the paper is silent (no public code exists; each is tfobj's, with its reason):

* Sprite centring. Eq. (4) convolves the sprite with the one-hot location; a discrete convolution needs an
  origin for the kernel. tfobj puts sprite pixel (k_h, k_w) = ((s_h − 1) // 2, (s_w − 1) // 2) on the location
  pixel, i.e. sprite pixel (u, v) lands on image pixel (row − k_h + u, col − k_w + v). For odd sizes (all of the
  paper's) that is the middle pixel, so the location is the object's centre, as the data sets' `centres`
  (`tfobj/data/multi_object.py`: the middle pixel of an odd patch is the location). For even sizes it is the
  pixel above-left of the centre, which is exactly `scipy.signal.convolve2d(one_hot, sprite, mode="same")`, the
  textbook "same" discrete convolution (so the hard and relaxed placements agree with it for every size).
* Border. Sprite pixels that fall outside the H × W canvas are dropped (the canvas is not padded and nothing
  wraps or clamps), as a "same" convolution does; locations anywhere (even outside the canvas) are accepted and
  contribute only their in-canvas pixels.
* Overlaps and the Bernoulli mean. The paper takes λ itself, the *sum* of the placed sprites, as the pixel-wise
  Bernoulli mean (eq. 12: "the parameter vector λ defined in Section 2 is the pixel-wise mean"; appendix B:
  "the mean of the Bernoulli output is then computed from these sprites as explained above"); no squashing is
  mentioned. A sum of sigmoid sprites lies in [0, 1) wherever at most one sprite covers a pixel, and stays there
  where only faint margins overlap (the paper's objects never overlap; 17 × 17 sprites around 15 × 15 digits
  can meet only in their margins), but exceeds 1 where bright parts of two sprites overlap, and is exactly 0
  where no sprite reaches. `bernoulli_mean` therefore keeps the sum and only makes it a valid,
  log-safe probability: ε + (1 − 2ε)·clip(λ, 0, 1), ε = 1e-6. It equals the paper's mean up to ε wherever the
  paper's is a probability (the bias of a log-likelihood is ≤ 2ε per term: ≤ 0.025 nats for the 3·64·64 terms
  of multi-dSprites, far below Table 1's ±1); the affine squeeze (rather than clipping to [ε, 1 − ε]) keeps the
  gradient where a sprite pixel is ~0 under an inked pixel. Where λ > 1 the value is 1 − ε and the gradient
  through that pixel is 0 (a known limit, stated: nothing in that pixel pushes the overlapping sprites apart;
  the non-overlapping pixels still do). Rejected alternatives: noisy-OR 1 − Π(1 − sprite_i) changes the value
  also where the paper's sum is valid (a + b − ab for faint overlaps); a sigmoid/tanh squash of λ changes it
  everywhere.
* f_count's neighbourhood and ties (`count_objects`): a location is a local maximum if its logit equals the
  maximum over the 3 × 3 window centred on it (8 neighbours; positions outside the canvas do not take part,
  so border pixels can be maxima), and counts if its logit is strictly above 4γ. 3 × 3 is the smallest window
  that suppresses the immediate neighbours of a peak (a peak spread over adjacent pixels, with one highest
  pixel, counts once). The paper's objects are ≥ 15 pixels apart (Chebyshev distance between centres of
  non-overlapping 15 × 15 or 19 × 19 patches), so on a map with one peak per object every window up to
  29 × 29 gives the same count; the smallest one also separates objects that are closer than the data's
  spacing, so the count does not depend on it. Exactly equal neighbours above the threshold (a plateau) all
  count (the CenterNet-style `x == maxpool(x)` test); with real-valued logits that has probability zero. The
  window is an argument.
* Sampling without replacement (`sample_locations_gumbel`): appendix B's code-level description ("all the
  logits of the previously sampled location are set to a low value"): the *hard* location drawn at each step
  (argmax of logits + Gumbel noise, the Gumbel-max trick, so the hard draws follow eq. (11) exactly) gets the
  finite logit −1e9 (not −inf: after every location is drawn, which happens in padding steps when M > D, a
  softmax over all −inf would be NaN; a finite value gives a harmless, ignored draw). The relaxed one-hot of
  step i is softmax((masked logits + the same Gumbel noise) / τ).

Dtypes: all probability math in float32 (float16/bfloat16 inputs are cast up); float64 inputs of the
placements stay float64 (used by the tests' tight gradient checks).
"""
from __future__ import annotations

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfobj.models.lavae.location import check_num_objects_values

__all__ = [
    "MASKED_LOGIT",
    "bernoulli_mean",
    "count_objects",
    "logit_scale",
    "place_sprites",
    "place_sprites_soft",
    "sample_locations_gumbel",
]

MASKED_LOGIT = -1e9  # the "low value" given to drawn locations' logits (appendix B); see the module docstring
BERNOULLI_EPSILON = 1e-6  # bernoulli_mean's ε; see the module docstring
PAPER_GAMMA = 4.0  # appendix B: γ = 4 ≈ ½ log D at D = 64·64
PAPER_NUM_LOCATIONS = 64 * 64  # the 64 × 64 canvas of both data sets (section 3)


# --- argument checks ---------------------------------------------------------------------------------------


def _float_tensor(name: str, x, rank: int, layout: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a float tensor of shape {layout}; got dtype {x.dtype.name}")
    if x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {layout} (rank {rank}); got shape {x.shape}")
    return tf.cast(x, tf.float64 if x.dtype == tf.float64 else tf.float32)  # float32 math for 16-bit inputs


def _int_tensor(name: str, x, rank: int, layout: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_integer:
        raise ValueError(f"{name} must be an integer tensor of shape {layout}; got dtype {x.dtype.name}")
    if x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {layout} (rank {rank}); got shape {x.shape}")
    return tf.cast(x, tf.int32)


def _canvas_size(name: str, value):
    """A Python int ≥ 1 or a scalar integer tensor; returns (tensor, static value or None)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value}")
        return tf.constant(int(value), tf.int32), int(value)
    value = tf.convert_to_tensor(value)
    if not value.dtype.is_integer or value.shape.rank != 0:
        raise ValueError(f"{name} must be an integer >= 1 (python int or scalar integer tensor); got "
                         f"{value.dtype.name} tensor of shape {value.shape}")
    static = tf.get_static_value(value)
    if static is not None and static < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {int(static)}")
    return tf.cast(value, tf.int32), None if static is None else int(static)


def _check_batch(names_and_tensors):
    sizes = {t.shape[0] for _, t in names_and_tensors} - {None}
    if len(sizes) > 1:
        shapes = ", ".join(f"{name} {t.shape}" for name, t in names_and_tensors)
        raise ValueError(f"all arguments must have the same batch size B; got {shapes}")


def _check_positive(name: str, value):
    static = tf.get_static_value(tf.convert_to_tensor(value))
    if static is not None and not np.all(np.asarray(static) > 0):
        raise ValueError(f"{name} must be > 0; got {static!r}")


# --- eq. (4): placing sprites ---------------------------------------------------------------------------------


def _placement_args(sprites, locations_name, locations, locations_layout, num_objects, height, width):
    sprites = _float_tensor("sprites", sprites, 5, "[B, M, s_h, s_w, C]")
    num_objects = _int_tensor("num_objects", num_objects, 1, "[B]")
    height, static_h = _canvas_size("height", height)
    width, static_w = _canvas_size("width", width)
    _check_batch([("sprites", sprites), (locations_name, locations), ("num_objects", num_objects)])
    if None not in (sprites.shape[1], locations.shape[1]) and sprites.shape[1] != locations.shape[1]:
        raise ValueError(f"sprites [B, M, s_h, s_w, C] and {locations_name} {locations_layout} must have the same "
                         f"number of objects M; got shapes {sprites.shape} and {locations.shape}")
    check_num_objects_values(num_objects, sprites.shape[1] if sprites.shape[1] is not None else locations.shape[1],
                             None)
    return sprites, num_objects, height, width, static_h, static_w


def place_sprites(sprites, locations, num_objects, height, width) -> tf.Tensor:
    """λ = Σ_{i<n} sprite_i ⊛ one-hot(location_i) (eq. 4) by scattering each sprite's pixels.

    Sprite pixel (u, v) of object i lands on canvas pixel (row_i − k_h + u, col_i − k_w + v), k = (s − 1) // 2
    (the middle pixel for odd s; the module docstring explains even s); pixels outside the canvas are dropped.
    Overlapping sprites add up; see `bernoulli_mean` for turning λ into a pixel mean.

    Cost: one `unsorted_segment_sum` of the B·M·s_h·s_w·C sprite values, i.e. it grows with M × the sprite
    area, not with M × the canvas (the `[B·H·W, C]` accumulator is zero-filled once: memory traffic, no
    per-object arithmetic). Differentiable in `sprites` (the gradient of a sprite pixel is the canvas gradient
    where it landed, 0 where it was dropped); locations are integers and get none (the relaxed
    `place_sprites_soft` carries the gradient to the location logits).

    Args:
        sprites: float `[B, M, s_h, s_w, C]`, f_sprite(z_app^(i)) (any float dtype; 16-bit ones computed in
            float32, float64 stays float64). Entries i ≥ n are never read (they may hold anything, even NaN).
        locations: int32 (or int64) `[B, M, 2]`, z_loc^(i) as (row, col) pixel indices. Any integers (a sprite
            centred outside the canvas contributes its in-canvas pixels); entries i ≥ n are never read.
        num_objects: int32 (or int64) `[B]`, n with 0 ≤ n ≤ M.
        height, width: H, W ≥ 1, the canvas size (python ints or scalar integer tensors).

    Returns:
        float32 (float64 for float64 sprites) `[B, H, W, C]`: λ. All zeros for n = 0.

    Raises:
        ValueError: if an argument has the wrong dtype or rank, `locations`' last axis is not 2, batch sizes or M
            differ, H or W is not an integer ≥ 1, or (when known) some n is outside [0, M].

    References:
        Dittadi & Winther 2019, eq. (4) and appendix B.
    """
    locations = _int_tensor("locations", locations, 3, "[B, M, 2]")
    if locations.shape[2] is not None and locations.shape[2] != 2:
        raise ValueError(f"locations must have shape [B, M, 2] ((row, col) per object); got shape {locations.shape}")
    sprites, num_objects, height, width, _, _ = _placement_args(
        sprites, "locations", locations, "[B, M, 2]", num_objects, height, width)
    shape = tf.shape(sprites)
    batch, max_objects, sprite_h, sprite_w, channels = shape[0], shape[1], shape[2], shape[3], shape[4]
    rows = (locations[:, :, 0, None, None] - (sprite_h - 1) // 2
            + tf.range(sprite_h)[None, None, :, None])  # canvas row of sprite row u, [B, M, s_h, 1]
    cols = (locations[:, :, 1, None, None] - (sprite_w - 1) // 2
            + tf.range(sprite_w)[None, None, None, :])  # canvas col of sprite col v, [B, M, 1, s_w]
    active = tf.range(max_objects)[None, :] < num_objects[:, None]  # i < n, [B, M]
    inside = active[:, :, None, None] & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # [B, M, s_h, s_w]
    batch_index = tf.range(batch)[:, None, None, None]  # [B, 1, 1, 1]
    num_pixels = batch * height * width
    # Dropped pixels (outside the canvas, or objects i ≥ n) go to one extra segment that is then cut off, so
    # whatever they hold (even NaN) never reaches the canvas or the gradient. (An out-of-range pixel index may
    # wrap in int32; tf.where discards it.)
    segment = tf.where(inside, (batch_index * height + rows) * width + cols, num_pixels)  # [B, M, s_h, s_w]
    values = tf.reshape(sprites, tf.stack([-1, channels]))  # [B·M·s_h·s_w, C]
    sums = tf.math.unsorted_segment_sum(values, tf.reshape(segment, [-1]), num_pixels + 1)  # [B·H·W + 1, C]
    return tf.reshape(sums[:-1], tf.stack([batch, height, width, channels]))  # [B, H, W, C]


def place_sprites_soft(sprites, soft_locations, num_objects, height, width) -> tf.Tensor:
    """Relaxed eq. (4): λ = Σ_{i<n} sprite_i ⊛ y_i for soft one-hot location maps y_i (Gumbel-softmax samples).

    The 2-D discrete convolution of each sprite with its `[H, W]` map (the map's raster order is d = row·W +
    col), with the centring of `place_sprites`: a one-hot map at (row, col) gives exactly `place_sprites` with
    that location, and in general λ = Σ_i Σ_d y_i[d]·(sprite_i placed at d), a "same"-size convolution
    (`scipy.signal.convolve2d(y_i, sprite_i, mode="same")` per channel), pixels beyond the canvas dropped.
    Differentiable in `sprites` and `soft_locations` (this is how the reconstruction reaches h_loc).

    Cost: the soft map has mass everywhere, so this is a dense depthwise convolution, B·M·H·W·s_h·s_w·C
    multiply-adds (0.76 G for B = 64, M = 10, 64 × 64, 17 × 17, C = 1): it grows with the canvas area, unlike
    `place_sprites`. That is the price of the relaxation (a straight-through one-hot map costs the same, since
    the gradient w.r.t. the map is itself a dense correlation); an FFT convolution would be O(B·M·H·W·log(H·W))
    but loses accuracy on the ~0 entries of a low-temperature map.

    Args:
        sprites: float `[B, M, s_h, s_w, C]` (as `place_sprites`).
        soft_locations: float `[B, M, D]`, D = H·W, e.g. `sample_locations_gumbel`'s relaxed one-hots.
            Entries i ≥ n are never read (they may hold anything, even NaN).
        num_objects: int32 (or int64) `[B]`, n with 0 ≤ n ≤ M.
        height, width: H, W ≥ 1 with H·W = D.

    Returns:
        float32 (float64 if `sprites` is float64) `[B, H, W, C]`.

    Raises:
        ValueError: as `place_sprites`, and if D ≠ H·W (when both are known).

    References:
        Dittadi & Winther 2019, eq. (4) and section 2 ("We use the Gumbel-softmax relaxation ... for z_loc").
    """
    soft_locations = _float_tensor("soft_locations", soft_locations, 3, "[B, M, D]")
    sprites, num_objects, height, width, static_h, static_w = _placement_args(
        sprites, "soft_locations", soft_locations, "[B, M, D]", num_objects, height, width)
    static_d = soft_locations.shape[2]
    if None not in (static_h, static_w, static_d) and static_d != static_h * static_w:
        raise ValueError(f"soft_locations [B, M, D] must have D = height·width = {static_h}·{static_w} = "
                         f"{static_h * static_w}; got shape {soft_locations.shape}")
    soft_locations = tf.cast(soft_locations, sprites.dtype)
    shape = tf.shape(sprites)
    batch, max_objects, sprite_h, sprite_w, channels = shape[0], shape[1], shape[2], shape[3], shape[4]
    active = tf.range(max_objects)[None, :] < num_objects[:, None]  # [B, M]
    # Select (not multiply) so that padding entries holding NaN cannot leak through 0·NaN.
    maps = tf.where(active[:, :, None], soft_locations, tf.zeros_like(soft_locations))  # [B, M, D]
    sprites = tf.where(active[:, :, None, None, None], sprites, tf.zeros_like(sprites))
    maps = tf.reshape(maps, tf.stack([batch * max_objects, height, width]))  # [B·M, H, W]
    maps = tf.transpose(maps, [1, 2, 0])[None]  # one image, one channel per object: [1, H, W, B·M]
    # Convolution = cross-correlation with the flipped kernel; padding (s − 1 − k) before and k after puts
    # sprite pixel k on the map's pixel (see the module docstring).
    k_h, k_w = (sprite_h - 1) // 2, (sprite_w - 1) // 2
    maps = tf.pad(maps, [[0, 0], [sprite_h - 1 - k_h, k_h], [sprite_w - 1 - k_w, k_w], [0, 0]])
    kernel = tf.reverse(sprites, axis=[2, 3])  # [B, M, s_h, s_w, C]
    kernel = tf.reshape(tf.transpose(kernel, [2, 3, 0, 1, 4]),
                        tf.stack([sprite_h, sprite_w, batch * max_objects, channels]))  # [s_h, s_w, B·M, C]
    out = tf.nn.depthwise_conv2d(maps, kernel, strides=[1, 1, 1, 1], padding="VALID")  # [1, H, W, B·M·C]
    out = tf.reshape(out, tf.stack([height, width, batch, max_objects, channels]))  # channel (b·M + i)·C + c
    return tf.transpose(tf.reduce_sum(out, axis=3), [2, 0, 1, 3])  # [B, H, W, C]


def bernoulli_mean(canvas, epsilon: float = BERNOULLI_EPSILON) -> tf.Tensor:
    """The pixel-wise Bernoulli mean from λ (eq. 12): ε + (1 − 2ε)·clip(λ, 0, 1).

    The paper's mean is λ itself (the sum of eq. 4); this only makes it a probability strictly inside (0, 1)
    where sprites overlap (λ > 1) or no sprite reaches (λ = 0). See the module docstring for why (and for the
    zero gradient where λ > 1).

    Args:
        canvas: float `[B, H, W, C]` (any shape), λ from `place_sprites` / `place_sprites_soft`.
        epsilon: ε in (0, 0.5); 1e-6 keeps the bias of a 3·64·64-term log-likelihood below 0.025 nats.

    Returns:
        float32 (float64 for float64 input), the shape of `canvas`, in [ε, 1 − ε].

    Raises:
        ValueError: if `canvas` is not a float tensor or ε is not in (0, 0.5).
    """
    canvas = tf.convert_to_tensor(canvas)
    if not canvas.dtype.is_floating:
        raise ValueError(f"canvas must be a float tensor (λ of eq. 4); got dtype {canvas.dtype.name}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 < epsilon < 0.5:
        raise ValueError(f"epsilon must be a float in (0, 0.5); got {epsilon!r}")
    canvas = tf.cast(canvas, tf.float64 if canvas.dtype == tf.float64 else tf.float32)
    return epsilon + (1.0 - 2.0 * epsilon) * tf.clip_by_value(canvas, 0.0, 1.0)


# --- f_count --------------------------------------------------------------------------------------------------


def logit_scale(num_locations: int, gamma: float = PAPER_GAMMA,
                reference_num_locations: int = PAPER_NUM_LOCATIONS) -> float:
    """γ for a canvas of D locations by appendix B's rule: the location logits (and f_count's threshold 4γ) scale
    with log D, anchored at the paper's γ = 4 for D = 64·64: γ(D) = γ_ref·log D / log D_ref.

    (The paper writes γ = 4 ≈ ½ log D; anchoring at the paper's constant, not at ½ log D = 4.16, keeps the
    paper's value exactly on its own canvas.) E.g. 3.06 for 24 × 24 (D = 576), 4.67 for 128 × 128.

    Raises:
        ValueError: if a count is not an integer ≥ 2 (log 1 = 0 would make γ 0 or infinite) or γ_ref ≤ 0.
    """
    for name, value in (("num_locations", num_locations), ("reference_num_locations", reference_num_locations)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2; got {value!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0; got {gamma!r}")
    return float(gamma) * math.log(num_locations) / math.log(reference_num_locations)


def count_objects(location_logits, gamma, max_objects: int, window: int = 3) -> tf.Tensor:
    """f_count (appendix B): n̂ = min(#{local maxima of h_loc above 4γ}, M); q(n | x) = δ(n − n̂).

    A location counts if its logit equals the maximum over the `window` × `window` neighbourhood centred on it
    (positions outside the canvas ignored) and is strictly greater than 4γ. See the module docstring for the
    window and ties. Not differentiable (the paper's q(n | x) is deterministic); the one-hot f_count of the
    paper is `tf.one_hot(n, M + 1)`.

    Args:
        location_logits: float `[B, H, W, 1]` or `[B, H, W]`, h_loc *already multiplied by γ* (as
            `LocationInferenceNet` returns it), so the threshold 4γ is in the same units. NaN logits never count.
        gamma: γ > 0 (float or scalar tensor); the paper's 4 for 64 × 64, `logit_scale(H·W)` for other sizes.
        max_objects: M ≥ 0 (python int).
        window: odd neighbourhood size ≥ 1 (1: every location above the threshold counts).

    Returns:
        int32 `[B]`, n̂ in [0, M].

    Raises:
        ValueError: if the logits are not a float `[B, H, W(, 1)]` tensor, γ ≤ 0 (when known), M is not an integer
            ≥ 0 or `window` is not an odd integer ≥ 1.
    """
    logits = tf.convert_to_tensor(location_logits)
    if not logits.dtype.is_floating:
        raise ValueError(f"location_logits must be a float tensor of shape [B, H, W, 1] or [B, H, W]; got dtype "
                         f"{logits.dtype.name}")
    if logits.shape.rank == 3:
        logits = logits[..., None]
    if logits.shape.rank != 4 or logits.shape[-1] not in (1, None):
        raise ValueError(f"location_logits must have shape [B, H, W, 1] or [B, H, W]; got shape "
                         f"{location_logits.shape}")
    if isinstance(max_objects, bool) or not isinstance(max_objects, numbers.Integral) or max_objects < 0:
        raise ValueError(f"max_objects must be an integer M >= 0; got {max_objects!r}")
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1; got {window!r}")
    _check_positive("gamma", gamma)
    logits = tf.cast(logits, tf.float32)
    # max_pool's SAME padding takes the maximum over in-canvas positions only.
    local_max = tf.nn.max_pool2d(logits, ksize=window, strides=1, padding="SAME")  # [B, H, W, 1]
    threshold = 4.0 * tf.cast(gamma, tf.float32)
    is_object = tf.equal(logits, local_max) & (logits > threshold)  # [B, H, W, 1]
    count = tf.reduce_sum(tf.cast(is_object, tf.int32), axis=[1, 2, 3])  # [B]
    return tf.minimum(count, int(max_objects))


# --- eq. (11) with Gumbel-softmax ------------------------------------------------------------------------------


def sample_locations_gumbel(logits, num_objects, temperature, seed=None, hard: bool = False,
                            max_objects: int = 10):
    """Draws n locations sequentially without replacement (eq. 11), relaxed with Gumbel-softmax (section 2).

    Step i (0 ≤ i < M), with g_i ~ Gumbel(0, 1)^D and h̃ the logits where every location drawn at steps < i is
    set to −1e9 (appendix B: "set to a low value"):

        l_i = argmax_d (h̃ + g_i)_d                      (hard index: exactly eq. (11), Gumbel-max trick)
        y_i = softmax((h̃ + g_i) / τ)                     (relaxed one-hot, gradient to the logits)

    With `hard=True`, y_i = one_hot(l_i) + y_i − stop_gradient(y_i): exactly the one-hot in value, the relaxed
    gradient (straight-through Gumbel-softmax, Jang et al. 2016) — an option; the paper uses the relaxed y_i.
    Steps i ≥ n are padding: their y_i are zeros and l_i = 0 (the tfobj padding convention). Cost O(B·M·D).

    The temperature τ is annealed by the model (appendix B: exponentially 0.5 → 0.02 over 100k steps, e.g.
    `tfobj.training.schedules.exponential_decay(step, 0.5, 0.0, 0.04, 100_000)`).

    Args:
        logits: float `[B, D]`, h_loc flattened in raster order, already multiplied by γ. Computed in float32.
        num_objects: int32 (or int64) `[B]`, n with 0 ≤ n ≤ min(M, D).
        temperature: τ > 0, float or scalar tensor (e.g. the model's annealed variable).
        seed: as `keras.random`: a `keras.random.SeedGenerator` (fresh noise per call, the Keras idiom for a
            layer's noise), an int (the same noise every call), or None. (Under XLA the stateless generator is
            a different algorithm: an int seed gives other, equally valid, noise than eager / `tf.function`.)
        hard: straight-through one-hots (see above).
        max_objects: M ≥ 0 (python int), the length of the object axis (the paper's 10).

    Returns:
        (soft, indices): float32 `[B, M, D]` relaxed one-hots (each row i < n sums to 1, rows i ≥ n are 0) and
        int32 `[B, M]` drawn locations (distinct among the first n; 0 after). `location_log_prob(logits,
        indices, num_objects)` is their log q.

    Raises:
        ValueError: if `logits` is not a float `[B, D]` tensor, `num_objects` not an integer `[B]` tensor, the
            batch sizes differ, τ ≤ 0 (when known), M is not an integer ≥ 0, or (when known) n is outside
            [0, min(M, D)].

    References:
        Dittadi & Winther 2019, eq. (11), section 2 and appendix B; Jang et al. 2016; Maddison et al. 2016.
    """
    logits = _float_tensor("logits", logits, 2, "[B, D]")
    logits = tf.cast(logits, tf.float32)
    num_objects = _int_tensor("num_objects", num_objects, 1, "[B]")
    _check_batch([("logits", logits), ("num_objects", num_objects)])
    if isinstance(max_objects, bool) or not isinstance(max_objects, numbers.Integral) or max_objects < 0:
        raise ValueError(f"max_objects must be an integer M >= 0; got {max_objects!r}")
    if logits.shape[1] == 0:
        raise ValueError(f"logits must have at least one location (D >= 1); got shape {logits.shape}")
    check_num_objects_values(num_objects, int(max_objects), logits.shape[1])
    _check_positive("temperature", temperature)
    temperature = tf.cast(temperature, tf.float32)

    batch, num_locations = tf.shape(logits)[0], tf.shape(logits)[1]
    tiny = float(np.finfo(np.float32).tiny)
    uniform = keras.random.uniform(tf.stack([batch, max_objects, num_locations]), minval=tiny, maxval=1.0,
                                   dtype="float32", seed=seed)  # [B, M, D]
    gumbel = -tf.math.log(-tf.math.log(uniform))  # Gumbel(0, 1), finite: u in [tiny, 1 − 2^-24]
    drawn = tf.zeros_like(logits, dtype=tf.bool)  # [B, D]
    soft_steps, index_steps = [], []
    for step in range(max_objects):
        perturbed = tf.where(drawn, MASKED_LOGIT, logits) + gumbel[:, step]  # [B, D]
        index = tf.argmax(perturbed, axis=1, output_type=tf.int32)  # [B]
        one_hot = tf.one_hot(index, num_locations, dtype=tf.float32)  # [B, D]
        soft = tf.nn.softmax(perturbed / temperature, axis=1)
        if hard:  # (soft − soft) is exactly 0 in the forward pass, so the value is exactly the one-hot
            soft = one_hot + (soft - tf.stop_gradient(soft))
        drawn = drawn | tf.cast(one_hot, tf.bool)
        active = step < num_objects  # [B]
        soft_steps.append(tf.where(active[:, None], soft, tf.zeros_like(soft)))
        index_steps.append(tf.where(active, index, tf.zeros_like(index)))
    if max_objects == 0:
        return tf.zeros(tf.stack([batch, 0, num_locations])), tf.zeros(tf.stack([batch, 0]), tf.int32)
    return tf.stack(soft_steps, axis=1), tf.stack(index_steps, axis=1)  # [B, M, D], [B, M]
