"""TUSK's sliced Wasserstein loss against exact optimal transport and closed forms.

The reference for one direction is the squared 2-Wasserstein distance between two N-point empirical measures
on the line, computed without sorting: an optimal transport plan between two uniform N-point measures can be
taken to be a permutation (Birkhoff), so W2² = min_σ (1/N) Σ_n (x_n − y_σ(n))², solved exactly by
`scipy.optimize.linear_sum_assignment` in float64.
"""
import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

from tfobj.models.tusk.sliced_wasserstein import random_projections, sliced_wasserstein


def w2_squared_1d(x, y):
    """Squared 2-Wasserstein distance of two equal-size 1-D samples, by optimal assignment (float64)."""
    cost = (x[:, None] - y[None, :]) ** 2
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()


def unit_rows(rng, num, dim):
    v = rng.normal(size=(num, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- against exact 1-D optimal transport --------------------------------------------------------------------


@pytest.mark.parametrize("num_points", [1, 2, 7, 40])
def test_single_projection_is_1d_w2_squared(num_points):
    rng = np.random.default_rng(num_points)
    a = rng.normal(size=(num_points, 3))
    b = rng.normal(loc=0.5, scale=2.0, size=(num_points, 3))
    theta = unit_rows(rng, 1, 3)
    expected = w2_squared_1d(a @ theta[0], b @ theta[0])
    got = sliced_wasserstein(a.astype(np.float32), b.astype(np.float32), theta.astype(np.float32))
    assert got.dtype == tf.float32 and got.shape == ()
    # float32 projections of O(1)-sized points round at ~1e-7·|x|; the squared differences (O(1)) to ~1e-6.
    assert float(got) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    got64 = sliced_wasserstein(a, b, theta)
    assert got64.dtype == tf.float64
    assert float(got64) == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_one_dimensional_points_with_the_unit_direction():
    # D = 1 and θ = [1]: the loss is W2² of the two samples themselves. Cross-check the assignment reference
    # with the quantile-function formula W2² = ∫_0^1 (F_a^{-1}(u) − F_b^{-1}(u))² du, evaluated on the N
    # constant pieces of the empirical quantile functions (at the midpoints of [n/N, (n + 1)/N)).
    rng = np.random.default_rng(1)
    a, b = rng.exponential(size=(25, 1)), rng.uniform(-1, 3, size=(25, 1))
    u = (np.arange(25) + 0.5) / 25
    quantile_a = np.quantile(a[:, 0], u, method="inverted_cdf")
    quantile_b = np.quantile(b[:, 0], u, method="inverted_cdf")
    quantiles = np.mean((quantile_a - quantile_b) ** 2)
    expected = w2_squared_1d(a[:, 0], b[:, 0])
    assert quantiles == pytest.approx(expected, rel=1e-12)
    assert float(sliced_wasserstein(a, b, [[1.0]])) == pytest.approx(expected, rel=1e-12)
    assert float(sliced_wasserstein(a, b, [[-1.0]])) == pytest.approx(expected, rel=1e-12)  # direction sign


def test_many_projections_sum_1d_distances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 5)), rng.laplace(size=(30, 5))
    theta = unit_rows(rng, 12, 5)
    expected = sum(w2_squared_1d(a @ t, b @ t) for t in theta)  # the original's scaling: a sum over directions
    got = sliced_wasserstein(a.astype(np.float32), b.astype(np.float32), theta.astype(np.float32))
    assert float(got) == pytest.approx(expected, rel=1e-5)  # float32, as in the single-projection test
    # Sum, not mean, over directions: repeating every direction doubles the loss.
    doubled = sliced_wasserstein(a, b, np.concatenate([theta, theta]))
    assert float(doubled) == pytest.approx(2 * expected, rel=1e-12)


# --- closed forms and properties ----------------------------------------------------------------------------


