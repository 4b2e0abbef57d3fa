"""Importance-weighted upper bound on −log p(x), the likelihood metric of LAVAE's Table 1.

LAVAE (Dittadi & Winther 2019, Table 1) reports "−log p(x) ≤" estimated "with 100 importance samples", for
LAVAE and its β-VAE baseline. With S samples z_s ~ q(z | x) and log importance weights
log w_s = log p(x, z_s) − log q(z_s | x),

    −log p(x) ≤ E_q[ −log (1/S) Σ_s w_s ] = E_q[ −(logsumexp_s log w_s − log S) ]

(Burda et al. 2016, "Importance Weighted Autoencoders", Theorem 1: the expected bound is ≥ −log p(x) for
every S, non-increasing in S, and tends to −log p(x) as S → ∞ when the weights are bounded; for S = 1 it is
the negative ELBO). `importance_weighted_nll` returns one draw of −(logsumexp_s log w_s − log S) per image,
in nats. Shapes use B (batch) and S (importance samples).

Model protocol. The model (any object; LAVAE and the β-VAE baseline implement it) has a method

    importance_log_weights(images, num_samples) -> [B, num_samples]

returning, for each of the B images, `num_samples` log importance weights log p(x, z_s) − log q(z_s | x)
of *fresh, independent* samples z_s ~ q(z | x), as a float32 or float64 tensor or array (anything
`numpy.asarray` accepts). `images` is passed through unchanged. For a model with discrete and continuous
latents (LAVAE: n, z_loc, z_app), log p(x, z) = log p(x | z) + log p(z) with every latent's log-density
and log q the full posterior's, so that the bound is on the marginal likelihood of the image alone. The
metric calls the method ⌈S / batch_samples⌉ times, with `batch_samples` samples each time except possibly
the last (to bound the model's memory: B·batch_samples samples are decoded at once), and combines the
chunks with a float64 streaming log-sum-exp; the result therefore does not depend on the chunking (up to
float64 rounding, ~1e-15 relative) as long as the model's samples do not.

Numerics: everything after the model call is float64; log-sum-exp subtracts the running maximum, so log
weights of any magnitude (thousands of nats for images) combine without overflow; −inf weights (samples of
probability 0 under p) are allowed and contribute nothing (if every weight of an image is −inf the bound is
+inf). NaN or +inf weights are a bug in the model and raise.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["importance_weighted_nll"]


def _check_count(name: str, value, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        expected = "None or an integer >= 1" if allow_none else "an integer >= 1"
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return int(value)


def importance_weighted_nll(model, images, num_samples: int = 100, batch_samples: int | None = None) -> np.ndarray:
    """Upper bound on −log p(x) per image from `num_samples` importance samples (LAVAE Table 1), in nats.

    Args:
        model: Any object with a method `importance_log_weights(images, num_samples) -> [B, num_samples]`
            returning log p(x, z_s) − log q(z_s | x) for `num_samples` fresh samples z_s ~ q(z | x) per image
            (float32 or float64; see the module docstring for the full protocol).
        images: The batch of B images, passed to the model unchanged (e.g. float32 `[B, H, W, C]`).
        num_samples: S ≥ 1, the number of importance samples per image (the paper uses 100).
        batch_samples: How many samples to request per call to the model (≥ 1), to bound memory; `None`
            (default) requests all S at once. Values above S are treated as S.

    Returns:
        float64 numpy array `[B]`: −(logsumexp_s log w_s − log S), in nats per image. A random variable
        whose expectation is ≥ −log p(x), decreasing towards it as S grows (Burda et al. 2016).

    Raises:
        ValueError: if `num_samples` or `batch_samples` is not an integer ≥ 1 (or None for `batch_samples`),
            the model has no `importance_log_weights` method, a call returns anything but a `[B, k]` array
            for the k samples requested (with the same B on every call, and B = images.shape[0] when
            `images` has a static shape), or a weight is NaN or +inf.

    References:
        Dittadi & Winther 2019, Table 1; Burda, Grosse & Salakhutdinov 2016, eq. (8) and Theorem 1.
    """
    num_samples = _check_count("num_samples", num_samples)
    batch_samples = _check_count("batch_samples", batch_samples, allow_none=True)
    chunk = num_samples if batch_samples is None else min(batch_samples, num_samples)
    log_weights_fn = getattr(model, "importance_log_weights", None)
    if not callable(log_weights_fn):
        raise ValueError(
            f"model must have a method importance_log_weights(images, num_samples) -> [B, num_samples]; "
            f"{type(model).__name__} has none"
        )
    shape = getattr(images, "shape", None)
    batch = None if shape is None or len(shape) == 0 else shape[0]
    batch = None if batch is None else int(batch)

    total = None  # running logsumexp over the samples seen so far, float64 [B]
    done = 0
    while done < num_samples:
        size = min(chunk, num_samples - done)
        log_weights = np.asarray(log_weights_fn(images, size), dtype=np.float64)
        expected = f"[{'B' if batch is None else batch}, {size}]"
        if log_weights.ndim != 2 or log_weights.shape[1] != size or (
            batch is not None and log_weights.shape[0] != batch
        ):
            raise ValueError(
                f"model.importance_log_weights(images, {size}) must return shape {expected} (B images, one "
                f"log weight per requested sample); got shape {log_weights.shape}"
            )
        if total is not None and log_weights.shape[0] != total.shape[0]:
            raise ValueError(
                f"model.importance_log_weights must return the same batch size on every call; got "
                f"{log_weights.shape[0]} rows after {total.shape[0]}"
            )
        if np.any(np.isnan(log_weights) | (log_weights == np.inf)):
            raise ValueError(
                f"model.importance_log_weights returned NaN or +inf log weights (samples {done}..{done + size - 1});"
                f" log weights must be finite or −inf"
            )
        chunk_max = np.max(log_weights, axis=1)  # [B]
        safe_max = np.where(np.isfinite(chunk_max), chunk_max, 0.0)  # all −inf: log(0) + 0 = −inf below
        with np.errstate(divide="ignore"):
            chunk_lse = np.log(np.sum(np.exp(log_weights - safe_max[:, None]), axis=1)) + safe_max  # [B]
        total = chunk_lse if total is None else np.logaddexp(total, chunk_lse)
        done += size
    return -(total - math.log(num_samples))
