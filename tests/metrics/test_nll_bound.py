"""The importance-weighted −log p(x) bound (LAVAE Table 1) on a linear-Gaussian model whose exact likelihood is
known in closed form (scipy.stats.multivariate_normal of the marginal), with a deliberately wrong Gaussian q."""
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from tfobj.metrics.nll_bound import importance_weighted_nll

LATENT, OBSERVED, SIGMA = 2, 4, 0.5  # k, d, σ
_setup_rng = np.random.default_rng(0)
WEIGHT = _setup_rng.normal(size=(OBSERVED, LATENT))  # W, [d, k]
BIAS = _setup_rng.normal(size=OBSERVED)  # b, [d]
# q(z | x) = N(μ(x) + L·SHIFT, SCALE·Σ) around the exact posterior N(μ(x), Σ = L Lᵀ): a shifted, wider
# Gaussian. With SCALE < 2 the importance weights have finite variance (2Σ⁻¹ − (SCALE·Σ)⁻¹ ≻ 0).
SHIFT, SCALE = np.array([1.3, 0.0]), 1.5


class LinearGaussian:
    """z ~ N(0, I_k), x | z ~ N(Wz + b, σ² I_d); implements the metric's protocol with q as above.

    Samples are drawn sample-major (`[S, B, k]`) from one generator, so requesting 100 samples at once or in
    chunks draws the same z's.
    """

    def __init__(self, seed, shift=SHIFT, scale=SCALE, as_tf_float32=False):
        self.rng = np.random.default_rng(seed)
        self.shift, self.scale, self.as_tf_float32 = np.asarray(shift, np.float64), scale, as_tf_float32
        self.cov = np.linalg.inv(np.eye(LATENT) + WEIGHT.T @ WEIGHT / SIGMA**2)  # exact posterior Σ
        self.chol = np.linalg.cholesky(self.cov)  # L
        self.requested = []

    def importance_log_weights(self, images, num_samples):
        self.requested.append(num_samples)
        x = np.asarray(images, np.float64)  # [B, d]
        posterior_mean = (x - BIAS) @ WEIGHT / SIGMA**2 @ self.cov  # μ(x), [B, k]
        eps = self.rng.standard_normal((num_samples, len(x), LATENT))  # [S, B, k]
        z = posterior_mean + self.chol @ self.shift + math.sqrt(self.scale) * eps @ self.chol.T  # [S, B, k]
        log_prior = -0.5 * np.sum(z**2, axis=-1) - 0.5 * LATENT * math.log(2 * math.pi)
        residual = x - (z @ WEIGHT.T + BIAS)  # [S, B, d]
        log_likelihood = -0.5 * np.sum(residual**2, axis=-1) / SIGMA**2 - 0.5 * OBSERVED * math.log(
            2 * math.pi * SIGMA**2)
        log_q = (-0.5 * np.sum(eps**2, axis=-1) - 0.5 * LATENT * math.log(2 * math.pi)
                 - 0.5 * LATENT * math.log(self.scale) - np.sum(np.log(np.diag(self.chol))))
        log_weights = (log_prior + log_likelihood - log_q).T  # [B, S]
        return tf.constant(log_weights, tf.float32) if self.as_tf_float32 else log_weights


def sample_images(num_images, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_images, LATENT))
    return z @ WEIGHT.T + BIAS + SIGMA * rng.standard_normal((num_images, OBSERVED))  # [B, d]


def exact_nll(images):
    """−log p(x) from the closed-form marginal x ~ N(b, W Wᵀ + σ² I), scipy."""
    marginal = multivariate_normal(mean=BIAS, cov=WEIGHT @ WEIGHT.T + SIGMA**2 * np.eye(OBSERVED))
    return -marginal.logpdf(images)


# Closed forms for q vs the exact posterior, in whitened coordinates (posterior N(0, I), q N(SHIFT, SCALE·I)):
# KL(q ‖ posterior) = ½[k(c − 1 − ln c) + |δ|²]: the expected gap of the S = 1 bound (the negative ELBO).
KL = 0.5 * (LATENT * (SCALE - 1 - math.log(SCALE)) + SHIFT @ SHIFT)  # 0.940
# Var_q(w / p(x)) = ∫ posterior² / q − 1 = (c² / (2c − 1))^{k/2} exp(|δ|² / (2c − 1)) − 1 (a Gaussian
# integral; 1.62, simulated 1.61).
REL_VAR = (SCALE**2 / (2 * SCALE - 1)) ** (LATENT / 2) * math.exp(SHIFT @ SHIFT / (2 * SCALE - 1)) - 1


