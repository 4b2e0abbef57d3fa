"""LAVAE's location prior (eq. 3) and posterior (eq. 11) against brute-force enumeration over every ordered
location sequence of tiny D, a plain float64 loop of the product formula, a sequential sampler, finite
differences and the analytic gradient."""
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from tfobj.models.lavae.location import location_log_prob, location_prior_log_prob

# --- float64 references ---------------------------------------------------------------------------


def loop_log_prob64(logits, sequence):
    """log q(sequence) by eq. (11) in float64, one step at a time: softmax over the available locations."""
    logits = np.asarray(logits, np.float64)
    available = np.ones(logits.shape[0], bool)
    total = 0.0
    for location in sequence:
        if not available[location]:
            return -np.inf
        total += logits[location] - logsumexp(logits[available])
        available[location] = False
    return total


def loop_prior_log_prob64(num_locations, n):
    """log p(sequence | n) by eq. (3): step i is uniform over the D − i + 1 locations left (1-based i)."""
    return -sum(math.log(num_locations - i + 1) for i in range(1, n + 1))


def analytic_gradient64(logits, sequence):
    """d log q / d h_d = Σ_i (1[d = l_i] − 1[d available at i]·softmax_available(h)_d), float64."""
    logits = np.asarray(logits, np.float64)
    available = np.ones(logits.shape[0], bool)
    grad = np.zeros_like(logits)
    for location in sequence:
        probs = np.where(available, np.exp(logits - logsumexp(logits[available])), 0.0)
        grad -= probs
        grad[location] += 1.0
        available[location] = False
    return grad


def pad(sequence, max_objects, num_locations, rng):
    """Pads to length M with random entries in [0, D) (repeats included): they must not matter."""
    return list(sequence) + list(rng.integers(0, num_locations, size=max_objects - len(sequence)))


# --- 1. brute-force enumeration --------------------------------------------------------------------


