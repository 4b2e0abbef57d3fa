"""SPAIR count prior and its recursive KL estimator against brute-force enumeration over {0,1}^N.

References are plain python/numpy in float64 and share no code with the implementation: the prior is
built from its generative process (explicitly summed truncated Geometric, then uniform over the
enumerated vectors with that many ones), conditionals and KLs are sums over all 2^N vectors.
"""
import collections
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import gammaln

from tfobj.models.spair.count_prior import (
    conditional_pres_probs,
    count_prior_kl,
    count_prior_log_prob,
    count_prior_s_from_log_odds,
    original_count_prior_s,
)

S_VALUES = (0.01, 0.5, 0.99)


# --- float64 references ---------------------------------------------------------------------------


def brute_prior(n_cells, s):
    """{z: p(z)} over all z in {0,1}^N, from the generative process of supplement A."""
    vectors = list(itertools.product((0, 1), repeat=n_cells))
    count_weights = [s * (1 - s) ** c for c in range(n_cells + 1)]
    total = sum(count_weights)
    vectors_with_count = collections.Counter(sum(v) for v in vectors)
    assert all(vectors_with_count[c] == math.comb(n_cells, c) for c in range(n_cells + 1))
    return {v: count_weights[sum(v)] / total / vectors_with_count[sum(v)] for v in vectors}


def brute_conditionals(prior, n_cells):
    """{prefix: p(z_k = 1 | z_{1:k-1} = prefix)}, k = len(prefix) + 1, by summing the joint over completions."""
    prefix_mass = collections.defaultdict(float)
    for v, p in prior.items():
        for k in range(n_cells + 1):
            prefix_mass[v[:k]] += p
    return {prefix: prefix_mass[prefix + (1,)] / prefix_mass[prefix]
            for prefix in prefix_mass if len(prefix) < n_cells}


def factorised_log_q(vectors, beta):
    """log q(z) for a factorised Bernoulli(beta) q; vectors [M, N], beta [N]."""
    return (vectors * np.log(beta) + (1 - vectors) * np.log1p(-beta)).sum(axis=1)


def closed_form_log_prob64(z, s):
    """Supplement A's closed form in float64 with scipy's gammaln (for large N)."""
    n_cells = z.shape[1]
    nz = z.sum(axis=1)
    log_1ms = np.log1p(-s)
    log_binom = gammaln(n_cells + 1) - gammaln(nz + 1) - gammaln(n_cells - nz + 1)
    return np.log(s) + nz * log_1ms - np.log(-np.expm1((n_cells + 1) * log_1ms)) - log_binom


def hypergeometric_log_conditionals64(sample, s):
    """log p(z_k = 1 | prefix) for every k of one sample, float64, without the recursion: given a prefix
    of length j with n ones, p(C = c | prefix) ∝ (1 - s)^c · binom(N - j, c - n) / binom(N, c)."""
    n_cells = sample.shape[0]
    counts = np.arange(n_cells + 1)[None, :]
    j = np.arange(n_cells)[:, None]
    n = np.concatenate([[0], np.cumsum(sample)[:-1]])[:, None]
    need = counts - n
    feasible = (need >= 0) & (need <= n_cells - j)
    safe_need = np.where(feasible, need, 0)
    log_post = (counts * np.log1p(-s) + gammaln(n_cells - j + 1) - gammaln(safe_need + 1)
                - gammaln(n_cells - j - safe_need + 1)
                - (gammaln(n_cells + 1) - gammaln(counts + 1) - gammaln(n_cells - counts + 1)))
    log_post = np.where(feasible, log_post, -np.inf)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    post /= post.sum(axis=1, keepdims=True)
    p1 = (post * np.maximum(need, 0)).sum(axis=1) / (n_cells - j[:, 0])
    p0 = (post * np.maximum(n_cells - j - need, 0)).sum(axis=1) / (n_cells - j[:, 0])
    return np.log(p1), np.log(p0)


def bernoulli_kl64(beta, log_p1, log_p0):
    return beta * (np.log(beta) - log_p1) + (1 - beta) * (np.log1p(-beta) - log_p0)


# --- 1. log prob -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_cells", [1, 3, 6, 10])
@pytest.mark.parametrize("s", S_VALUES)
def test_log_prob_equals_brute_force_and_normalises(n_cells, s):
    prior = brute_prior(n_cells, s)
    vectors = np.array(list(prior), np.float32)
    expected = np.log(np.array(list(prior.values())))
    got = count_prior_log_prob(vectors, s).numpy()
    assert got.dtype == np.float32 and got.shape == (2**n_cells,)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-6)
    assert np.exp(got.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)


def test_log_prob_s_equal_one():
    z = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    got = count_prior_log_prob(z, 1.0).numpy()
    assert got[0] == 0.0
    assert np.all(np.isneginf(got[1:]))


