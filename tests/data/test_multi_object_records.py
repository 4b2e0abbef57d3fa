"""Readers of multi_object_datasets TFRecords (tfobj.data.multi_object_records).

The tests write small GZIP TFRecord files themselves, in the schema of DeepMind's readers
(multi_object_datasets `tetrominoes.py`, `clevr_with_masks.py`): the feature tables below are
re-typed from those files, and every byte feature is a BytesList with one single-byte string per
element. `test_written_records_follow_deepmind_schema` checks the writer against that table with
DeepMind's decoding steps; the reader tests then compare decoded values with the arrays written.
"""
import re

import numpy as np
import pytest
import tensorflow as tf

from tfobj.data.multi_object_records import read_clevr_with_masks, read_tetrominoes
from tfobj.data.tetrominoes import TetrominoesConfig, generate_tetrominoes

_BYTE = [bytes((value,)) for value in range(256)]
_GZIP = tf.io.TFRecordOptions(compression_type="GZIP")

# Re-typed from multi_object_datasets (shape, dtype); "bytes" features decode to uint8.
DEEPMIND_TETROMINOES = {
    "image": ([35, 35, 3], "bytes"), "mask": ([4, 35, 35, 1], "bytes"), "x": ([4], "float"), "y": ([4], "float"),
    "shape": ([4], "float"), "color": ([4, 3], "float"), "visibility": ([4], "float"),
}
DEEPMIND_CLEVR = {
    "image": ([240, 320, 3], "bytes"), "mask": ([11, 240, 320, 1], "bytes"), "x": ([11], "float"),
    "y": ([11], "float"), "z": ([11], "float"), "pixel_coords": ([11, 3], "float"), "rotation": ([11], "float"),
    "size": ([11], "bytes"), "material": ([11], "bytes"), "shape": ([11], "bytes"), "color": ([11], "bytes"),
    "visibility": ([11], "float"),
}


def example(values, schema):
    features = {}
    for name, (shape, kind) in schema.items():
        array = np.asarray(values[name])
        assert array.shape == tuple(shape), name
        if kind == "bytes":
            flat = array.astype(np.uint8).ravel().tolist()
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[_BYTE[v] for v in flat]))
        else:
            flat = array.astype(np.float32).ravel().tolist()
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=flat))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write(path, records, options=_GZIP):
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)
    return path