@pytest.mark.parametrize("num_locations, max_objects", [(5, 3), (4, 4), (3, 5)])  # n < D, n = D, M > D
def test_every_ordered_sequence_against_the_loop_and_normalised(num_locations, max_objects):
    rng = np.random.default_rng(num_locations * 10 + max_objects)
    logit_rows = rng.normal(0.0, 2.0, size=(3, num_locations)).astype(np.float32)  # 3 posteriors
    for n in range(min(num_locations, max_objects) + 1):
        # Every sequence in D^n, distinct or not, for each of the 3 logit rows.
        sequences = list(itertools.product(range(num_locations), repeat=n))
        logits = np.repeat(logit_rows, len(sequences), axis=0)
        locations = np.array([pad(s, max_objects, num_locations, rng) for _ in logit_rows for s in sequences],
                             np.int32).reshape(len(logits), max_objects)
        got = location_log_prob(logits, locations, np.full(len(logits), n, np.int32)).numpy()
        assert got.dtype == np.float32 and got.shape == (len(logits),)
        expected = np.array([loop_log_prob64(row, s) for row in logit_rows for s in sequences])

        repeats = np.isneginf(expected)
        assert repeats.sum() == len(logit_rows) * (num_locations**n - math.perm(num_locations, n))
        np.testing.assert_array_equal(np.isneginf(got), repeats)  # repeats: −inf, nothing else
        # float32 logits of size ≤ ~6: each step's h − logsumexp rounds at ~1e-6; n ≤ 4 steps.
        np.testing.assert_allclose(got[~repeats], expected[~repeats], rtol=0, atol=3e-6)
        # The probabilities of all sequences of length n sum to 1 for each posterior: float32 probabilities
        # with relative error ≤ ~3e-6 each, summed in float64.
        totals = np.exp(got.astype(np.float64)).reshape(len(logit_rows), len(sequences)).sum(axis=1)
        np.testing.assert_allclose(totals, 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_locations, max_objects", [(5, 3), (4, 4)])
def test_equal_logits_give_the_prior(num_locations, max_objects):
    rng = np.random.default_rng(2)
    for n in range(min(num_locations, max_objects) + 1):
        sequences = list(itertools.permutations(range(num_locations), n))
        locations = np.array([pad(s, max_objects, num_locations, rng) for s in sequences],
                             np.int32).reshape(-1, max_objects)
        num_objects = np.full(len(sequences), n, np.int32)
        for value in (0.0, 3.7, -80.0):  # any constant: softmax of equal logits is uniform
            logits = np.full((len(sequences), num_locations), value, np.float32)
            got = location_log_prob(logits, locations, num_objects).numpy()
            # float32 rounding of a sum of n ≤ 4 logs of size ≤ 2, shifted by |value| ≤ 80 inside each step.
            np.testing.assert_allclose(got, loop_prior_log_prob64(num_locations, n), rtol=0, atol=2e-5)
        prior = location_prior_log_prob(num_locations, num_objects).numpy()
        assert prior.dtype == np.float32 and prior.shape == (len(sequences),)
        np.testing.assert_allclose(prior, loop_prior_log_prob64(num_locations, n), rtol=1e-7, atol=0)
        # The prior normalises over the D!/(D − n)! distinct sequences.
        assert np.exp(prior.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("num_locations, n", [(1, 0), (1, 1), (7, 3), (4096, 0), (4096, 1), (4096, 10), (4096, 4096)])
def test_prior_against_the_loop_at_large_d(num_locations, n):
    got = float(location_prior_log_prob(num_locations, np.array([n], np.int32))[0])
    # Computed in float64 and rounded once: relative error ≤ 2^-24 ≈ 6e-8 of values up to 3e4.
    assert got == pytest.approx(loop_prior_log_prob64(num_locations, n), rel=1e-7, abs=0)


def test_prior_with_tensor_num_locations():
    got = location_prior_log_prob(tf.constant(9, tf.int64), tf.constant([0, 2, 9], tf.int64)).numpy()
    np.testing.assert_allclose(got, [loop_prior_log_prob64(9, n) for n in (0, 2, 9)], rtol=1e-7)


def test_sequential_sampler_frequencies_match():
    """The paper's generative procedure (supplement: sample, then set the sampled logit to a low value so it
    is not drawn again), simulated in numpy with Gumbel-max per step, gives each ordered sequence with the
    frequency exp(location_log_prob)."""
    num_locations, n, num_draws = 4, 3, 40_000
    rng = np.random.default_rng(11)
    logits = np.array([1.5, -0.5, 0.3, -1.2], np.float32)
    masked = np.tile(logits.astype(np.float64), (num_draws, 1))
    draws = np.zeros((num_draws, n), np.int64)
    for i in range(n):
        draws[:, i] = np.argmax(masked + rng.gumbel(size=masked.shape), axis=1)
        masked[np.arange(num_draws), draws[:, i]] = -np.inf
    sequences = list(itertools.permutations(range(num_locations), n))
    index = {s: k for k, s in enumerate(sequences)}
    counts = np.bincount([index[tuple(d)] for d in draws], minlength=len(sequences))
    probs = np.exp(location_log_prob(np.tile(logits, (len(sequences), 1)), np.array(sequences, np.int32),
                                     np.full(len(sequences), n, np.int32)).numpy().astype(np.float64))
    # Binomial z-scores of the 24 counts: a correct implementation exceeds |z| = 4.5 in any of the 24 cells
    # with probability ≤ 24·6.8e-6 ≈ 2e-4 (the seed makes the test deterministic).
    z = (counts - num_draws * probs) / np.sqrt(num_draws * probs * (1 - probs))
    assert np.max(np.abs(z)) < 4.5, z
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


# --- 2. entries after the n-th ---------------------------------------------------------------------


def test_entries_after_n_do_not_matter():
    num_locations, max_objects, batch = 6, 5, 8
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 3.0, size=(batch, num_locations)).astype(np.float32)
    num_objects = np.array([0, 1, 2, 3, 4, 5, 3, 5], np.int32)
    firsts = [rng.permutation(num_locations)[:max_objects] for _ in range(batch)]
    expected = np.array([loop_log_prob64(logits[b], firsts[b][:num_objects[b]]) for b in range(batch)])
    results = []
    for fill in ("zeros", "repeat_first", "random", "minus_one", "huge"):
        locations = np.stack(firsts).astype(np.int32)
        after = np.arange(max_objects)[None, :] >= num_objects[:, None]
        value = {"zeros": 0, "minus_one": -1, "huge": 10**6}.get(fill)
        if fill == "repeat_first":
            locations = np.where(after, locations[:, :1], locations)
        elif fill == "random":
            locations = np.where(after, rng.integers(0, num_locations, size=locations.shape), locations)
        else:
            locations = np.where(after, value, locations)
        results.append(location_log_prob(logits, locations.astype(np.int32), num_objects).numpy())
    for got in results:
        np.testing.assert_array_equal(got, results[0])  # never read: bitwise identical
    np.testing.assert_allclose(results[0], expected, rtol=0, atol=5e-6)  # as in test 1, n ≤ 5 steps
    assert results[0][0] == 0.0  # n = 0


# --- 3. gradients ----------------------------------------------------------------------------------


def test_gradient_matches_finite_differences():
    num_locations, max_objects = 4, 5  # M > D: steps after n = D exist
    rng = np.random.default_rng(5)
    logits_np = rng.normal(0.0, 1.5, size=(4, num_locations)).astype(np.float32)
    sequences = [[2, 0, 3, 1], [1, 3, 0], [3], []]  # n = D (all drawn, R = log 0), 3, 1, 0
    locations = np.array([pad(s, max_objects, num_locations, rng) for s in sequences], np.int32)
    num_objects = np.array([len(s) for s in sequences], np.int32)
    logits = tf.Variable(logits_np)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(location_log_prob(logits, locations, num_objects))
    grad = tape.gradient(total, logits).numpy()
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[3], 0.0)  # n = 0: constant 0

    @tf.function(jit_compile=True)
    def xla_gradient(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            total = tf.reduce_sum(location_log_prob(logits, locations, num_objects))
        return tape.gradient(total, logits)

    # The same float32 math fused by XLA: rounding differences only.
    np.testing.assert_allclose(xla_gradient(tf.constant(logits_np)).numpy(), grad, rtol=0, atol=1e-6)
    # Central differences of the float64 loop, h = 1e-5: truncation ~h²·|f'''|/6 < 1e-10, round-off
    # ~1e-16·|f|/h < 1e-10; the float32 gradient itself carries ~1e-6. So atol 1e-5.
    h = 1e-5
    for row, sequence in enumerate(sequences):
        base = logits_np[row].astype(np.float64)
        numeric = np.zeros(num_locations)
        for d in range(num_locations):
            plus, minus = base.copy(), base.copy()
            plus[d] += h
            minus[d] -= h
            numeric[d] = (loop_log_prob64(plus, sequence) - loop_log_prob64(minus, sequence)) / (2 * h)
        np.testing.assert_allclose(grad[row], numeric, rtol=0, atol=1e-5)
        np.testing.assert_allclose(grad[row], analytic_gradient64(base, sequence), rtol=0, atol=1e-5)


def test_repeated_locations_are_minus_inf_with_finite_gradient():
    logits = tf.Variable(np.array([[0.5, 1.0, -2.0, 0.1]] * 3, np.float32))
    locations = np.array([[2, 2, 1], [0, 1, 0], [3, 1, 3]], np.int32)  # rows 0, 1 repeat; row 2 repeats after n
    num_objects = np.array([3, 3, 2], np.int32)
    with tf.GradientTape() as tape:
        log_prob = location_log_prob(logits, locations, num_objects)
        total = tf.reduce_sum(log_prob)
    got = log_prob.numpy()
    assert np.isneginf(got[0]) and np.isneginf(got[1])
    assert got[2] == pytest.approx(loop_log_prob64(logits.numpy()[2], [3, 1]), abs=2e-6)
    assert np.all(np.isfinite(tape.gradient(total, logits).numpy()))


# --- 4. stability: D = 64·64, logits of magnitude 100 ----------------------------------------------


def test_large_logits_and_many_locations_are_accurate():
    num_locations, max_objects = 64 * 64, 10
    rng = np.random.default_rng(7)
    hot = rng.choice(num_locations, size=max_objects, replace=False)
    peaked = np.full(num_locations, -100.0)
    peaked[hot] = rng.uniform(90.0, 100.0, size=max_objects)
    spread = rng.uniform(-100.0, 100.0, size=num_locations)
    logits = np.stack([peaked, peaked, spread, spread, peaked]).astype(np.float32)
    sequences = [
        hot[np.argsort(-peaked[hot])],  # the hot locations, most likely first: the remaining mass at the last
        # steps is ~4000·e^-190 relative, far below float32 resolution for 1 − Σ p
        rng.choice(num_locations, size=max_objects, replace=False),  # background ones: ~−200 per step
        np.argsort(-spread)[:max_objects],  # the top-10 of uniform logits
        rng.choice(num_locations, size=max_objects, replace=False),
        hot[:4],
    ]
    num_objects = np.array([10, 10, 10, 7, 4], np.int32)
    locations = np.array([pad(s, max_objects, num_locations, rng) for s in sequences], np.int32)
    logits_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        log_prob = location_log_prob(logits_var, locations, num_objects)
        total = tf.reduce_sum(log_prob)
    grad = tape.gradient(total, logits_var).numpy()
    got = log_prob.numpy()
    expected = np.array([loop_log_prob64(logits[b], sequences[b][:num_objects[b]]) for b in range(5)])
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(grad))
    assert expected[1] < -1500  # the background row is genuinely tiny
    # Float32 log-sum-exps of values ~100 round at ~1e-5 absolute (spacing 7.6e-6 at 100), n ≤ 10 steps:
    # ≤ 1e-4 (measured 2e-5); relative 1e-6 for the row of size ~2000.
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
    # Gradient = Σ_i (one-hot − available softmax); the float32 softmax probabilities are exp of values
    # with error ~1e-5, so ≤ ~1e-5 relative on entries ≤ 1 per step, ~10 steps.
    expected_grad = np.stack([analytic_gradient64(logits[b], sequences[b][:num_objects[b]]) for b in range(5)])
    np.testing.assert_allclose(grad, expected_grad, rtol=0, atol=2e-4)