def test_log_prob_casts_low_precision_inputs_and_tensor_s():
    rng = np.random.default_rng(1)
    z = (rng.random((5, 37)) < 0.4).astype(np.float32)
    reference = count_prior_log_prob(z, 0.3).numpy()
    for dtype in (tf.bfloat16, tf.float16):
        got = count_prior_log_prob(tf.constant(z, dtype), tf.constant(0.3, dtype))
        assert got.dtype == tf.float32
        np.testing.assert_allclose(got.numpy(), reference, rtol=1e-3)  # s itself is rounded to 16 bits
    for s in (tf.constant(0.3), tf.constant(0.3, tf.float64), np.float64(0.3)):
        np.testing.assert_allclose(count_prior_log_prob(z, s).numpy(), reference, rtol=1e-6)


# --- 2. conditionals -------------------------------------------------------------------------------


@pytest.mark.parametrize("n_cells", [1, 2, 5, 8])
@pytest.mark.parametrize("s", S_VALUES)
def test_conditionals_equal_brute_force(n_cells, s):
    prior = brute_prior(n_cells, s)
    conditionals = brute_conditionals(prior, n_cells)
    vectors = list(prior)  # every prefix of every vector
    expected = np.array([[conditionals[v[:k]] for k in range(n_cells)] for v in vectors])
    got = conditional_pres_probs(np.array(vectors, np.float32), s).numpy()
    assert got.shape == (2**n_cells, n_cells)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


# --- 3. estimator's expectation is the exact KL ----------------------------------------------------


@pytest.mark.parametrize("n_cells", [1, 4, 8])
@pytest.mark.parametrize("s", S_VALUES)
def test_estimator_expectation_equals_exact_kl(n_cells, s):
    rng = np.random.default_rng(n_cells)
    beta = rng.uniform(0.02, 0.98, size=n_cells)
    prior = brute_prior(n_cells, s)
    vectors = np.array(list(prior), np.float64)
    log_q = factorised_log_q(vectors, beta)
    q = np.exp(log_q)
    exact_kl = np.sum(q * (log_q - np.log(np.array(list(prior.values())))))

    betas = np.tile(beta.astype(np.float32), (len(vectors), 1))
    estimates = count_prior_kl(betas, vectors.astype(np.float32), s).numpy().astype(np.float64)
    assert np.sum(q * estimates) == pytest.approx(exact_kl, rel=1e-4, abs=1e-5)


# --- 4. stability for thousands of cells -----------------------------------------------------------


LARGE_S = (1e-6, 0.5, 0.9876, 1 - 1e-6)


# N = 9216 takes ~1-2 s per s on 2 CPU cores; the two extreme s run by default, the middle ones with --run-slow.
@pytest.mark.parametrize("n_cells, s", [(2304, s) for s in LARGE_S] + [
    (9216, s) if s in (1e-6, 1 - 1e-6) else pytest.param(9216, s, marks=pytest.mark.slow) for s in LARGE_S
])
def test_large_grids_are_finite_and_accurate(n_cells, s):
    rng = np.random.default_rng(n_cells + int(1e6 * s))
    batch = 3 if n_cells <= 2304 else 2
    beta = tf.constant(rng.uniform(0.001, 0.999, size=(batch, n_cells)), tf.float32)
    rate = np.array([[0.01], [0.6], [0.3]])[:batch]  # sparse and dense samples
    samples = (rng.random((batch, n_cells)) < rate).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(beta)
        kl = count_prior_kl(beta, samples, s)
    grad = tape.gradient(kl, beta).numpy()
    kl = kl.numpy()
    assert np.all(np.isfinite(kl)) and np.all(kl >= -1e-3), kl
    assert np.all(np.isfinite(grad))
    log_prob = count_prior_log_prob(samples, s).numpy()
    assert np.all(np.isfinite(log_prob))
    # lgamma(N + 1) has float32 spacing 0.002 at N = 2304 (0.008 at N = 9216), which the log-binomial's
    # cancellation leaves as absolute error: measured up to 5e-6 relative at 2304 and 1.3e-5 at 9216, for
    # sparse rows (small |log p|).
    rtol = 1e-5 if n_cells <= 2304 else 3e-5
    np.testing.assert_allclose(log_prob, closed_form_log_prob64(samples.astype(np.float64), s), rtol=rtol)
    if n_cells > 2304:
        return
    # The float32 recursion against a float64 closed-form (hypergeometric) posterior, for the dense row
    # (the hardest: the posterior mode moves furthest). Measured float32 error of log p_k: up to ~1e-3
    # near the end of the scan for s = 1 − 1e-6 (rounding accumulated over 2304 steps), ≤ 1e-4 for
    # s ≤ 0.5; the KL sum is dominated by the many accurate terms (measured rel. error ≤ 1e-6).
    row = 1
    log_p1, log_p0 = hypergeometric_log_conditionals64(samples[row].astype(np.float64), s)
    expected_kl = bernoulli_kl64(beta.numpy()[row].astype(np.float64), log_p1, log_p0).sum()
    assert kl[row] == pytest.approx(expected_kl, rel=1e-5)
    got_p1 = conditional_pres_probs(samples[row:row + 1], s).numpy()[0]
    np.testing.assert_allclose(np.log(got_p1), log_p1, rtol=0, atol=2e-3)


