"""SPAIR's count prior on `z_pres` and its recursive KL estimator (SPAIR supplement A and B).

Shapes use B (batch) and N (number of cells, N = h·w, flattened in raster order: index k = i·w + j).

Prior (supplement A). The number of present objects C is Geometric(s) ("failures before a success",
p(C = c) = s(1 − s)^c), truncated to {0, …, N} and renormalised; given C, `z_pres` is uniform over the
binom(N, C) binary vectors with C ones:

    p(z) = s(1 − s)^nz(z) / ((1 − (1 − s)^(N+1)) · binom(N, nz(z))).

`count_prior_log_prob` evaluates this closed form.

KL (supplement B). KL(q‖p) = Σ_k E_q[KL(q(z_k | z_{1:k−1}) ‖ p(z_k | z_{1:k−1}))], estimated with one sampled
prefix ẑ: Σ_k KL(Bernoulli(β_k) ‖ Bernoulli(p_k)), p_k = p(z_k = 1 | ẑ_{1:k−1}). With n = nz(ẑ_{1:k−1}) and
R = N − (k − 1) free slots,

    p_k     = Σ_c p(C = c | ẑ_{1:k−1}) · (c − n) / R                                    (B1)
    1 − p_k = Σ_c p(C = c | ẑ_{1:k−1}) · (R − (c − n)) / R     (own formula, not 1 − p_k)
    p(C = c | ẑ_{1:k}) ∝ p(ẑ_k | C = c, ẑ_{1:k−1}) · p(C = c | ẑ_{1:k−1})                   (B2)

`conditional_pres_probs` returns every p_k; `count_prior_kl` returns the estimator. The recursion is a
`tf.while_loop` over k carrying (a shifted) log p(C = c | prefix) for c = 0..N (`[B, N + 1]`) and n
(`[B, 1]`); it also runs under XLA (`jit_compile=True`, e.g. Keras 3's default "auto").

Numerics (everything is float32; inputs in float16/bfloat16 are cast to float32 first):
  * The count posterior is kept in log space and every sum over c is a logsumexp. In probability space
    (the original code) (1 − s)^c underflows for s near 1 long before c reaches N in the thousands, and the
    posterior after a few sampled ones lives entirely on counts whose prior mass underflowed.
  * The carried state is log p(C = c | prefix) − (c − n)·log(1 − s), not log p(C = c | prefix) itself:
    the latter has entries of size |c − n|·|log(1 − s)| (~2e4), whose float32 rounding accumulates over the
    N updates (6e-3 error in log p_k at N = 2304, s = 1 − 1e-6); the shifted state cuts that to ≤ 1e-3
    there, ≤ 1e-4 for s ≤ 0.5 and ~1e-6 for N ≤ 100. The summed KL is accurate to ~1e-6 relative
    (against a float64 closed-form posterior, N = 2304).
  * log p(z) at N in the thousands: lgamma(N + 1) ≈ 7e4 has float32 spacing ~0.008, which the log-binomial
    cancellation leaves as absolute error (~1e-5 relative for sparse z at N = 9216).
  * p_k and 1 − p_k are each normalised by their sum (which is 1 up to rounding), so they are consistent
    and 1 − p_k keeps full relative precision when p_k is close to 1.
  * log(1 − (1 − s)^(N+1)) = log1mexp((N + 1)·log1p(−s)) with a stable log1mexp; log binom uses lgamma.
  * For a python-float s, log s and log1p(−s) are computed in float64 by python and then rounded, so an
    s within 1e-7 of 1 (which float32 cannot store: its spacing below 1 is 6e-8) keeps its exact 1 − s.
    A tensor s is used in its own dtype (float64 keeps the same precision; float32 rounds 1 − s).
  * s = 1 exactly: the log prob is 0 for the all-zero vector and −inf otherwise. In the KL the recursion
    uses log(1 − s) floored at log(float32 tiny) ≈ −87.3 (instead of −inf, which would make the count
    posterior all −inf, i.e. NaN, once a sampled one contradicts the prior), and log p_k, log(1 − p_k) are
    floored at log(1e-30) so every term is finite (each cell then contributes β(log β − log 1e-30) +
    (1 − β) log(1 − β), whatever the samples). For any s < 1 (even a float64 one, 1 − s ≥ 1.1e-16) these
    floors are never reached: p_k ≥ ~(1 − s)/N and 1 − p_k ≥ ~1/N², far above 1e-30 for N up to 1e5.
  * Bernoulli KL is written by hand, β log β + (1−β) log(1−β) − β log p_k − (1−β) log(1−p_k), using the
    log-space log p_k and log(1 − p_k) directly (TFP's Bernoulli would rebuild them from probabilities and
    lose the separately-computed 1 − p_k); `tf.math.xlogy` makes β ∈ {0, 1} contribute 0 with a finite
    (zero) gradient of the entropy terms.
  * Gradients flow into `pres_probs` only: the samples and s are behind `tf.stop_gradient` in the KL, so
    the while loop is never recorded by a tape and costs no memory for backprop.
  * Sample and `z_pres` entries count as present iff > 0.5 (as the original code thresholds its relaxed
    samples), so Concrete/relaxed samples can be passed directly.
  * Cost: O(B·N²) for the KL (N sequential steps over a `[B, N + 1]` vector): ~0.1 s for B = 3, N = 2304
    and ~1–2 s for N = 9216 on 2 CPU cores; negligible for SPAIR's grids (tens to hundreds of cells).

The original code's parametrisation and annealing schedule of s are `count_prior_s_from_log_odds` and
`original_count_prior_s`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from tfobj.training import schedules

__all__ = [
    "conditional_pres_probs",
    "count_prior_kl",
    "count_prior_log_prob",
    "count_prior_s_from_log_odds",
    "original_count_prior_s",
]

_EPS = 1e-30  # floor on p_k and 1 − p_k in the Bernoulli KL's logs (only reached when s == 1)
_LOG_EPS = math.log(_EPS)
_LOG_TINY = float(np.log(np.finfo(np.float32).tiny))  # floor on log(1 − s) in the KL recursion (s == 1)
_LOG_HALF = -math.log(2.0)


def _log1mexp(x: tf.Tensor) -> tf.Tensor:
    """log(1 − exp(x)) for x ≤ 0, stable at both ends (Mächler 2012): log(−expm1(x)) for x > −ln 2,
    else log1p(−exp(x)). Each branch gets a safe input so neither produces NaN (nor NaN gradients)."""
    near_zero = x > _LOG_HALF
    x_near = tf.where(near_zero, x, tf.constant(_LOG_HALF, x.dtype))
    x_far = tf.where(near_zero, tf.constant(2 * _LOG_HALF, x.dtype), x)
    return tf.where(near_zero, tf.math.log(-tf.math.expm1(x_near)), tf.math.log1p(-tf.math.exp(x_far)))


def _as_matrix(name: str, x) -> tf.Tensor:
    """Converts to a float32 `[B, N]` tensor, raising ValueError for any other rank."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 2:
        raise ValueError(f"{name} must have shape [B, N] (rank 2); got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one cell (N >= 1); got shape {x.shape}")
    return tf.cast(x, tf.float32)  # float32 probability math, even for float16/bfloat16 inputs