def test_low_and_high_precision_logits_compute_in_float32():
    rng = np.random.default_rng(9)
    logits = rng.normal(0.0, 5.0, size=(3, 7))
    locations = np.array([[1, 4, 6], [0, 2, 2], [5, 3, 0]], np.int32)
    num_objects = np.array([3, 2, 1], np.int32)
    for dtype in (tf.float16, tf.bfloat16, tf.float64):
        rounded = tf.constant(logits, dtype)
        got = location_log_prob(rounded, locations, num_objects)
        assert got.dtype == tf.float32
        reference = location_log_prob(tf.cast(rounded, tf.float32), locations, num_objects)
        np.testing.assert_array_equal(got.numpy(), reference.numpy())  # the same float32 computation
    got64 = location_log_prob(tf.constant(logits, tf.float64), tf.constant(locations, tf.int64),
                              tf.constant(num_objects, tf.int64)).numpy()
    expected = [loop_log_prob64(logits[b], locations[b, :num_objects[b]]) for b in range(3)]
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-5)  # logits ~15 rounded to float32


# --- 5. graphs: unknown batch, XLA, values that cannot be checked ----------------------------------


def test_inside_tf_function_with_unknown_shapes_and_under_xla():
    rng = np.random.default_rng(4)
    logits = rng.normal(0.0, 3.0, size=(5, 9)).astype(np.float32)
    locations = np.stack([rng.permutation(9)[:4] for _ in range(5)]).astype(np.int32)
    num_objects = np.array([0, 1, 2, 3, 4], np.int32)
    expected = [loop_log_prob64(logits[b], locations[b, :num_objects[b]]) for b in range(5)]
    signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.int32),
                 tf.TensorSpec([None], tf.int32)]
    for jit_compile in (False, True):
        compute = tf.function(location_log_prob, input_signature=signature, jit_compile=jit_compile)
        for rows in (slice(0, 2), slice(0, 5)):  # two batch sizes, one trace
            got = compute(logits[rows], locations[rows], num_objects[rows]).numpy()
            np.testing.assert_allclose(got, expected[rows], rtol=0, atol=3e-6)
        assert len(compute.get_concrete_function().graph.get_operations()) > 0