def test_large_grid_with_s_equal_one_is_finite():
    rng = np.random.default_rng(3)
    beta = tf.constant(rng.uniform(0.001, 0.999, size=(2, 2304)), tf.float32)
    samples = (rng.random((2, 2304)) < 0.3).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(beta)
        kl = count_prior_kl(beta, samples, 1.0)
    assert np.all(np.isfinite(kl.numpy())) and np.all(np.isfinite(tape.gradient(kl, beta).numpy()))


def test_s_equal_one_kl_is_finite():
    # s = 1: every p_k is 0 (clamped to 1e-30 in the KL's logs), whatever the samples, so each cell
    # contributes β(log β − log 1e-30) + (1 − β) log(1 − β).
    beta = np.array([[0.5, 0.2, 0.9, 0.01, 0.7], [0.5, 0.2, 0.9, 0.01, 0.7]], np.float32)
    samples = np.array([[0, 0, 0, 0, 0], [0, 1, 0, 0, 1]], np.float32)
    kl = count_prior_kl(beta, samples, 1.0).numpy()
    b = beta.astype(np.float64)
    expected = (b * (np.log(b) - np.log(1e-30)) + (1 - b) * np.log1p(-b)).sum(axis=1)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)


# --- 5. gradients ----------------------------------------------------------------------------------


def test_gradient_matches_analytic_and_finite_differences():
    n_cells, s = 6, 0.3
    rng = np.random.default_rng(5)
    beta_np = rng.uniform(0.05, 0.95, size=(2, n_cells)).astype(np.float32)
    samples_np = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 0, 1, 0, 1]], np.float32)
    beta, samples = tf.Variable(beta_np), tf.Variable(samples_np)
    with tf.GradientTape() as tape:
        kl = tf.reduce_sum(count_prior_kl(beta, samples, s))
    grad_beta, grad_samples = tape.gradient(kl, [beta, samples])
    assert grad_samples is None
    grad = grad_beta.numpy()
    assert np.all(np.isfinite(grad))

    # Analytic d/dβ_k KL(Bern(β_k) ‖ Bern(p_k)) = logit(β_k) − logit(p_k), p_k from brute force.
    conditionals = brute_conditionals(brute_prior(n_cells, s), n_cells)
    p = np.array([[conditionals[tuple(int(x) for x in row[:k])] for k in range(n_cells)] for row in samples_np])
    beta64 = beta_np.astype(np.float64)
    analytic = np.log(beta64) - np.log1p(-beta64) - np.log(p) + np.log1p(-p)
    np.testing.assert_allclose(grad, analytic, rtol=1e-5, atol=1e-5)

    # Central differences in float32, h = 1e-3: truncation error ~h²·|f'''|/6 < 1e-5 for β in
    # [0.05, 0.95]; round-off ~ε·|KL|/h ≈ 6e-8·5/1e-3 = 3e-4; so atol 2e-3.
    h = 1e-3
    for row, k in [(0, 0), (0, 4), (1, 3)]:
        plus, minus = beta_np.copy(), beta_np.copy()
        plus[row, k] += h
        minus[row, k] -= h
        numeric = (count_prior_kl(plus, samples_np, s)[row] - count_prior_kl(minus, samples_np, s)[row]) / (2 * h)
        assert float(numeric) == pytest.approx(grad[row, k], abs=2e-3)