def _log_s_terms(s) -> tuple[tf.Tensor, tf.Tensor]:
    """(log s, log(1 − s)) as float32 scalars; log(1 − s) = −inf for s = 1. Validates s ∈ (0, 1]."""
    if isinstance(s, bool):
        raise ValueError(f"s must be a number in (0, 1]; got {s!r}")
    if isinstance(s, numbers.Real):
        s = float(s)
        if not 0.0 < s <= 1.0:  # also rejects NaN
            raise ValueError(f"s must be in (0, 1]; got {s}")
        log_1ms = math.log1p(-s) if s < 1.0 else -math.inf
        return tf.constant(math.log(s), tf.float32), tf.constant(log_1ms, tf.float32)
    s = tf.convert_to_tensor(s)
    if s.shape.rank != 0:
        raise ValueError(f"s must be a scalar; got shape {s.shape}")
    if s.dtype != tf.float64:
        s = tf.cast(s, tf.float32)
    static = tf.get_static_value(s)
    if static is not None and not 0.0 < float(static) <= 1.0:
        raise ValueError(f"s must be in (0, 1]; got {float(static)}")
    return tf.cast(tf.math.log(s), tf.float32), tf.cast(tf.math.log1p(-s), tf.float32)


def count_prior_log_prob(z_pres, s) -> tf.Tensor:
    """log p(z_pres) under SPAIR's count prior (supplement A), float32.

    Args:
        z_pres: `[B, N]` binary presence vectors in raster order (entries > 0.5 count as 1); any float
            dtype, cast to float32.
        s: scalar in (0, 1], the Geometric success probability (high s = few objects). Python float or
            scalar tensor.

    Returns:
        float32 `[B]`: log s + nz·log(1 − s) − log(1 − (1 − s)^(N+1)) − log binom(N, nz). For s = 1 this is
        0 for the all-zero vector and −inf otherwise.
    """
    z = _as_matrix("z_pres", z_pres)
    log_s, log_1ms = _log_s_terms(s)
    n_cells = tf.cast(tf.shape(z)[1], tf.float32)
    nz = tf.reduce_sum(tf.cast(z > 0.5, tf.float32), axis=1)
    log_normaliser = _log1mexp((n_cells + 1.0) * log_1ms)  # log(1 − (1 − s)^(N+1))
    log_binom = tf.math.lgamma(n_cells + 1.0) - tf.math.lgamma(nz + 1.0) - tf.math.lgamma(n_cells - nz + 1.0)
    # multiply_no_nan: 0·log(1 − s) is 0 even for s = 1 (log(1 − s) = −inf).
    return log_s + tf.math.multiply_no_nan(log_1ms, nz) - log_normaliser - log_binom