def deepmind_parse(record, schema):
    """DeepMind's decoding: parse with the fixed-length table, decode_raw bytes to uint8, squeeze the last axis."""
    features = {name: tf.io.FixedLenFeature(shape, tf.string if kind == "bytes" else tf.float32)
                for name, (shape, kind) in schema.items()}
    parsed = tf.io.parse_single_example(record, features)
    return {name: (tf.squeeze(tf.io.decode_raw(value, tf.uint8), axis=-1) if schema[name][1] == "bytes" else value)
            .numpy() for name, value in parsed.items()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tetro():
    return generate_tetrominoes(TetrominoesConfig(), 5, np.random.default_rng(0))


def tetro_records(data):
    records = []
    for i in range(len(data["image"])):
        values = {name: data[name][i] for name in DEEPMIND_TETROMINOES}
        values["image"] = np.rint(data["image"][i] * 255)
        records.append(example(values, DEEPMIND_TETROMINOES))
    return records


@pytest.fixture(scope="module")
def tetro_file(tmp_path_factory, tetro):
    return write(tmp_path_factory.mktemp("tetro") / "tetrominoes.tfrecords", tetro_records(tetro))


OBJECT_COUNTS = (3, 7, 6, 10)  # both sides of the CLEVR6 boundary, and CLEVR10's maximum


def clevr_values(num_objects, rng):
    """A CLEVR-like scene: random image, random per-pixel entity labels, 1-based codes for objects, 0 beyond."""
    labels = rng.integers(0, num_objects + 1, size=(240, 320))
    present = np.arange(11) <= num_objects  # background + objects
    objects = present & (np.arange(11) > 0)
    codes = lambda high: np.where(objects, rng.integers(1, high + 1, size=11), 0)  # noqa: E731
    return {
        "image": rng.integers(0, 256, size=(240, 320, 3)),
        "mask": np.where(labels[None, ..., None] == np.arange(11)[:, None, None, None], 255, 0),
        "labels": labels,
        "x": np.where(objects, rng.normal(size=11), 0), "y": np.where(objects, rng.normal(size=11), 0),
        "z": np.where(objects, rng.uniform(0.3, 0.7, size=11), 0),
        "pixel_coords": np.where(objects[:, None], rng.uniform(0, 300, size=(11, 3)), 0),
        "rotation": np.where(objects, rng.uniform(0, 360, size=11), 0),
        "size": codes(2), "material": codes(2), "shape": codes(3), "color": codes(8),
        "visibility": present.astype(np.float32),
    }


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    rng = np.random.default_rng(1)
    scenes = [clevr_values(n, rng) for n in OBJECT_COUNTS]
    path = write(tmp_path_factory.mktemp("clevr") / "clevr.tfrecords", [example(s, DEEPMIND_CLEVR) for s in scenes])
    return path, scenes


def as_numpy(dataset):
    return [{key: value.numpy() for key, value in element.items()} for element in dataset]


# --------------------------------------------------------------------------- schema and values


def test_written_records_follow_deepmind_schema(tetro, clevr):
    tetro_parsed = deepmind_parse(tetro_records(tetro)[0], DEEPMIND_TETROMINOES)
    assert tetro_parsed["image"].dtype == np.uint8 and tetro_parsed["image"].shape == (35, 35, 3)
    np.testing.assert_array_equal(tetro_parsed["mask"], tetro["mask"][0])
    path, scenes = clevr
    record = next(iter(tf.data.TFRecordDataset(str(path), compression_type="GZIP"))).numpy()
    clevr_parsed = deepmind_parse(record, DEEPMIND_CLEVR)
    np.testing.assert_array_equal(clevr_parsed["color"], scenes[0]["color"])
    assert clevr_parsed["mask"].shape == (11, 240, 320, 1)


def test_tetrominoes_round_trip_gives_the_generated_arrays(tetro, tetro_file):
    elements = as_numpy(read_tetrominoes(tetro_file))
    assert len(elements) == 5
    for i, element in enumerate(elements):
        assert element["image"].dtype == np.float32 and element["mask"].dtype == np.uint8
        assert element["label_map"].dtype == np.int32 and element["color_index"].dtype == np.int32
        np.testing.assert_array_equal(element["image"], tetro["image"][i])  # 0/1 -> 0/255 -> 0/1 exactly
        for key in ("mask", "label_map", "x", "y", "shape", "color", "visibility", "color_index"):
            np.testing.assert_array_equal(element[key], tetro[key][i], err_msg=key)


def test_tetrominoes_from_several_files_in_order_and_max_records(tetro, tetro_file, tmp_path):
    second = write(tmp_path / "second.tfrecords", tetro_records(tetro)[:2][::-1])
    shapes = [e["shape"] for e in as_numpy(read_tetrominoes([tetro_file, second]))]
    expected = list(tetro["shape"]) + [tetro["shape"][1], tetro["shape"][0]]
    np.testing.assert_array_equal(shapes, expected)
    limited = as_numpy(read_tetrominoes([tetro_file, second], max_records=6))
    np.testing.assert_array_equal([e["shape"] for e in limited], expected[:6])
    assert as_numpy(read_tetrominoes(tetro_file, max_records=0)) == []


def torch_nearest_indices(size_in, size_out):
    """PyTorch `F.interpolate(mode="nearest")` (what TUSK calls): src = min(floor(dst * scale), in - 1), float32."""
    scale = np.float32(size_in / size_out)
    return np.minimum(np.floor(np.arange(size_out, dtype=np.float32) * scale), size_in - 1).astype(int)


def test_tetrominoes_resized_like_tusk(tetro, tetro_file):
    rows = torch_nearest_indices(35, 112)
    for i, element in enumerate(as_numpy(read_tetrominoes(tetro_file, resize_to=112))):
        np.testing.assert_array_equal(element["image"], tetro["image"][i][rows][:, rows])
        np.testing.assert_array_equal(element["mask"], tetro["mask"][i][:, rows][:, :, rows])
        np.testing.assert_array_equal(element["label_map"], tetro["label_map"][i][rows][:, rows])


def test_clevr_values_and_object_counts(clevr):
    path, scenes = clevr
    elements = as_numpy(read_clevr_with_masks(path))
    assert [e["num_objects"] for e in elements] == list(OBJECT_COUNTS)
    for element, scene in zip(elements, scenes):
        np.testing.assert_array_equal(element["image"], scene["image"].astype(np.float32) / 255)
        np.testing.assert_array_equal(element["label_map"], scene["labels"])
        np.testing.assert_array_equal(element["mask"], scene["mask"])
        for key in ("size", "material", "shape", "color"):
            assert element[key].dtype == np.uint8
            np.testing.assert_array_equal(element[key], scene[key], err_msg=key)
        for key in ("x", "y", "z", "rotation", "pixel_coords", "visibility"):
            assert element[key].dtype == np.float32
            np.testing.assert_array_equal(element[key], np.float32(scene[key]), err_msg=key)


def test_clevr6_and_clevr10_filters(clevr):
    path, scenes = clevr
    for max_objects in (6, 10):
        counts = [e["num_objects"] for e in as_numpy(read_clevr_with_masks(path, max_objects=max_objects))]
        assert counts == [n for n in OBJECT_COUNTS if n <= max_objects]
    # TUSK's own CLEVR6 rule keeps an image iff entity 7 has colour code 0: the same images here.
    assert [3, 6] == [np.count_nonzero(s["color"]) for s in scenes if s["color"][7] == 0]


def test_max_records_applies_before_the_filter(clevr):
    path, _ = clevr
    counts = [e["num_objects"] for e in as_numpy(read_clevr_with_masks(path, max_objects=6, max_records=3))]
    assert counts == [n for n in OBJECT_COUNTS[:3] if n <= 6]


def test_clevr_crop_and_resize_match_tusks_numpy_reference(clevr):
    path, scenes = clevr
    top, left = (240 - 192) // 2, (320 - 192) // 2  # TUSK center_crop: (shape - crop) // 2
    index = torch_nearest_indices(192, 112)
    elements = as_numpy(read_clevr_with_masks(path, max_objects=6, crop_size=192, resize_to=112))
    kept = [s for s in scenes if np.count_nonzero(s["color"]) <= 6]
    assert len(elements) == len(kept) == 2
    for element, scene in zip(elements, kept):
        rows, cols = top + index, left + index
        image = scene["image"][rows][:, cols].astype(np.float32) / 255
        assert element["image"].shape == (112, 112, 3)
        np.testing.assert_array_equal(element["image"], image)
        np.testing.assert_array_equal(element["label_map"], scene["labels"][rows][:, cols])
        np.testing.assert_array_equal(element["mask"], scene["mask"][:, rows][:, :, cols])
    cropped = as_numpy(read_clevr_with_masks(path, crop_size=192).take(1))[0]
    np.testing.assert_array_equal(cropped["label_map"], scenes[0]["labels"][24:216, 64:256])


# --------------------------------------------------------------------------- errors


def test_missing_file_or_directory_is_a_value_error_before_reading(tmp_path, tetro_file):
    missing = tmp_path / "tetrominoes_train.tfrecords"
    with pytest.raises(ValueError, match=re.escape(repr(str(missing))) + " does not exist"):
        read_tetrominoes(missing)
    with pytest.raises(ValueError, match=re.escape(repr(str(missing))) + " does not exist"):
        read_clevr_with_masks([tetro_file, missing])
    with pytest.raises(ValueError, match="is a directory"):
        read_clevr_with_masks(tmp_path)


def corrupt_error(path):
    return re.escape(f"TFRecord file {str(path)!r} is corrupt or unreadable")


def test_truncated_file_names_the_file_when_read(tetro, tmp_path):
    whole = write(tmp_path / "whole.tfrecords", tetro_records(tetro)).read_bytes()
    truncated = tmp_path / "truncated.tfrecords"
    truncated.write_bytes(whole[:len(whole) // 2])
    dataset = read_tetrominoes(truncated)  # no error yet: the file exists
    with pytest.raises(tf.errors.OpError, match=corrupt_error(truncated)):
        as_numpy(dataset)


def test_damaged_record_and_non_gzip_files_name_the_file(tetro, tmp_path):
    import gzip

    raw = bytearray(gzip.decompress(write(tmp_path / "ok.tfrecords", tetro_records(tetro)).read_bytes()))
    raw[len(raw) // 2] ^= 0xFF  # flip one byte inside a record: its CRC fails
    damaged = tmp_path / "damaged.tfrecords"
    damaged.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(tf.errors.OpError, match=corrupt_error(damaged)):
        as_numpy(read_tetrominoes(damaged))
    plain = write(tmp_path / "plain.tfrecords", tetro_records(tetro), options=None)  # not GZIP-compressed
    with pytest.raises(tf.errors.OpError, match=corrupt_error(plain)):
        as_numpy(read_clevr_with_masks(plain))


def test_file_of_another_schema_names_the_file(tetro_file):
    with pytest.raises(tf.errors.OpError, match=re.escape(f"TFRecord file {str(tetro_file)!r} does not hold "
                                                           "multi_object_datasets CLEVR (with masks) records")):
        as_numpy(read_clevr_with_masks(tetro_file))


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_objects=11), r"max_objects=11 must be None or an integer in 0..10"),
    (dict(max_objects=-1), r"max_objects=-1 must be None or an integer >= 0"),
    (dict(crop_size=241), r"crop_size=241 must be at most 240"),
    (dict(resize_to=0), r"resize_to=0 must be None or an integer >= 1"),
    (dict(max_records=1.5), r"max_records=1.5 must be None or an integer >= 0"),
])
def test_invalid_arguments(clevr, kwargs, match):
    path, _ = clevr
    with pytest.raises(ValueError, match=match):
        read_clevr_with_masks(path, **kwargs)