def test_shifted_set_gives_sum_of_squared_projected_shifts():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 4))
    shift = np.array([0.3, -1.2, 2.0, 0.5])
    theta = unit_rows(rng, 20, 4)
    expected = np.sum((theta @ shift) ** 2)  # sorting commutes with a shift: every matched pair differs by θ·v
    got = sliced_wasserstein(a.astype(np.float32), (a + shift).astype(np.float32), theta.astype(np.float32))
    # float32: each projected difference θ·v (~1) is the difference of two O(3) projections, error ~5e-7.
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(sliced_wasserstein(a, a + shift, theta)) == pytest.approx(expected, rel=1e-12)


def test_identical_and_permuted_sets_and_symmetry():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(64, 8)).astype(np.float32)
    b = rng.normal(size=(64, 8)).astype(np.float32)
    theta = random_projections(16, 8, seed=0)
    assert float(sliced_wasserstein(a, a, theta)) == 0.0
    assert float(sliced_wasserstein(a, a[rng.permutation(64)], theta)) == 0.0  # same sorted projections
    value = float(sliced_wasserstein(a, b, theta))
    assert value > 0
    # Reordering the points changes only the order inside the matmul's output, at most its last bit.
    permuted = float(sliced_wasserstein(a[rng.permutation(64)], b[rng.permutation(64)], theta))
    assert permuted == pytest.approx(value, rel=1e-6)
    assert float(sliced_wasserstein(b, a, theta)) == value  # (x − y)² == (y − x)² exactly


# --- gradients ----------------------------------------------------------------------------------------------


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    a = tf.Variable(rng.normal(size=(10, 3)))
    b = tf.Variable(rng.normal(size=(10, 3)) + 1.0)
    theta = unit_rows(rng, 6, 3)
    with tf.GradientTape() as tape:
        loss = sliced_wasserstein(a, b, theta)
    grad_a, grad_b = (g.numpy() for g in tape.gradient(loss, [a, b]))
    assert np.all(np.isfinite(grad_a)) and np.all(np.isfinite(grad_b))
    assert np.abs(grad_a).min() > 0 and np.abs(grad_b).min() > 0
    # Moving both sets together changes nothing: the gradients sum to zero over all points.
    np.testing.assert_allclose(grad_a.sum(axis=0) + grad_b.sum(axis=0), 0.0, atol=1e-12)
    # Central differences, h = 1e-6. The loss is a quadratic between sort-order changes; random points are
    # ~1e-2 apart after projection, far more than h, so the difference quotient is exact up to round-off,
    # ~ε·|loss|/h ≈ 2e-16·10/1e-6 ≈ 2e-9.
    for variable, grad in ((a, grad_a), (b, grad_b)):
        base = variable.numpy()
        for index in [(0, 0), (3, 1), (9, 2)]:
            plus, minus = base.copy(), base.copy()
            plus[index] += 1e-6
            minus[index] -= 1e-6
            args_plus = (plus, b.numpy()) if variable is a else (a.numpy(), plus)
            args_minus = (minus, b.numpy()) if variable is a else (a.numpy(), minus)
            numeric = (float(sliced_wasserstein(*args_plus, theta))
                       - float(sliced_wasserstein(*args_minus, theta))) / 2e-6
            assert numeric == pytest.approx(grad[index], abs=1e-7)


def test_inside_tf_function_with_unknown_number_of_points():
    @tf.function(input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None, 4]), tf.TensorSpec([None, 4])])
    def graph(a, b, theta):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = sliced_wasserstein(a, b, theta)
        return loss, tape.gradient(loss, a)

    rng = np.random.default_rng(6)
    theta = random_projections(9, 4, seed=3)
    for num_points in (5, 17):
        a = tf.constant(rng.normal(size=(num_points, 4)), tf.float32)
        b = tf.constant(rng.normal(size=(num_points, 4)), tf.float32)
        loss, grad = graph(a, b, theta)
        with tf.GradientTape() as tape:
            tape.watch(a)
            eager = sliced_wasserstein(a, b, theta)
        assert float(loss) == pytest.approx(float(eager), rel=1e-6)
        np.testing.assert_allclose(grad.numpy(), tape.gradient(eager, a).numpy(), rtol=1e-5, atol=1e-7)
        expected = sum(w2_squared_1d(a.numpy().astype(np.float64) @ t, b.numpy().astype(np.float64) @ t)
                       for t in theta.numpy().astype(np.float64))
        assert float(loss) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of points"):
        graph(tf.zeros([3, 4]), tf.zeros([4, 4]), theta)