@tf.function(reduce_retracing=True, autograph=False)
def _conditional_log_probs_loop(samples: tf.Tensor, log_1ms: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(log p_k, log(1 − p_k)), each float32 `[B, N]`, by the (B1)/(B2) recursion in log space.

    `samples` is float32 `[B, N]` in {0, 1}; `log_1ms` a finite float32 scalar log(1 − s).

    The carried state is shifted: shifted(c) = log p(C = c | prefix) − (c − n)·log(1 − s). The prior's
    c·log(1 − s) term makes log p(C = c | prefix) of magnitude ~|c − n|·|log(1 − s)| (≈ 2e4 for s = 1 − 1e-6,
    c − n ≈ 1500); in float32 each per-step update of such an entry rounds at ~1e-3, and these errors pile
    up over the N steps until that c becomes the posterior mode (measured: 6e-3 relative error in p_k at
    N = 2304, s = 1 − 1e-6). The shifted state starts constant and stays of the size of the prefix's
    log-likelihood ratios; the posterior is rebuilt each step with one rounding.
    """
    batch, n_cells = tf.shape(samples)[0], tf.shape(samples)[1]
    counts = tf.range(n_cells + 1, dtype=tf.float32)[None, :]  # c, [1, N + 1]
    # At the empty prefix log p(C = c) − c·log(1 − s) = −log Σ_c (1 − s)^c (log s cancels): a constant.
    log_normaliser = tf.reduce_logsumexp(counts * log_1ms, axis=1, keepdims=True)
    shifted = tf.tile(-log_normaliser, [batch, n_cells + 1])  # [B, N + 1]
    num_ones = tf.zeros([batch, 1], tf.float32)  # n = nz(prefix), [B, 1]
    samples_t = tf.transpose(samples)  # [N, B]
    n_float = tf.cast(n_cells, tf.float32)
    out1 = tf.TensorArray(tf.float32, size=n_cells, element_shape=samples.shape[:1])
    out0 = tf.TensorArray(tf.float32, size=n_cells, element_shape=samples.shape[:1])

    def body(k, shifted, num_ones, out1, out0):
        remaining = n_float - tf.cast(k, tf.float32)  # R = N − (k − 1) for 1-based k, ≥ 1
        needed = counts - num_ones  # c − n
        log_count = shifted + needed * log_1ms  # log p(C = c | prefix); −inf for infeasible c
        log_w1 = tf.math.log(tf.nn.relu(needed))  # log(c − n); −inf for c ≤ n
        log_w0 = tf.math.log(tf.nn.relu(remaining - needed))  # log(R − (c − n)); −inf for c − n ≥ R
        # Both sums have a finite term (c = n + 1 resp. c = n are feasible while R ≥ 1), so no −inf − −inf.
        lse1 = tf.reduce_logsumexp(log_count + log_w1, axis=1, keepdims=True)  # log(R·p_k)
        lse0 = tf.reduce_logsumexp(log_count + log_w0, axis=1, keepdims=True)  # log(R·(1 − p_k))
        out1 = out1.write(k, lse1[:, 0])
        out0 = out0.write(k, lse0[:, 0])
        z_k = samples_t[k][:, None]  # [B, 1]
        # (B2) on log p, then re-shifted by the new n = n + z_k: the shift changes by z_k·log(1 − s).
        shifted = tf.where(z_k > 0.5, shifted + log_w1 - lse1 + log_1ms, shifted + log_w0 - lse0)
        return k + 1, shifted, num_ones + z_k, out1, out0

    _, _, _, out1, out0 = tf.while_loop(
        lambda k, *_: k < n_cells,
        body,
        (tf.constant(0), shifted, num_ones, out1, out0),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, 1]),
            tf.TensorShape(None),
            tf.TensorShape(None),
        ),
    )
    lse1, lse0 = tf.transpose(out1.stack()), tf.transpose(out0.stack())  # [B, N]
    lse = tf.reduce_logsumexp(tf.stack([lse1, lse0]), axis=0)  # log R (+ rounding), so p_k + (1 − p_k) = 1
    return lse1 - lse, lse0 - lse


def _conditional_log_probs(pres_samples, s) -> tuple[tf.Tensor, tf.Tensor]:
    samples = _as_matrix("pres_samples", pres_samples)
    samples = tf.stop_gradient(tf.cast(samples > 0.5, tf.float32))
    _, log_1ms = _log_s_terms(s)
    log_1ms = tf.stop_gradient(tf.maximum(log_1ms, _LOG_TINY))  # s == 1: finite stand-in for −inf
    return _conditional_log_probs_loop(samples, log_1ms)


def conditional_pres_probs(pres_samples, s) -> tf.Tensor:
    """p(z_k = 1 | ẑ_{1:k−1}) under the count prior for every k (supplement B, eq. B1 with B2).

    Args:
        pres_samples: `[B, N]` sampled presence values ẑ in raster order (entries > 0.5 count as 1).
        s: scalar in (0, 1] (python float or scalar tensor).

    Returns:
        float32 `[B, N]`; entry k depends only on ẑ_{1:k−1}.
    """
    log_p1, _ = _conditional_log_probs(pres_samples, s)
    return tf.math.exp(log_p1)


def count_prior_kl(pres_probs, pres_samples, s) -> tf.Tensor:
    """Single-sample estimate of KL(q(z_pres) ‖ p(z_pres)) (supplement B).

    Σ_k KL(Bernoulli(β_k) ‖ Bernoulli(p_k)) with p_k = p(z_k = 1 | ẑ_{1:k−1}); its expectation over
    ẑ ~ q (a factorised q with probabilities β, or an autoregressive q whose k-th conditional is β_k) is
    the exact KL.

    Args:
        pres_probs: `[B, N]` q's Bernoulli probabilities β in [0, 1], raster order. Gradients flow here.
        pres_samples: `[B, N]` the sampled ẑ (entries > 0.5 count as 1); no gradient.
        s: scalar in (0, 1] (python float or scalar tensor); no gradient.

    Returns:
        float32 `[B]`.
    """
    beta = _as_matrix("pres_probs", pres_probs)
    samples = _as_matrix("pres_samples", pres_samples)
    if not beta.shape.is_compatible_with(samples.shape):
        raise ValueError(
            f"pres_probs and pres_samples must have the same shape; got {beta.shape} and {samples.shape}"
        )
    log_p1, log_p0 = _conditional_log_probs(samples, s)
    log_p1 = tf.maximum(log_p1, _LOG_EPS)
    log_p0 = tf.maximum(log_p0, _LOG_EPS)
    kl = (
        tf.math.xlogy(beta, beta)
        + tf.math.xlogy(1.0 - beta, 1.0 - beta)
        - beta * log_p1
        - (1.0 - beta) * log_p0
    )
    return tf.reduce_sum(kl, axis=1)


def count_prior_s_from_log_odds(log_odds) -> tf.Tensor:
    """s from the original code's parameter, float32.

    The original code writes the count prior as p(C = c) ∝ (1 − p)·p^c with p = sigmoid(log_odds), i.e.
    its p is the *failure* probability 1 − s, so s = 1 − sigmoid(log_odds) = sigmoid(−log_odds).
    """
    return tf.math.sigmoid(-tf.cast(log_odds, tf.float32))


def original_count_prior_s(step) -> tf.Tensor:
    """The original code's annealing schedule of s at training step `step` (float32 scalar tensor).

    v(t) = (1e6 − 0.0125)·0.1^(t / 1000) + 0.0125 (an exponential decay from 1e6 to 0.0125, decay rate 0.1
    per 1000 steps), log_odds = log(v + 1e-6), s = 1 − sigmoid(log_odds). So s ≈ 1e-6 at step 0
    (no pressure against objects), ≈ 0.001 at 3k, 0.091 at 5k, 0.497 at 6k, 0.899 at 7k, 0.978 at 8k, and
    → 1/(1.0125 + 1e-6) ≈ 0.98765. (The original config calls 0.0125 `final_count_prior_log_odds`, but
    it is the end value of v, which the schedule then logs.)
    """
    return schedules.count_prior_s(step, start=1e6, end=0.0125, decay_rate=0.1, decay_steps=1000.0)