def test_traced_invalid_values_give_nan():
    signature = [tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None, 3], tf.int32),
                 tf.TensorSpec([None], tf.int32)]
    compute = tf.function(location_log_prob, input_signature=signature)
    logits = np.array([[0.1, 0.2, 0.3, 0.4]] * 6, np.float32)
    locations = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 4, 2], [0, -1, 2], [3, 1, 7]], np.int32)
    num_objects = np.array([2, 4, -1, 2, 3, 2], np.int32)  # ok, n > M, n < 0, l = D, l = −1, ok (7 after n)
    got = compute(logits, locations, num_objects).numpy()
    assert np.isfinite(got[0]) and np.isfinite(got[5])
    assert got[5] == pytest.approx(loop_log_prob64(logits[5], [3, 1]), abs=2e-6)
    assert np.all(np.isnan(got[1:5]))
    prior = tf.function(location_prior_log_prob, input_signature=[tf.TensorSpec([], tf.int32),
                                                                    tf.TensorSpec([None], tf.int32)])
    got = prior(tf.constant(3), tf.constant([3, 4, -1])).numpy()
    assert got[0] == pytest.approx(-math.log(6), rel=1e-7)
    assert np.all(np.isnan(got[1:]))


# --- 6. errors -------------------------------------------------------------------------------------