# --- random projections -------------------------------------------------------------------------------------


def test_random_projections_are_deterministic_unit_and_isotropic():
    theta = random_projections(20000, 4, seed=7)
    assert theta.dtype == tf.float32 and theta.shape == (20000, 4)
    theta = theta.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, atol=1e-6)  # float32 rounding
    # Uniform on the sphere of R^4: E[θ] = 0 and E[θθᵀ] = I/4. Per entry, std(θ_i) = 1/2 and
    # std(θ_i²) = sqrt(E θ_i⁴ − 1/16) = sqrt(3/24 − 1/16) = 1/4 (off-diagonal θ_iθ_j: sqrt(1/24) ≈ 0.2),
    # so with P = 20000 the means have std ≤ 0.5/141 = 3.5e-3; atol 2e-2 is > 5 sigma.
    np.testing.assert_allclose(theta.mean(axis=0), 0.0, atol=2e-2)
    np.testing.assert_allclose(theta.T @ theta / len(theta), np.eye(4) / 4, atol=2e-2)
    np.testing.assert_array_equal(random_projections(20000, 4, seed=7).numpy(), theta.astype(np.float32))
    np.testing.assert_array_equal(random_projections(5, 3, seed=tf.constant([11, 0])).numpy(),
                                  random_projections(5, 3, seed=11).numpy())
    np.testing.assert_array_equal(random_projections(5, 3, seed=tf.constant(11, tf.int64)).numpy(),
                                  random_projections(5, 3, seed=11).numpy())
    assert not np.allclose(random_projections(5, 3, seed=12).numpy(), random_projections(5, 3, seed=11).numpy())

    @tf.function
    def per_step(step):
        return random_projections(5, 3, seed=tf.stack([tf.constant(11, tf.int64), step]))

    np.testing.assert_array_equal(per_step(tf.constant(0, tf.int64)).numpy(), random_projections(5, 3, 11).numpy())
    assert not np.allclose(per_step(tf.constant(1, tf.int64)).numpy(), random_projections(5, 3, 11).numpy())


# --- errors -------------------------------------------------------------------------------------------------


def test_errors():
    a = np.zeros((6, 3), np.float32)
    theta = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"same number of points.*\(6, 3\).*\(5, 3\)"):
        sliced_wasserstein(a, a[:5], theta)
    with pytest.raises(ValueError, match="same dimension D"):
        sliced_wasserstein(a, np.zeros((6, 4), np.float32), theta)
    with pytest.raises(ValueError, match="same dimension D"):
        sliced_wasserstein(a, a, np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"a must have shape \[N, D\]"):
        sliced_wasserstein(a[0], a, theta)
    with pytest.raises(ValueError, match=r"projections must have shape \[P, D\]"):
        sliced_wasserstein(a, a, theta[0])
    with pytest.raises(ValueError, match="b must be a float tensor"):
        sliced_wasserstein(a, a.astype(np.int32), theta)
    with pytest.raises(ValueError, match="at least one point"):
        sliced_wasserstein(a[:0], a[:0], theta)
    with pytest.raises(ValueError, match="at least one direction"):
        sliced_wasserstein(a, a, theta[:0])
    with pytest.raises(ValueError, match="unit rows; row 1 has norm 2"):
        sliced_wasserstein(a, a, theta * [[1.0], [2.0], [1.0]])
    with pytest.raises(ValueError, match="unit rows"):
        sliced_wasserstein(a, a, np.full((2, 3), np.nan, np.float32))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_projections must be a python int >= 1"):
            random_projections(bad, 3, 0)
        with pytest.raises(ValueError, match="dim must be a python int >= 1"):
            random_projections(3, bad, 0)
    for bad in (1.5, True, [1, 2, 3], tf.constant([1.0, 2.0]), 2**64):
        with pytest.raises(ValueError, match="seed must"):
            random_projections(3, 3, bad)
