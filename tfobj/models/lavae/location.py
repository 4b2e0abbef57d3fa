"""LAVAE's location distributions: the uniform prior (eq. 3) and the posterior (eq. 11), pure functions.

Shapes use B (batch), D (number of locations: the H·W pixels of the location map, flattened in raster
order, index d = row·W + col) and M (maximum number of objects, the padded object axis; the paper's M = 10).

Both distributions draw n ≤ M locations z_loc^(1..n) sequentially *without replacement* from D classes.
Writing l_i for the index of z_loc^(i) (0-based i = 0..n−1 below):

  * Prior, eq. (3): each step is uniform over the D − i locations not drawn yet, so
        log p(l_0, …, l_{n−1} | n) = −Σ_{i=1..n} log(D − i + 1) = −log(D! / (D − n)!).
    `location_prior_log_prob`. It is the same for every sequence of n distinct locations.
  * Posterior, eq. (11): each step is softmax(h_loc) restricted to the locations not drawn yet and
    renormalised, h_loc the location logits (already multiplied by γ, appendix B "Rescaling location
    logits"). With h = h_loc,
        log q(l_0, …, l_{n−1} | x, n) = Σ_{i<n} [h_{l_i} − logsumexp_{d ∉ {l_0..l_{i−1}}} h_d].
    `location_log_prob`. With equal logits it is the prior.

On a sampled sequence, `location_log_prob − location_prior_log_prob` is the one-sample estimate of the
location term of the KL expansion in appendix A (Σ_i log q(z_loc^(i) | z_loc^(<i), x) − log p(z_loc^(i) | …)).

Numerics of `location_log_prob` (float32 throughout; float16/bfloat16/float64 logits are cast to float32):
  * The step-i normaliser is a log-sum-exp over the locations still available, never
    log(1 − Σ_{j<i} softmax(h)_{l_j}): in LAVAE the drawn locations are the "hot" ones (logits above the
    count threshold 4γ = 16, appendix B) and hold nearly all of the softmax mass, and in float32 1 − Σ p_j
    has relative error ~6e-8 / (1 − Σ p_j): all of it once the remaining mass is below 6e-8 (e.g. a logit
    gap above ~25 at D = 4096), where the result would be log 0 or rounding noise.
  * It is computed without a `[B, M, D]` mask: with R = logsumexp over the locations that are *not* among
    the first n drawn, the locations available at step i are those plus l_i, …, l_{n−1}, so
        logsumexp_{available at i} h = logsumexp(R, h_{l_i}, …, h_{l_{n−1}}),
    one masked log-sum-exp over D per row and a `[B, M, M + 1]` one for the steps: O(B·(D + M²)) time and
    memory (a direct mask would be O(B·M·D): 40 MB of float32 for B = 256, M = 10, D = 64·64).
    Accuracy: absolute error ~n·|h|·1e-7 (float32 rounding of log-sum-exps of size |h|), e.g. ≤ 1e-4 for
    |h| ≤ 100, n = 10.
  * Differentiable in the logits; the gradient is finite for every valid input, also when n = D (every
    location drawn, R = log 0 = −inf: the NaN gradients of all-(−inf) log-sum-exps go only to masking
    constants through `tf.where`) and when the value is −inf (repeated locations, below).
  * Entries after the n-th location are never read (they may hold anything, even −1 padding): the result
    is bitwise the same whatever they hold.

Repeated locations among the first n: the sequence has probability 0 under both eq. (11) and eq. (3)
(a drawn location is removed), so `location_log_prob` returns −inf for that row, with a finite (but
meaningless) gradient, so that one such row cannot turn a whole batch's gradients into NaN. It returns
−inf rather than raising because (a) −inf is the correct log-probability of an impossible event (as SPAIR's
`count_prior_log_prob` returns for a vector that contradicts s = 1); (b) whether locations repeat depends on
sampled data, which inside a `tf.function` or XLA graph cannot become a Python `ValueError`, and a visible
−inf in the loss (Keras' `TerminateOnNaN` also stops on inf) is better than an op error mid-training.
`location_prior_log_prob` does not see the locations: it is the value for n distinct ones.

Argument checks: ranks, dtypes and batch sizes raise `ValueError` whenever shapes are static; the values of
n (0 ≤ n ≤ M, n ≤ D) and of the first n locations (0 ≤ l < D) raise `ValueError` when they are known at
call time (eager tensors, numpy arrays, constants). Inside a `tf.function` with traced values they cannot be
checked at trace time: a row with an invalid n or an out-of-range location among its first n is NaN
(never a silently wrong finite number).
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

__all__ = ["location_log_prob", "location_prior_log_prob"]


def _as_int_tensor(name: str, x, rank: int, shape_text: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_integer:
        raise ValueError(f"{name} must be an integer tensor of shape {shape_text}; got dtype {x.dtype.name}")
    if x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {shape_text} (rank {rank}); got shape {x.shape}")
    return tf.cast(x, tf.int32)


def _check_logits(logits) -> tf.Tensor:
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        raise ValueError(f"logits must be a float tensor of shape [B, D]; got dtype {logits.dtype.name}")
    if logits.shape.rank != 2:
        raise ValueError(f"logits must have shape [B, D] (rank 2); got shape {logits.shape}")
    if logits.shape[1] == 0:
        raise ValueError(f"logits must have at least one location (D >= 1); got shape {logits.shape}")
    return tf.cast(logits, tf.float32)  # float32 probability math, even for float16/bfloat16 inputs


def check_num_objects_values(num_objects: tf.Tensor, max_objects: int | None, num_locations: int | None):
    """Raises ValueError for statically known values of n outside [0, M], [0, D] or [0, min(M, D)] (M =
    locations per row, D = number of locations; a bound that is None is not checked)."""
    values = tf.get_static_value(num_objects)
    if values is None:
        return
    values = np.asarray(values)
    bad = values < 0
    if max_objects is not None:
        bad |= values > max_objects
    if num_locations is not None:
        bad |= values > num_locations
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        if max_objects is not None and num_locations is not None:
            bound = f"min(M, D) = min({max_objects}, {num_locations})"
        else:
            bound = f"M = {max_objects}" if max_objects is not None else f"D = {num_locations}"
        raise ValueError(f"num_objects must be in [0, {bound}]; got num_objects[{row}] = {int(values[row])}")


def location_log_prob(logits, locations, num_objects) -> tf.Tensor:
    """log q(z_loc^(1..n) | x, n): the posterior over locations, sequential softmax without replacement (eq. 11).

    Args:
        logits: float `[B, D]`, the location logits h_loc flattened in raster order, already multiplied by γ.
            Any float dtype; computed in float32.
        locations: int32 (or int64) `[B, M]`, the drawn location indices l_i in [0, D), in drawing order.
            Only the first `num_objects[b]` entries of row b are read; the rest are ignored (may hold
            anything, e.g. repeats, zeros or −1 padding).
        num_objects: int32 (or int64) `[B]`, n with 0 ≤ n ≤ M and n ≤ D.

    Returns:
        float32 `[B]`: Σ_{i<n} [h_{l_i} − logsumexp_{d ∉ {l_0..l_{i−1}}} h_d], the log-probability of
        drawing l_0, …, l_{n−1} in that order. 0 for n = 0; −inf if a location repeats among the first n
        (probability 0; see the module docstring for why this does not raise). NaN for rows whose n or
        first-n locations are invalid but could not be checked (traced values in a `tf.function`).

    Raises:
        ValueError: if `logits` is not a float `[B, D]` tensor with D ≥ 1, `locations` not an integer
            `[B, M]` tensor, `num_objects` not an integer `[B]` tensor, the batch sizes differ, or (when the
            values are known) some n is outside [0, min(M, D)] or one of the first n locations is outside
            [0, D).

    References:
        Dittadi & Winther 2019, eq. (11) and appendix B "Implementation details".
    """
    logits = _check_logits(logits)
    locations = _as_int_tensor("locations", locations, 2, "[B, M]")
    num_objects = _as_int_tensor("num_objects", num_objects, 1, "[B]")
    batch_sizes = {logits.shape[0], locations.shape[0], num_objects.shape[0]} - {None}
    if len(batch_sizes) > 1:
        raise ValueError(
            f"logits [B, D], locations [B, M] and num_objects [B] must have the same batch size B; got shapes "
            f"{logits.shape}, {locations.shape} and {num_objects.shape}"
        )
    static_d, static_m = logits.shape[1], locations.shape[1]
    check_num_objects_values(num_objects, static_m, static_d)
    location_values, n_values = tf.get_static_value(locations), tf.get_static_value(num_objects)
    if location_values is not None and n_values is not None and static_d is not None:
        first_n = np.arange(location_values.shape[1])[None, :] < n_values[:, None]
        bad = first_n & ((location_values < 0) | (location_values >= static_d))
        if np.any(bad):
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"locations must be in [0, D) = [0, {static_d}) for the first num_objects entries of each row; "
                f"got locations[{row}, {col}] = {int(location_values[row, col])} (num_objects[{row}] = "
                f"{int(n_values[row])})"
            )

    batch, num_locations = tf.shape(logits)[0], tf.shape(logits)[1]
    max_objects = tf.shape(locations)[1]
    neg_inf = tf.constant(-np.inf, tf.float32)
    steps = tf.range(max_objects)  # i, [M]
    n = num_objects[:, None]  # [B, 1]
    drawn = steps[None, :] < n  # step i is one of the first n, [B, M]
    in_range = (locations >= 0) & (locations < num_locations)
    safe_locations = tf.where(drawn & in_range, locations, 0)  # ignored entries read location 0, [B, M]
    drawn_logits = tf.gather(logits, safe_locations, batch_dims=1)  # h_{l_i}, [B, M]

    # R = logsumexp over the locations not among the first n drawn, [B].
    batch_index = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(safe_locations))  # [B, M]
    scatter_index = tf.stack([batch_index, safe_locations], axis=-1)  # [B, M, 2]
    times_drawn = tf.scatter_nd(scatter_index, tf.cast(drawn, tf.int32), tf.shape(logits))  # [B, D]
    is_drawn = times_drawn > 0
    # n = D: every location drawn, R = log 0 = −inf (and so is the normaliser of any step after the n-th).
    # Those all-(−inf) log-sum-exps have NaN gradients, but tf.where's gradient *selects* (it does not
    # multiply), so they reach only the −inf constants, never the logits.
    log_rest = tf.reduce_logsumexp(tf.where(is_drawn, neg_inf, logits), axis=1)  # [B]

    # Step i's normaliser: logsumexp(R, h_{l_i}, …, h_{l_{n−1}}), [B, M].
    later = steps[None, :] >= steps[:, None]  # later[i, j] = j ≥ i, [M, M]
    candidates = tf.where(later[None] & drawn[:, None, :], drawn_logits[:, None, :], neg_inf)  # [B, M(i), M(j)]
    log_rest_column = tf.broadcast_to(log_rest[:, None, None], tf.stack([batch, max_objects, 1]))  # [B, M, 1]
    candidates = tf.concat([candidates, log_rest_column], axis=2)  # [B, M, M + 1]; rows i < n hold h_{l_i}
    log_normaliser = tf.reduce_logsumexp(candidates, axis=2)  # [B, M]

    # A location drawn twice among the first n: probability 0.
    same = tf.equal(safe_locations[:, :, None], safe_locations[:, None, :])  # [B, M(i), M(j)]
    earlier = steps[None, :] < steps[:, None]  # earlier[i, j] = j < i, [M, M]
    repeated = drawn & tf.reduce_any(same & earlier[None] & drawn[:, None, :], axis=2)  # [B, M]

    step_log_probs = tf.where(repeated, neg_inf, drawn_logits - log_normaliser)  # [B, M]
    step_log_probs = tf.where(drawn, step_log_probs, tf.zeros_like(step_log_probs))
    log_prob = tf.reduce_sum(step_log_probs, axis=1)  # [B]

    # Values that could not be checked above (traced in a tf.function) poison their row.
    invalid = (
        (num_objects < 0)
        | (num_objects > max_objects)
        | (num_objects > num_locations)
        | tf.reduce_any(drawn & ~in_range, axis=1)
    )
    return tf.where(invalid, tf.constant(np.nan, tf.float32), log_prob)


def location_prior_log_prob(num_locations, num_objects) -> tf.Tensor:
    """log p(z_loc^(1..n) | n) under the uniform prior without replacement (eq. 3), for any n distinct locations.

    Args:
        num_locations: D ≥ 1, the number of locations (H·W of the location map). Python int or scalar
            integer tensor.
        num_objects: int32 (or int64) `[B]`, n with 0 ≤ n ≤ D.

    Returns:
        float32 `[B]`: −Σ_{i=1..n} log(D − i + 1) = lgamma(D − n + 1) − lgamma(D + 1); 0 for n = 0. Computed
        in float64 and rounded once (in float32 the lgamma difference would lose ~1e-3 to cancellation at
        D = 4096). NaN for rows whose n is outside [0, D] but could not be checked (traced values).

    Raises:
        ValueError: if `num_locations` is not an integer ≥ 1 (when known) or `num_objects` not an integer `[B]`
            tensor, or (when known) some n is outside [0, D].

    References:
        Dittadi & Winther 2019, eq. (3).
    """
    if isinstance(num_locations, bool) or isinstance(num_locations, float):
        raise ValueError(f"num_locations must be an integer D >= 1; got {num_locations!r}")
    if isinstance(num_locations, numbers.Integral):
        num_locations = int(num_locations)
        if num_locations < 1:
            raise ValueError(f"num_locations must be an integer D >= 1; got {num_locations}")
        static_d = num_locations
    else:
        num_locations = tf.convert_to_tensor(num_locations)
        if not num_locations.dtype.is_integer or num_locations.shape.rank != 0:
            raise ValueError(
                f"num_locations must be an integer D >= 1 (python int or scalar integer tensor); got "
                f"{num_locations.dtype.name} tensor of shape {num_locations.shape}"
            )
        value = tf.get_static_value(num_locations)
        static_d = None if value is None else int(value)
        if static_d is not None and static_d < 1:
            raise ValueError(f"num_locations must be an integer D >= 1; got {static_d}")
    num_objects = _as_int_tensor("num_objects", num_objects, 1, "[B]")
    check_num_objects_values(num_objects, None, static_d)
    d = tf.cast(num_locations, tf.float64)
    n = tf.cast(num_objects, tf.float64)
    log_prob = tf.math.lgamma(d - n + 1.0) - tf.math.lgamma(d + 1.0)  # [B], float64
    invalid = (n < 0) | (n > d)
    return tf.cast(tf.where(invalid, tf.constant(np.nan, tf.float64), log_prob), tf.float32)