def test_gradient_is_finite_at_saturated_probabilities():
    beta = tf.constant([[0.0, 1.0, 0.5, 1.0]])
    samples = tf.constant([[0.0, 1.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(beta)
        kl = count_prior_kl(beta, samples, 0.7)
    assert np.all(np.isfinite(kl.numpy()))
    assert np.all(np.isfinite(tape.gradient(kl, beta).numpy()))


# --- tf.function with an unknown batch size --------------------------------------------------------


def test_inside_tf_function_with_unknown_batch():
    n_cells = 7
    spec = tf.TensorSpec([None, n_cells], tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([], tf.float32)])
    def compute(beta, samples, s):
        return count_prior_kl(beta, samples, s), count_prior_log_prob(samples, s), conditional_pres_probs(samples, s)

    rng = np.random.default_rng(7)
    for batch in (1, 4):
        beta = rng.uniform(0.1, 0.9, size=(batch, n_cells)).astype(np.float32)
        samples = (rng.random((batch, n_cells)) < 0.5).astype(np.float32)
        kl, log_prob, probs = compute(beta, samples, tf.constant(0.6))
        np.testing.assert_allclose(kl.numpy(), count_prior_kl(beta, samples, 0.6).numpy(), rtol=1e-6)
        np.testing.assert_allclose(log_prob.numpy(), count_prior_log_prob(samples, 0.6).numpy(), rtol=1e-6)
        np.testing.assert_allclose(probs.numpy(), conditional_pres_probs(samples, 0.6).numpy(), rtol=1e-6)
    assert len(compute.get_concrete_function().graph.get_operations()) > 0


def test_under_xla():
    rng = np.random.default_rng(8)
    beta = tf.constant(rng.uniform(0.1, 0.9, size=(3, 10)), tf.float32)
    samples = tf.constant((rng.random((3, 10)) < 0.4).astype(np.float32))

    @tf.function(jit_compile=True)
    def compute(beta, samples):
        with tf.GradientTape() as tape:
            tape.watch(beta)
            kl = count_prior_kl(beta, samples, 0.8)
        return kl, tape.gradient(kl, beta), count_prior_log_prob(samples, 0.8)

    kl, grad, log_prob = compute(beta, samples)
    with tf.GradientTape() as tape:
        tape.watch(beta)
        eager_kl = count_prior_kl(beta, samples, 0.8)
    np.testing.assert_allclose(kl.numpy(), eager_kl.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), tape.gradient(eager_kl, beta).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_prob.numpy(), count_prior_log_prob(samples, 0.8).numpy(), rtol=1e-6)


# --- 6. errors -------------------------------------------------------------------------------------


def test_errors():
    good = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"z_pres.*\(4,\)"):
        count_prior_log_prob(np.zeros(4, np.float32), 0.5)
    with pytest.raises(ValueError, match=r"z_pres.*\(2, 4, 1\)"):
        count_prior_log_prob(np.zeros((2, 4, 1), np.float32), 0.5)
    with pytest.raises(ValueError, match="pres_probs"):
        count_prior_kl(np.zeros(4, np.float32), good, 0.5)
    with pytest.raises(ValueError, match="pres_samples"):
        count_prior_kl(good, np.zeros((2, 4, 1), np.float32), 0.5)
    with pytest.raises(ValueError, match="pres_samples"):
        conditional_pres_probs(np.zeros(4, np.float32), 0.5)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5\)"):
        count_prior_kl(good, np.zeros((2, 5), np.float32), 0.5)
    with pytest.raises(ValueError, match="at least one cell"):
        count_prior_log_prob(np.zeros((2, 0), np.float32), 0.5)
    for bad_s in (0.0, -0.1, 1.5, float("nan"), 2, tf.constant(0.0), tf.constant(1.2)):
        with pytest.raises(ValueError, match="s must be in"):
            count_prior_log_prob(good, bad_s)
        with pytest.raises(ValueError, match="s must be in"):
            count_prior_kl(good, good, bad_s)
    with pytest.raises(ValueError, match="s must be a scalar"):
        count_prior_log_prob(good, tf.constant([0.5]))


# --- 7. the original code's parametrisation and schedule -------------------------------------------


def test_s_from_log_odds_matches_original_count_distribution():
    n_cells = 20
    for log_odds in (-3.0, 0.0, np.log(0.0125), 2.0):
        p = 1 / (1 + np.exp(-log_odds))  # the original code: p(C = c) ∝ (1 − p)·p^c
        original = (1 - p) * p ** np.arange(n_cells + 1)
        original /= original.sum()
        s = float(count_prior_s_from_log_odds(log_odds))
        ours = s * (1 - s) ** np.arange(n_cells + 1)
        # s is a float32: 1 − s carries a relative error ~6e-8/(1 − s) ≤ 5e-6, raised to powers up to 20.
        np.testing.assert_allclose(ours / ours.sum(), original, rtol=2e-4)


@pytest.mark.parametrize("step, expected", [
    (0, 1e-6), (3000, 0.001), (5000, 0.091), (6000, 0.497), (7000, 0.899), (8000, 0.978), (10**6, 0.9876),
])
def test_original_schedule(step, expected):
    s = float(original_count_prior_s(step))
    assert s == pytest.approx(expected, abs=2e-3)
    if step == 0:
        assert s == pytest.approx(1e-6, rel=1e-3)
    if step == 10**6:
        assert s == pytest.approx(1 / (1 + 0.0125 + 1e-6), rel=1e-6)


def test_original_schedule_is_monotone_and_works_on_tensors():
    steps = tf.range(0, 20000, 250)
    s = original_count_prior_s(steps).numpy()
    assert s.shape == (80,) and np.all(np.diff(s) >= 0) and 0 < s[0] and s[-1] < 1