def test_errors():
    logits = np.zeros((2, 5), np.float32)
    locations = np.zeros((2, 3), np.int32)
    num_objects = np.array([1, 2], np.int32)
    cases = [
        ((np.zeros(5, np.float32), locations, num_objects), r"logits must have shape \[B, D\].*\(5,\)"),
        ((np.zeros((2, 5, 1), np.float32), locations, num_objects), r"logits must have shape.*\(2, 5, 1\)"),
        ((np.zeros((2, 5), np.int32), locations, num_objects), "logits must be a float tensor.*int32"),
        ((np.zeros((2, 0), np.float32), locations, num_objects), r"at least one location.*\(2, 0\)"),
        ((logits, np.zeros((2, 3), np.float32), num_objects), "locations must be an integer tensor.*float32"),
        ((logits, np.zeros(3, np.int32), num_objects), r"locations must have shape \[B, M\].*\(3,\)"),
        ((logits, locations, np.array([[1, 2]], np.int32)), r"num_objects must have shape \[B\].*\(1, 2\)"),
        ((logits, locations, np.array([1.0, 2.0])), "num_objects must be an integer tensor.*float64"),
        ((logits, np.zeros((3, 3), np.int32), num_objects), r"same batch size.*\(2, 5\).*\(3, 3\).*\(2,\)"),
        ((logits, locations, np.array([1, 4], np.int32)), r"num_objects.*min\(3, 5\).*num_objects\[1\] = 4"),
        ((np.zeros((2, 2), np.float32), locations, np.array([3, 0], np.int32)),
         r"num_objects.*min\(3, 2\).*num_objects\[0\] = 3"),
        ((logits, locations, np.array([-1, 0], np.int32)), r"num_objects\[0\] = -1"),
        ((logits, np.array([[0, 0, 0], [1, 5, 0]], np.int32), num_objects),
         r"locations must be in \[0, D\) = \[0, 5\).*locations\[1, 1\] = 5 \(num_objects\[1\] = 2\)"),
        ((logits, np.array([[-2, 0, 0], [1, 2, 0]], np.int32), num_objects), r"locations\[0, 0\] = -2"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            location_log_prob(*args)
    # Out-of-range entries after the n-th are not checked (they are never read).
    location_log_prob(logits, np.array([[0, -1, 99], [1, 2, 99]], np.int32), num_objects)

    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_locations must be an integer D >= 1"):
            location_prior_log_prob(bad, [0])
    with pytest.raises(ValueError, match="num_locations must be an integer.*float32 tensor of shape"):
        location_prior_log_prob(tf.constant(4.0), [0])
    with pytest.raises(ValueError, match=r"num_objects must be in \[0, D = 4\]; got num_objects\[1\] = 5"):
        location_prior_log_prob(4, [2, 5])
    with pytest.raises(ValueError, match=r"num_objects\[0\] = -1"):
        location_prior_log_prob(4, [-1])
    with pytest.raises(ValueError, match=r"num_objects must have shape \[B\] \(rank 1\); got shape \(\)"):
        location_prior_log_prob(4, 2)