def test_exact_posterior_gives_exact_nll_for_any_sample_count():
    images = sample_images(6, seed=1)
    expected = exact_nll(images)
    model = LinearGaussian(seed=2, shift=[0.0, 0.0], scale=1.0)
    weights = model.importance_log_weights(images, 50)
    assert np.ptp(weights, axis=1).max() < 1e-12  # zero-variance weights: every one is log p(x)
    for num_samples in (1, 2, 7, 100):
        for batch_samples in (None, 3):
            got = importance_weighted_nll(model, images, num_samples, batch_samples)
            assert got.dtype == np.float64 and got.shape == (6,)
            # float64 sums of ~10 terms of size ≤ ~20 (rounding ~1e-14) vs scipy's eigendecomposition.
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_converges_to_exact_nll_with_many_samples():
    images = sample_images(4, seed=3)
    num_samples = 50_000
    got = importance_weighted_nll(LinearGaussian(seed=4), images, num_samples, batch_samples=10_000)
    # Delta method: bound − (−log p(x)) = −log(1 + ε̄), ε̄ the mean of S relative weights minus 1, with
    # Var(ε̄) = REL_VAR / S: bias ≈ REL_VAR / (2S) = 2e-5 and standard deviation √(REL_VAR / S) = 5.7e-3.
    # 5 standard deviations (two-sided, 4 images: a correct bound fails with probability ~2e-6) plus bias:
    tolerance = REL_VAR / (2 * num_samples) + 5 * math.sqrt(REL_VAR / num_samples)  # 0.029
    assert tolerance < KL / 30  # tight enough to tell the bound from the negative ELBO (gap KL = 0.94)
    np.testing.assert_allclose(got, exact_nll(images), rtol=0, atol=tolerance)


