"""Dataset entry points (seeded, split-aware, cached on disk) and their conversion to `tf.data`.

Each entry point generates one dataset deterministically from (config, split, count, seed, digit
pool) and, unless `cache_dir=None`, stores it as one `.npz` in the cache directory, named by the
sha256 of a JSON key holding the kind, the config class and every field, the split, the count, the
seed, the digit pool's source and sha256 fingerprint, and `FORMAT_VERSION`. Any change to these
gives a new file; stale files are never reused.

Writes are atomic: the archive is written to a temporary file (`.<name>.<random>.tmp`) in the
cache directory, flushed and fsynced, then renamed over the final name with `os.replace`. An
interrupted generation leaves at most a temporary file, which is never read (only the exact final
name is). Every archive stores its key and a sha256 of its arrays; a file that does not load, holds
another key, or fails the checksum raises ValueError naming the file and asking the user to delete
it -- it is neither silently overwritten nor returned.

The cache directory is `cache_dir` if given; with the default `cache_dir="auto"` it is
`$TFOBJ_CACHE` if set, else `~/.cache/tfobj`; `cache_dir=None` disables caching.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tfobj.data.digits import Digits, check_split, load_mnist, split_digits
from tfobj.data.scattered import (
    ScatteredMNISTConfig, ScatteredMNISTVideoConfig, ScatteredShapesConfig, ScatteredShapesVideoConfig,
    check_count, check_seed, generate_mnist_images, generate_mnist_videos, generate_shapes_images,
    generate_shapes_videos, scene_rng)

logger = logging.getLogger(__name__)

AUTO = "auto"
CACHE_ENV_VAR = "TFOBJ_CACHE"
FORMAT_VERSION = 1
_META_KEY = "__tfobj_meta__"


# --------------------------------------------------------------------------- entry points


def scattered_mnist(config: ScatteredMNISTConfig | None, split: str, num_images: int, seed: int = 0,
                    cache_dir: str | os.PathLike | None = AUTO, digits: Digits | None = None) -> dict[str, np.ndarray]:
    """Scattered MNIST images (see `tfobj.data.scattered.generate_mnist_images` for the keys).

    Args:
        config: Scene parameters; None for the defaults (`ScatteredMNISTConfig()`).
        split: "train", "val" or "test": selects the disjoint per-class part of the digit pool
            (`split_digits`, 80/10/10) and the random stream.
        num_images: N >= 0.
        seed: Non-negative integer; with `split`, seeds `np.random.default_rng`.
        cache_dir: Cache directory, "auto" (`$TFOBJ_CACHE` or `~/.cache/tfobj`) or None (no cache).
        digits: The full digit pool to split; default `load_mnist()`.

    Returns:
        images float32 `[N, H, W, 3]`, boxes float32 `[N, K, 4]`, classes int32 `[N, K]`,
        num_objects int32 `[N]`, positions int32 `[N, K, 2]`, sizes int32 `[N, K, 2]`; K = max_digits.
    """
    config = _config_or_default(config, ScatteredMNISTConfig)
    _check_args(split, num_images, "num_images", seed)
    pool = _split_pool(digits, split)
    return _cached("scattered_mnist", config, split, num_images, seed, cache_dir, pool,
                   lambda rng: generate_mnist_images(config, pool, num_images, rng))


def scattered_shapes(config: ScatteredShapesConfig | None, split: str, num_images: int, seed: int = 0,
                     cache_dir: str | os.PathLike | None = AUTO) -> dict[str, np.ndarray]:
    """Scattered Shapes images: the keys of `scattered_mnist` plus shapes and colours int32 `[N, K]`.

    `split` only selects the random stream. Classes are `shape * 6 + colour` (0..29).
    """
    config = _config_or_default(config, ScatteredShapesConfig)
    _check_args(split, num_images, "num_images", seed)
    return _cached("scattered_shapes", config, split, num_images, seed, cache_dir, None,
                   lambda rng: generate_shapes_images(config, num_images, rng))


def scattered_mnist_videos(config: ScatteredMNISTVideoConfig | None, split: str, num_videos: int, seed: int = 0,
                           cache_dir: str | os.PathLike | None = AUTO,
                           digits: Digits | None = None) -> dict[str, np.ndarray]:
    """Scattered MNIST videos (see `tfobj.data.scattered.generate_mnist_videos` for the keys).

    Returns:
        videos float32 `[N, T, H, W, 3]`, boxes float32 `[N, T, K, 4]`, track_ids int32 `[N, T, K]`,
        classes int32 `[N, K]`, num_objects int32 `[N]`, positions float64 `[N, T, K, 2]`, sizes
        int32 `[N, K, 2]`.
    """
    config = _config_or_default(config, ScatteredMNISTVideoConfig)
    _check_args(split, num_videos, "num_videos", seed)
    pool = _split_pool(digits, split)
    return _cached("scattered_mnist_videos", config, split, num_videos, seed, cache_dir, pool,
                   lambda rng: generate_mnist_videos(config, pool, num_videos, rng))


def scattered_shapes_videos(config: ScatteredShapesVideoConfig | None, split: str, num_videos: int, seed: int = 0,
                            cache_dir: str | os.PathLike | None = AUTO) -> dict[str, np.ndarray]:
    """Scattered Shapes videos: the keys of `scattered_mnist_videos` plus shapes and colours `[N, K]`."""
    config = _config_or_default(config, ScatteredShapesVideoConfig)
    _check_args(split, num_videos, "num_videos", seed)
    return _cached("scattered_shapes_videos", config, split, num_videos, seed, cache_dir, None,
                   lambda rng: generate_shapes_videos(config, num_videos, rng))


def as_dataset(arrays: dict[str, np.ndarray], keys=None):
    """A `tf.data.Dataset` over the first axis of `arrays` (`from_tensor_slices`).

    Image datasets give elements `{"images": [H, W, 3] float32, "boxes": [K, 4], "classes": [K],
    "num_objects": [], ...}`; video datasets `{"videos": [T, H, W, 3], "boxes": [T, K, 4],
    "track_ids": [T, K], "classes": [K], ...}`.

    Args:
        arrays: Dict of arrays sharing the leading dimension N, e.g. from `scattered_mnist`.
        keys: Optional subset of keys to include (default: all).
    """
    import tensorflow as tf

    keys = list(arrays) if keys is None else list(keys)
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"keys {missing} are not in arrays (which has {sorted(arrays)})")
    lengths = {key: len(arrays[key]) for key in keys}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays must share their first dimension; got {lengths}")
    return tf.data.Dataset.from_tensor_slices({key: arrays[key] for key in keys})


def default_cache_dir() -> Path:
    """`$TFOBJ_CACHE` if set and non-empty, else `~/.cache/tfobj`."""
    return Path(os.path.expanduser(os.environ.get(CACHE_ENV_VAR) or os.path.join("~", ".cache", "tfobj")))


# --------------------------------------------------------------------------- caching


def _config_or_default(config, cls):
    if config is None:
        return cls()
    if type(config) is not cls:
        raise TypeError(f"config must be a {cls.__name__} or None; got {type(config).__name__}")
    return config


def _check_args(split: str, num: int, num_name: str, seed: int) -> None:
    check_split(split)
    check_count(num, num_name)
    check_seed(seed)


def _split_pool(digits: Digits | None, split: str) -> Digits:
    if digits is None:
        digits = load_mnist()
    elif not isinstance(digits, Digits):
        raise TypeError(f"digits must be a tfobj.data.Digits or None; got {type(digits).__name__}")
    else:
        digits = Digits(digits.images, digits.labels, digits.source)  # re-validates (NaN, range, shapes)
    return split_digits(digits, split)


def _cached(kind: str, config, split: str, num: int, seed: int, cache_dir, pool: Digits | None, generate):
    rng = scene_rng(seed, split, kind)
    directory = _resolve_cache_dir(cache_dir)
    if directory is None:
        return generate(rng)
    key = _cache_key(kind, config, split, num, seed, pool)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = directory / f"{kind}-{digest[:24]}.npz"
    if path.exists():
        arrays = read_cache(path, key)
        logger.info("loaded %s (%s, %d examples) from cache %s", kind, split, num, path)
        return arrays
    arrays = generate(rng)
    try:
        write_cache(path, key, arrays)
    except OSError as error:
        logger.warning("could not write dataset cache %s (%s); continuing without it", path, error)
    else:
        logger.info("cached %s (%s, %d examples) in %s", kind, split, num, path)
    return arrays


def _resolve_cache_dir(cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    if isinstance(cache_dir, str) and cache_dir == AUTO:
        return default_cache_dir()
    return Path(os.path.expanduser(os.fspath(cache_dir)))


def _cache_key(kind: str, config, split: str, num: int, seed: int, pool: Digits | None) -> dict:
    key = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config_class": type(config).__name__,
        "config": dataclasses.asdict(config),
        "split": split,
        "num": int(num),
        "seed": int(seed),
        "digits": None if pool is None else {"source": pool.source, "sha256": pool.fingerprint(), "count": len(pool)},
    }
    return json.loads(json.dumps(key, sort_keys=True))


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 hex digest over the names, dtypes, shapes and bytes of `arrays` (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.data)
    return digest.hexdigest()


def write_cache(path: Path, key: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically writes `arrays` with `key` and their digest to `path` (temp file + `os.replace`)."""
    path = Path(path)
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    meta = {"key": key, "sha256": arrays_digest(arrays),
            "arrays": {name: [np.asarray(a).dtype.str, list(np.shape(a))] for name, a in arrays.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temp_name, 0o644)  # mkstemp creates 0600; cached datasets are ordinary shareable files
        with os.fdopen(handle, "wb") as file:
            _save_npz(file, {_META_KEY: np.array(json.dumps(meta, sort_keys=True)), **arrays})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _save_npz(file, arrays: dict[str, np.ndarray]) -> None:
    np.savez(file, **arrays)


def read_cache(path: Path, key: dict) -> dict[str, np.ndarray]:
    """Loads and verifies a cache file written by `write_cache` for `key`.

    Raises:
        ValueError: The file does not load, was written for another key, or fails its checksum;
            the message names the file and says to delete it.
    """
    advice = f"delete {str(path)!r} to regenerate the dataset"
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            arrays = {name: npz[name] for name in names}
        meta = json.loads(str(arrays.pop(_META_KEY)[()]))
        stored_key, stored_digest, stored_layout = meta["key"], meta["sha256"], meta["arrays"]
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"dataset cache file {str(path)!r} is corrupt or unreadable ({type(error).__name__}: "
                         f"{error}); {advice}") from error
    if stored_key != key:
        raise ValueError(f"dataset cache file {str(path)!r} holds a different dataset than its name says "
                         f"(stored key {stored_key} != expected {key}); {advice}")
    layout = {name: [a.dtype.str, list(a.shape)] for name, a in arrays.items()}
    if layout != stored_layout or arrays_digest(arrays) != stored_digest:
        raise ValueError(f"dataset cache file {str(path)!r} fails its integrity check (arrays or sha256 differ "
                         f"from those recorded when it was written); {advice}")
    return arrays
