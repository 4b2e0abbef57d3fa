"""Readers for the TFRecord files of DeepMind's multi_object_datasets: Tetrominoes and CLEVR (with masks).

The files (`tetrominoes_train.tfrecords`, 300 MB; `clevr_with_masks_train.tfrecords`, 10.5 GB) are
downloaded from https://storage.googleapis.com/multi-object-datasets/ (README of
github:deepmind/multi_object_datasets). Each is one GZIP-compressed TFRecord file of `tf.train.Example`s.

Schema (multi_object_datasets `tetrominoes.py` and `clevr_with_masks.py`, commit 35c038a; tfobj's own
code, written from the feature tables): every feature is fixed-length. Byte features are a BytesList
with ONE single-byte string per element, so `decode_raw` of the parsed `[..]` string tensor gives
`[.., 1]` uint8, squeezed back to `[..]`; the others are FloatLists.

  Tetrominoes, H x W = 35 x 35, E = 4 entities (background first, then the 3 pieces):
    image [H, W, 3] bytes; mask [E, H, W, 1] bytes (0 or 255); x, y, shape, visibility [E] float;
    color [E, 3] float (RGB with components 0 or 1).
  CLEVR (with masks), H x W = 240 x 320, E = 11 entities (background, then up to 10 objects):
    image [H, W, 3] bytes; mask [E, H, W, 1] bytes (0 or 255); x, y, z, rotation, visibility [E]
    float; pixel_coords [E, 3] float; size, material, shape, color [E] bytes (integer codes, 1-based
    for objects, 0 for empty entities).

The readers return unbatched `tf.data.Dataset`s of dicts: the decoded features (bytes as uint8, the
image as float32 in [0, 1]) plus derived ones (below). CLEVR6 / CLEVR10 are selected with
`max_objects=6` / `10` (TUSK keeps the images whose entity 7 has colour 0, i.e. at most 6 objects:
TUSK `datasets/multi_object.py`); the count used here is the number of object entities with a
non-zero colour code, the same selection when the non-empty entities come first.

TUSK's preprocessing is available as options: CLEVR is centre-cropped to 192 x 192 (rows 24..215,
columns 64..255, offsets `(size - 192) // 2`) and then resized to 112 x 112; Tetrominoes is resized
from 35 to 112. TUSK resizes with PyTorch's `F.interpolate(mode="nearest")`, whose source index is
`floor(i * in / out)` (what `tf.compat.v1.image.resize_nearest_neighbor(align_corners=False,
half_pixel_centers=False)` computes, and NOT what `tf.image.resize(method="nearest")` computes, which
samples at half-pixel centres). tfobj gathers the same indices, so crop + resize reproduce TUSK's
images and ground-truth maps pixel for pixel.

Errors: a path that does not exist (or is a directory) raises ValueError before anything is read. A
file that is damaged (truncated, not GZIP, failing its record checksums) or whose first record does
not follow the schema fails when the dataset is iterated, with a message that names the file; because
tf.data wraps errors raised while reading, the exception you catch is a `tf.errors.OpError`
(InvalidArgumentError) whose message holds tfobj's ValueError text. To name the file, the records are
read by a Python generator (`tf.data.Dataset.from_generator`) that iterates one `TFRecordDataset` per
file; decoding runs in a normal (parallelisable) `map`. Such a dataset cannot be serialised into a
SavedModel or sharded by tf.distribute's auto-sharding, which data input pipelines rarely need.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfobj.data.tetrominoes import TETROMINO_PALETTE

COMPRESSION_TYPE = "GZIP"  # multi_object_datasets: TFRecordOptions.get_compression_type_string('GZIP')
TETROMINOES_IMAGE_SIZE = (35, 35)  # multi_object_datasets tetrominoes.py IMAGE_SIZE
TETROMINOES_NUM_ENTITIES = 4  # tetrominoes.py MAX_NUM_ENTITIES: background + 3 pieces
CLEVR_IMAGE_SIZE = (240, 320)  # clevr_with_masks.py IMAGE_SIZE
CLEVR_NUM_ENTITIES = 11  # clevr_with_masks.py MAX_NUM_ENTITIES: background + up to 10 objects
TUSK_CLEVR_CROP_SIZE = 192  # TUSK datasets/multi_object.py: center_crop(img, 192) (IODINE's CLEVR crop)
TUSK_IMAGE_SIZE = 112  # TUSK: CLEVR and Tetrominoes images and ground truth resized to 112 x 112

_TETROMINOES_BYTES = ("image", "mask")
_CLEVR_BYTES = ("image", "mask", "color", "material", "shape", "size")


def _tetrominoes_features() -> dict:
    height, width = TETROMINOES_IMAGE_SIZE
    entities = TETROMINOES_NUM_ENTITIES
    floats = {name: tf.io.FixedLenFeature([entities], tf.float32) for name in ("x", "y", "shape", "visibility")}
    return {
        "image": tf.io.FixedLenFeature([height, width, 3], tf.string),
        "mask": tf.io.FixedLenFeature([entities, height, width, 1], tf.string),
        "color": tf.io.FixedLenFeature([entities, 3], tf.float32),
        **floats,
    }


def _clevr_features() -> dict:
    height, width = CLEVR_IMAGE_SIZE
    entities = CLEVR_NUM_ENTITIES
    floats = {name: tf.io.FixedLenFeature([entities], tf.float32) for name in ("x", "y", "z", "rotation", "visibility")}
    codes = {name: tf.io.FixedLenFeature([entities], tf.string) for name in ("size", "material", "shape", "color")}
    return {
        "image": tf.io.FixedLenFeature([height, width, 3], tf.string),
        "mask": tf.io.FixedLenFeature([entities, height, width, 1], tf.string),
        "pixel_coords": tf.io.FixedLenFeature([entities, 3], tf.float32),
        **floats,
        **codes,
    }


# --------------------------------------------------------------------------- public readers


def read_tetrominoes(path, resize_to: int | None = None, max_records: int | None = None,
                     read_buffer_size: int | None = None, map_parallel_calls: int | None = None) -> tf.data.Dataset:
    """Reads multi_object_datasets Tetrominoes TFRecords (E = 4 entities, background first).

    Args:
        path: A `.tfrecords` file (str or os.PathLike; `gs://` works through tf.io.gfile), or a
            sequence of them, read in order.
        resize_to: None (keep 35 x 35) or S >= 1: nearest-resize image, masks and label map to S x S
            with TUSK's index rule (see the module docstring); TUSK uses 112.
        max_records: None (all) or n >= 0: read only the first n records (over all files, in order).
            TUSK uses the first 60,000 (its test set: the last 10,000 of those).
        read_buffer_size: Bytes of read buffer per file (`tf.data.TFRecordDataset`'s buffer_size).
        map_parallel_calls: Parallel decode calls (`tf.data.Dataset.map`); e.g. `tf.data.AUTOTUNE`.

    Returns:
        Unbatched `tf.data.Dataset` of dicts (S = 35 unless resized):
          "image" float32 `[S, S, 3]` in [0, 1] (the stored uint8 / 255),
          "mask" uint8 `[4, S, S, 1]`, 0 or 255 as stored,
          "label_map" int32 `[S, S]`: the index of the first entity whose mask is set (>= 128),
              0 if none; 0 background, k on piece k,
          "x", "y", "shape", "visibility" float32 `[4]` as stored,
          "color" float32 `[4, 3]` as stored,
          "color_index" int32 `[4]`: 1 + the index of `color` in `TETROMINO_PALETTE` (red, green,
              blue, cyan, magenta, yellow: TUSK's colour order), 0 for any other colour (background).

    Raises:
        ValueError: A path does not exist or is a directory, or an argument is invalid (before reading).
    """
    paths = _check_paths(path)
    size = _check_optional_int(resize_to, "resize_to", minimum=1)
    max_records = _check_optional_int(max_records, "max_records", minimum=0)
    features = _tetrominoes_features()

    def decode(record):
        return _decode(record, features, _TETROMINOES_BYTES)

    def finish(example):
        example = dict(example)
        if size is not None:
            example["image"] = _resize_nearest(example["image"], size, axes=(0, 1))
            example["mask"] = _resize_nearest(example["mask"], size, axes=(1, 2))
        example["image"] = tf.cast(example["image"], tf.float32) / 255.0
        example["label_map"] = _label_map(example["mask"])
        example["color_index"] = _palette_index(example["color"], TETROMINO_PALETTE)
        return example

    records = _records(paths, "Tetrominoes", decode, max_records, read_buffer_size)
    return records.map(lambda record: finish(decode(record)), num_parallel_calls=map_parallel_calls)


def read_clevr_with_masks(path, max_objects: int | None = None, crop_size: int | None = None,
                          resize_to: int | None = None, max_records: int | None = None,
                          read_buffer_size: int | None = None,
                          map_parallel_calls: int | None = None) -> tf.data.Dataset:
    """Reads multi_object_datasets CLEVR (with masks) TFRecords (E = 11 entities, background first).

    TUSK's CLEVR6: `read_clevr_with_masks(path, max_objects=6, crop_size=192, resize_to=112,
    max_records=70_000)` (TUSK keeps, of the first 70,000 records, those with <= 6 objects; its test
    set is the last 10,000 kept). CLEVR10 (all of CLEVR): `max_objects=10` or None.

    Args:
        path: A `.tfrecords` file (str or os.PathLike; `gs://` works through tf.io.gfile), or a
            sequence of them, read in order.
        max_objects: None (keep all) or n in 0..10: keep only images with at most n objects.
        crop_size: None (no crop) or c in 1..240: centre-crop image, masks and label map to c x c
            with offsets `((240 - c) // 2, (320 - c) // 2)` (TUSK: 192).
        resize_to: None or S >= 1: then nearest-resize to S x S with TUSK's index rule (TUSK: 112).
        max_records: None (all) or n >= 0: read only the first n records, before the object filter.
        read_buffer_size: Bytes of read buffer per file (`tf.data.TFRecordDataset`'s buffer_size).
        map_parallel_calls: Parallel decode calls (`tf.data.Dataset.map`); e.g. `tf.data.AUTOTUNE`.

    Returns:
        Unbatched `tf.data.Dataset` of dicts (H x W = 240 x 320, or c x c, or S x S):
          "image" float32 `[H, W, 3]` in [0, 1] (the stored uint8 / 255),
          "mask" uint8 `[11, H, W, 1]`, 0 or 255 as stored,
          "label_map" int32 `[H, W]`: index of the first entity whose mask is set (>= 128), 0 if none,
          "x", "y", "z", "rotation", "visibility" float32 `[11]`, "pixel_coords" float32 `[11, 3]`,
          "size", "material", "shape", "color" uint8 `[11]`: the stored codes (0 = empty entity),
          "num_objects" int32 `[]`: object entities (1..10) with a non-zero colour code.

    Raises:
        ValueError: A path does not exist or is a directory, or an argument is invalid (before reading).
    """
    paths = _check_paths(path)
    max_objects = _check_optional_int(max_objects, "max_objects", minimum=0)
    if max_objects is not None and max_objects > CLEVR_NUM_ENTITIES - 1:
        raise ValueError(f"max_objects={max_objects!r} must be None or an integer in 0..{CLEVR_NUM_ENTITIES - 1} "
                         f"(CLEVR scenes hold at most {CLEVR_NUM_ENTITIES - 1} objects)")
    crop = _check_optional_int(crop_size, "crop_size", minimum=1)
    if crop is not None and crop > min(CLEVR_IMAGE_SIZE):
        raise ValueError(f"crop_size={crop!r} must be at most {min(CLEVR_IMAGE_SIZE)} (CLEVR images are "
                         f"{CLEVR_IMAGE_SIZE[0]} x {CLEVR_IMAGE_SIZE[1]})")
    size = _check_optional_int(resize_to, "resize_to", minimum=1)
    max_records = _check_optional_int(max_records, "max_records", minimum=0)
    features = _clevr_features()

    def decode(record):
        example = _decode(record, features, _CLEVR_BYTES)
        example["num_objects"] = tf.math.count_nonzero(example["color"][1:] > 0, dtype=tf.int32)
        return example

    def finish(example):
        example = dict(example)
        image, mask = example["image"], example["mask"]
        if crop is not None:
            top, left = (CLEVR_IMAGE_SIZE[0] - crop) // 2, (CLEVR_IMAGE_SIZE[1] - crop) // 2
            image = image[top:top + crop, left:left + crop]
            mask = mask[:, top:top + crop, left:left + crop]
        if size is not None:
            image = _resize_nearest(image, size, axes=(0, 1))
            mask = _resize_nearest(mask, size, axes=(1, 2))
        example["image"] = tf.cast(image, tf.float32) / 255.0
        example["mask"] = mask
        example["label_map"] = _label_map(mask)
        return example

    dataset = _records(paths, "CLEVR (with masks)", decode, max_records, read_buffer_size)
    dataset = dataset.map(decode, num_parallel_calls=map_parallel_calls)
    if max_objects is not None:
        dataset = dataset.filter(lambda example: example["num_objects"] <= max_objects)
    return dataset.map(finish, num_parallel_calls=map_parallel_calls)


# --------------------------------------------------------------------------- decoding


def _decode(record, features: dict, byte_names) -> dict:
    example = tf.io.parse_single_example(record, features)
    for name in byte_names:
        # One single-byte string per element: [..] strings -> [.., 1] uint8 -> [..].
        example[name] = tf.squeeze(tf.io.decode_raw(example[name], tf.uint8), axis=-1)
    return example


def _label_map(mask):
    """`[E, H, W, 1]` uint8 masks -> int32 `[H, W]`: first entity with mask >= 128, 0 where none."""
    on = tf.cast(mask[..., 0] >= 128, tf.int32)
    return tf.argmax(on, axis=0, output_type=tf.int32)  # argmax returns the first maximum


def _palette_index(colors, palette: np.ndarray):
    """`[E, 3]` RGB -> int32 `[E]`: 1 + index of the matching palette entry (within 1e-3), 0 if none."""
    palette = tf.constant(palette, tf.float32)
    match = tf.reduce_all(tf.abs(colors[:, None, :] - palette[None]) < 1e-3, axis=-1)  # [E, P]
    index = tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32) + 1
    return tf.where(tf.reduce_any(match, axis=-1), index, 0)


def _nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source indices of nearest resizing as PyTorch's `F.interpolate(mode="nearest")`: floor(i * in / out)."""
    return (np.arange(size_out, dtype=np.int64) * size_in) // size_out


def _resize_nearest(tensor, size: int, axes: tuple[int, int]):
    """Nearest-resizes the two spatial `axes` of `tensor` (static sizes) to `size` x `size` by gathering."""
    for axis in axes:
        indices = _nearest_indices(int(tensor.shape[axis]), size)
        tensor = tf.gather(tensor, tf.constant(indices, tf.int32), axis=axis)
    return tensor


# --------------------------------------------------------------------------- reading, with errors naming the file


def _records(paths: list[str], kind: str, decode, max_records: int | None, read_buffer_size) -> tf.data.Dataset:
    """Dataset of the serialised records of `paths`, in order; read errors name the file."""

    def generate():
        remaining = max_records
        for path in paths:
            iterator = iter(tf.data.TFRecordDataset(path, compression_type=COMPRESSION_TYPE,
                                                    buffer_size=read_buffer_size))
            good = 0
            while remaining is None or remaining > 0:
                try:
                    record = next(iterator)
                except StopIteration:
                    break
                except tf.errors.OpError as error:
                    raise ValueError(
                        f"TFRecord file {path!r} is corrupt or unreadable after {good} good records "
                        f"({type(error).__name__}: {error.message}); expected a GZIP-compressed multi_object_datasets "
                        f"{kind} file: download it again") from error
                record = record.numpy()
                if good == 0:
                    _check_schema(record, path, kind, decode)
                good += 1
                if remaining is not None:
                    remaining -= 1
                yield record

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec((), tf.string))


def _check_schema(record: bytes, path: str, kind: str, decode) -> None:
    try:
        decode(tf.constant(record))
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        message = getattr(error, "message", str(error))
        raise ValueError(f"TFRecord file {path!r} does not hold multi_object_datasets {kind} records: its first "
                         f"record does not match the {kind} feature schema ({type(error).__name__}: {message})"
                         ) from error


def _check_paths(path) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        paths = [path]
    else:
        try:
            paths = list(path)
        except TypeError:
            raise ValueError(f"path={path!r} must be a TFRecord file path or a sequence of them") from None
    if not paths:
        raise ValueError("path is an empty sequence; expected at least one TFRecord file")
    resolved = []
    for entry in paths:
        if not isinstance(entry, (str, os.PathLike)):
            raise ValueError(f"path entry {entry!r} must be a str or os.PathLike TFRecord file path")
        name = os.fspath(entry)
        if not tf.io.gfile.exists(name):
            raise ValueError(f"TFRecord file {name!r} does not exist; download the multi_object_datasets file "
                             f"(https://storage.googleapis.com/multi-object-datasets/) and pass its path")
        if tf.io.gfile.isdir(name):
            raise ValueError(f"TFRecord file {name!r} is a directory; pass the .tfrecords file inside it")
        resolved.append(name)
    return resolved


def _check_optional_int(value, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be None or an integer >= {minimum}")
    return int(value)


__all__ = [
    "CLEVR_IMAGE_SIZE", "CLEVR_NUM_ENTITIES", "TETROMINOES_IMAGE_SIZE", "TETROMINOES_NUM_ENTITIES",
    "TUSK_CLEVR_CROP_SIZE", "TUSK_IMAGE_SIZE", "read_clevr_with_masks", "read_tetrominoes",
]