def test_upper_bound_and_decreasing_in_expectation():
    """E[bound_S] ≥ −log p(x) for every S, = −log p(x) + KL at S = 1, and decreasing in S (Burda et al. 2016)."""
    num_rows = 16_000  # independent draws of the bound: 8 images × 2000 rows each
    images = np.repeat(sample_images(8, seed=5), num_rows // 8, axis=0)
    exact = exact_nll(images)
    model = LinearGaussian(seed=6)
    means, standard_errors = {}, {}
    for num_samples in (1, 2, 5, 20, 100):
        gaps = importance_weighted_nll(model, images, num_samples, batch_samples=25) - exact  # [rows]
        means[num_samples] = gaps.mean()
        standard_errors[num_samples] = gaps.std(ddof=1) / math.sqrt(num_rows)
    # The gap's distribution is the same for every image (q is the posterior shifted in whitened
    # coordinates), so the rows are i.i.d. and the mean has standard error std / √rows (≤ 0.013 at S = 1,
    # 0.001 at S = 100). Every check below is at 4 standard errors: a correct implementation fails one with
    # probability ≤ ~3e-5 each (the seed makes the test deterministic).
    assert means[1] == pytest.approx(KL, abs=4 * standard_errors[1])  # negative ELBO, exact
    for num_samples, mean in means.items():
        # Strictly above −log p(x): the expected gaps (≈ 0.94, 0.46, 0.18, 0.041, 0.008 from simulation;
        # ≈ REL_VAR / 2S for large S) are ≥ 8 standard errors.
        assert mean > 4 * standard_errors[num_samples], (num_samples, mean)
    counts = sorted(means)
    for fewer, more in zip(counts[:-1], counts[1:]):
        # Expected differences ≥ 0.033 (20 → 100: 14 standard errors of the difference) and up to 0.48
        # (1 → 2, standard error 0.016).
        se_diff = math.hypot(standard_errors[fewer], standard_errors[more])
        assert means[fewer] - means[more] > 4 * se_diff, (fewer, more, means)
    # Large S: the delta method's REL_VAR / (2S) = 0.0081 at S = 100 (next term O(1/S²) ≈ 1e-4).
    assert means[100] == pytest.approx(REL_VAR / 200, abs=4 * standard_errors[100] + 5e-4)


def test_chunking_does_not_change_the_result():
    images = sample_images(5, seed=7)
    reference_model = LinearGaussian(seed=8)
    reference = importance_weighted_nll(reference_model, images, 100)
    assert reference_model.requested == [100]
    expected_requests = {1: [1] * 100, 7: [7] * 14 + [2], 30: [30, 30, 30, 10], 100: [100], 1000: [100]}
    for batch_samples, requests in expected_requests.items():
        model = LinearGaussian(seed=8)  # the same stream of z's
        got = importance_weighted_nll(model, images, 100, batch_samples)
        assert model.requested == requests
        # Streaming log-sum-exp vs one pass: float64 rounding only (values ~10, ≤ 100 additions).
        np.testing.assert_allclose(got, reference, rtol=1e-13, atol=0)
    # And the value is −(logsumexp − log S) of the weights the model returned (scipy as the reference).
    weights = LinearGaussian(seed=8).importance_log_weights(images, 100)
    np.testing.assert_allclose(reference, -(logsumexp(weights, axis=1) - math.log(100)), rtol=1e-13)


class FixedWeights:
    """Returns the columns of a fixed `[B, S]` array in order, as float64 numpy or float32 tensors."""

    def __init__(self, log_weights):
        self.log_weights, self.position = log_weights, 0

    def importance_log_weights(self, images, num_samples):
        chunk = self.log_weights[:, self.position:self.position + num_samples]
        self.position += num_samples
        return chunk


def test_extreme_and_minus_inf_weights():
    rng = np.random.default_rng(9)
    weights = np.stack([
        rng.normal(-3000.0, 30.0, size=40),  # image-scale log weights: exp underflows
        rng.normal(1000.0, 1e-3, size=40),  # exp overflows
        np.where(np.arange(40) % 3 == 0, -np.inf, rng.normal(size=40)),  # samples of probability 0
        np.full(40, -np.inf),  # every sample impossible: the bound is +inf
    ])
    expected = -(logsumexp(weights, axis=1) - math.log(40))
    assert expected[3] == np.inf
    for batch_samples in (None, 1, 6, 40):
        got = importance_weighted_nll(FixedWeights(weights), np.zeros((4, 3)), 40, batch_samples)
        np.testing.assert_allclose(got, expected, rtol=1e-13)  # float64 rounding only


def test_float32_tensor_weights():
    images = sample_images(5, seed=10)
    expected = importance_weighted_nll(LinearGaussian(seed=11), images, 100, 30)
    got = importance_weighted_nll(LinearGaussian(seed=11, as_tf_float32=True), tf.constant(images), 100, 30)
    # Log weights of size ≤ ~20 rounded to float32 (≤ 1e-6 each); log-sum-exp moves by at most that.
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_errors():
    images = sample_images(3, seed=12)
    model = LinearGaussian(seed=13)
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
            importance_weighted_nll(model, images, bad)
    for bad in (0, 1.0, False):
        with pytest.raises(ValueError, match="batch_samples must be None or an integer >= 1"):
            importance_weighted_nll(model, images, 10, bad)
    with pytest.raises(ValueError, match="must have a method importance_log_weights.*object has none"):
        importance_weighted_nll(object(), images, 10)

    def wrong(result):
        return type("Wrong", (), {"importance_log_weights": lambda self, images, num_samples: result})()

    with pytest.raises(ValueError, match=r"return shape \[3, 10\].*got shape \(3, 11\)"):
        importance_weighted_nll(wrong(np.zeros((3, 11))), images, 10)
    with pytest.raises(ValueError, match=r"return shape \[3, 10\].*got shape \(3,\)"):
        importance_weighted_nll(wrong(np.zeros(3)), images, 10)
    with pytest.raises(ValueError, match=r"return shape \[3, 10\].*got shape \(4, 10\)"):
        importance_weighted_nll(wrong(np.zeros((4, 10))), images, 10)
    with pytest.raises(ValueError, match=r"NaN or \+inf.*samples 0\.\.9"):
        importance_weighted_nll(wrong(np.full((3, 10), np.nan)), images, 10)
    with pytest.raises(ValueError, match=r"NaN or \+inf.*samples 4\.\.7"):
        importance_weighted_nll(FixedWeights(np.where(np.arange(10) == 5, np.inf, 0.0)[None]), [0.0], 10, 4)
    # Images without a shape: the batch size must at least agree between calls.
    changing = FixedWeights(np.zeros((2, 10)))
    changing.importance_log_weights = lambda images, n: np.zeros((2, n) if n == 5 else (3, n))
    with pytest.raises(ValueError, match="same batch size on every call; got 3 rows after 2"):
        importance_weighted_nll(changing, "images", 8, 5)
