"""The sliced Wasserstein loss of TUSK's prototype step (TUSK appendix A.2, Table 7, step 3), pure functions.

Shapes use N (points per set: TUSK's B·K descriptors and as many samples of the prototype GMM), D (descriptor
size, 32 in TUSK) and P (projections, 100 in the original code).

For unit directions θ_p, p = 1..P, and two sets a, b of N points each,

    SW(a, b) = (1/N) Σ_n Σ_p ((θ_p · a)_(n) − (θ_p · b)_(n))²

where (·)_(n) is the n-th smallest projected value. For one direction this is the squared 2-Wasserstein distance
between the two N-point empirical distributions on the line (sorting is the optimal matching in 1-D); the loss
is its *sum* over the P directions, i.e. P times the usual (mean-over-directions) sliced W2², which only
rescales the prototypes' learning rate. This is the original code's scaling (ubc-vision/TUSK@04ba610,
`models/loss.py`, `sliced_wasserstein_loss.forward`: `torch.sum(..., dim=1)` over projections of the squared
differences of the sorted projections, then `torch.mean` over the N sorted positions), the scaling that the
prototypes' learning rate of the paper (Table 10: 0.1, with P = 100) goes with.

The original draws new Gaussian directions, normalised to unit length, on every call; `random_projections`
draws the same distribution (uniform on the unit sphere) from a stateless seed, so a training step can pass
e.g. `[seed, step]` and stay reproducible.
"""
from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

__all__ = ["random_projections", "sliced_wasserstein"]


def random_projections(num_projections: int, dim: int, seed) -> tf.Tensor:
    """P random directions, uniform on the unit sphere of R^D (normalised Gaussian vectors, as the original).

    Args:
        num_projections: python int P >= 1 (the original code uses 100).
        dim: python int D >= 1, the dimension of the points.
        seed: python int, or an integer tensor of shape [] or [2] (e.g. `[seed, step]` inside a training step).
            A python int or scalar s is the stateless seed (s, 0).

    Returns:
        float32 `[P, D]` with unit rows. Deterministic given the seed (TensorFlow's stateless RNG: the same on
        every call, in eager and in `tf.function`, for a given TensorFlow version and device type).

    Raises:
        ValueError: if `num_projections` or `dim` is not a positive int, or `seed` is not an int or an integer
            tensor of shape [] or [2].
    """
    for name, value in (("num_projections", num_projections), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a python int >= 1; got {value!r}")
    seed = _stateless_seed(seed)
    directions = tf.random.stateless_normal([num_projections, dim], seed=seed, dtype=tf.float32)  # [P, D]
    # A Gaussian vector has norm 0 with probability 0; l2_normalize's epsilon only guards against that.
    return tf.math.l2_normalize(directions, axis=1)


def sliced_wasserstein(a, b, projections) -> tf.Tensor:
    """TUSK's sliced Wasserstein loss between two equal-size point sets (appendix A.2; original scaling).

    Projects both sets on every direction, sorts each projection, and returns the mean over the N sorted
    positions of the sum over the P directions of the squared differences (see the module docstring).

    Args:
        a: float `[N, D]` points (TUSK: the sampled prototypes). Differentiable.
        b: float `[N, D]` points, the same N (TUSK: the descriptors). Differentiable.
        projections: float `[P, D]` unit directions, e.g. from `random_projections`. Not differentiated in
            practice (gradients do flow into it if it is watched).

    Returns:
        Scalar, float32 (float64 if `a` or `b` is float64; 16-bit inputs are cast to float32). 0 iff every
        projection of a equals that of b as a multiset; symmetric in a and b; invariant to the order of the
        points in either set.

    Raises:
        ValueError: if a tensor is not float or has the wrong rank, the sizes N or D differ, N or P is 0
            (when static), or `projections` is known and a row does not have unit norm (|‖θ‖ − 1| > 1e-3).
            Inside a `tf.function` where N is only known at run time, different N raise
            `tf.errors.InvalidArgumentError` when run.

    References:
        - Jin et al., "TUSK: Task-Agnostic Unsupervised Keypoints", NeurIPS 2022, appendix A.2, Table 7.
        - ubc-vision/TUSK, `models/loss.py`, `sliced_wasserstein_loss.forward` (the original code's scaling).
    """
    a = _as_points("a", a)
    b = _as_points("b", b)
    projections = _as_points("projections", projections)
    dtype = tf.float64 if tf.float64 in (a.dtype, b.dtype) else tf.float32  # float32 math for 16-bit inputs
    a, b, projections = (tf.cast(x, dtype) for x in (a, b, projections))

    dims = {"a": a.shape[1], "b": b.shape[1], "projections": projections.shape[1]}
    if len({d for d in dims.values() if d is not None}) > 1:
        raise ValueError(
            "a, b and projections must have the same dimension D (shapes [N, D], [N, D], [P, D]); got "
            f"a {a.shape}, b {b.shape}, projections {projections.shape}"
        )
    if a.shape[0] is not None and b.shape[0] is not None and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a and b must have the same number of points N (sort-based matching pairs them one to one); "
            f"got a {a.shape} and b {b.shape}"
        )
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError(f"a and b must hold at least one point; got a {a.shape} and b {b.shape}")
    if projections.shape[0] == 0:
        raise ValueError(f"projections must hold at least one direction (P >= 1); got shape {projections.shape}")
    static = tf.get_static_value(projections)
    if static is not None and static.size:
        norms = np.linalg.norm(static.astype(np.float64), axis=1)
        if np.any(~(np.abs(norms - 1.0) <= 1e-3)):  # also catches NaN
            bad = int(np.argmax(~(np.abs(norms - 1.0) <= 1e-3)))
            raise ValueError(f"projections must have unit rows; row {bad} has norm {norms[bad]:.6g}")
    if not tf.executing_eagerly():  # N may be unknown until run time
        check = tf.debugging.assert_equal(
            tf.shape(a)[0], tf.shape(b)[0], message="a and b must have the same number of points N"
        )
        with tf.control_dependencies([check]):
            a = tf.identity(a)

    projected_a = tf.sort(tf.matmul(projections, a, transpose_b=True), axis=1)  # [P, N], sorted per direction
    projected_b = tf.sort(tf.matmul(projections, b, transpose_b=True), axis=1)  # [P, N]
    per_position = tf.reduce_sum(tf.square(projected_a - projected_b), axis=0)  # [N], summed over directions
    return tf.reduce_mean(per_position)


def _as_points(name: str, x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a float tensor; got dtype {x.dtype.name}")
    if x.shape.rank != 2:
        expected = "[P, D]" if name == "projections" else "[N, D]"
        raise ValueError(f"{name} must have shape {expected} (rank 2); got shape {x.shape}")
    return x


def _stateless_seed(seed) -> tf.Tensor:
    """An int64 `[2]` seed for TensorFlow's stateless RNG ops."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int or an integer tensor of shape [] or [2]; got {seed!r}")
    if isinstance(seed, numbers.Integral):
        if not -(2**63) <= int(seed) < 2**63:
            raise ValueError(f"seed must fit in int64; got {seed}")
        return tf.constant([int(seed), 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or seed.shape.rank not in (0, 1) or (seed.shape.rank == 1 and seed.shape[0] != 2):
        raise ValueError(
            f"seed must be an int or an integer tensor of shape [] or [2]; got {seed.dtype.name} {seed.shape}"
        )
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed
