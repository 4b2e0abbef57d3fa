"""The on-disk dataset cache (atomic writes, integrity checks, keys) and `as_dataset`."""
import logging
import os
import time

import numpy as np
import pytest

from tfobj.data import (
    Digits, ScatteredMNISTConfig, as_dataset, default_cache_dir, scattered_mnist, scattered_mnist_videos,
    scattered_shapes)
from tfobj.data import cache as cache_module


def only_files(directory):
    return sorted(path.name for path in directory.iterdir())


def shapes(cache_dir, num_images=6, seed=0, split="train"):
    return scattered_shapes(None, split, num_images, seed=seed, cache_dir=cache_dir)


def assert_same(first, second):
    assert first.keys() == second.keys()
    for key in first:
        assert first[key].dtype == second[key].dtype
        np.testing.assert_array_equal(first[key], second[key])


def test_second_call_reads_the_cache_instead_of_generating(tmp_path, monkeypatch, caplog, mnist):
    caplog.set_level(logging.INFO, logger="tfobj.data")
    first = scattered_mnist(None, "train", 8, cache_dir=tmp_path, digits=mnist)
    (cached,) = tmp_path.glob("scattered_mnist-*.npz")

    def must_not_generate(*args, **kwargs):
        raise AssertionError("generated although a cache file exists")

    monkeypatch.setattr(cache_module, "generate_mnist_images", must_not_generate)
    second = scattered_mnist(None, "train", 8, cache_dir=tmp_path, digits=mnist)
    assert_same(first, second)
    assert f"loaded scattered_mnist (train, 8 examples) from cache {cached}" in caplog.text


def test_cached_equals_uncached(tmp_path, mnist):
    assert_same(shapes(tmp_path), shapes(None))
    videos = scattered_mnist_videos(None, "val", 3, cache_dir=tmp_path, digits=mnist)
    assert_same(videos, scattered_mnist_videos(None, "val", 3, cache_dir=tmp_path, digits=mnist))
    assert_same(videos, scattered_mnist_videos(None, "val", 3, cache_dir=None, digits=mnist))


def test_every_key_component_selects_its_own_file(tmp_path, mnist):
    scattered_mnist(None, "train", 4, cache_dir=tmp_path, digits=mnist)
    scattered_mnist(None, "train", 4, seed=1, cache_dir=tmp_path, digits=mnist)
    scattered_mnist(None, "val", 4, cache_dir=tmp_path, digits=mnist)
    scattered_mnist(None, "train", 5, cache_dir=tmp_path, digits=mnist)
    scattered_mnist(ScatteredMNISTConfig(max_overlap=50), "train", 4, cache_dir=tmp_path, digits=mnist)
    other_pool = Digits(mnist.images[::-1], mnist.labels[::-1], mnist.source)  # same source string, other digits
    scattered_mnist(None, "train", 4, cache_dir=tmp_path, digits=other_pool)
    assert len(list(tmp_path.glob("scattered_mnist-*.npz"))) == 6


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def partial_then_fail(file, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("interrupted mid-write")

    monkeypatch.setattr(cache_module, "_save_npz", partial_then_fail)
    with pytest.raises(RuntimeError, match="interrupted mid-write"):
        shapes(tmp_path)
    assert only_files(tmp_path) == []  # no final file, and the temporary file was removed


def test_leftover_temp_file_from_a_killed_writer_is_never_read(tmp_path, monkeypatch):
    def partial_then_die(file, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # as if killed; the unlink below is disabled to mimic SIGKILL

    with monkeypatch.context() as patch:
        patch.setattr(cache_module, "_save_npz", partial_then_die)
        patch.setattr(cache_module.os, "unlink", lambda path: None)
        with pytest.raises(KeyboardInterrupt):
            shapes(tmp_path)
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".scattered_shapes-") and leftover.name.endswith(".tmp")
    assert not list(tmp_path.glob("*.npz"))
    data = shapes(tmp_path)  # regenerates; the garbage temp file is ignored
    assert_same(data, shapes(None))
    assert len(list(tmp_path.glob("scattered_shapes-*.npz"))) == 1
    assert leftover.read_bytes() == b"PK\x03\x04 half an archive"


def test_unwritable_cache_warns_and_still_returns_the_data(tmp_path, monkeypatch, caplog):
    def disk_full(file, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "_save_npz", disk_full)
    with caplog.at_level(logging.WARNING, logger="tfobj.data"):
        data = shapes(tmp_path)
    assert_same(data, shapes(None))
    assert "could not write dataset cache" in caplog.text and "No space left" in caplog.text
    assert only_files(tmp_path) == []


def _cache_file(tmp_path):
    shapes(tmp_path)
    (path,) = tmp_path.glob("scattered_shapes-*.npz")
    return path


def test_truncated_cache_file_is_an_error_naming_it(tmp_path):
    path = _cache_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or unreadable") as error:
        shapes(tmp_path)
    assert str(path) in str(error.value) and "delete" in str(error.value)
    assert path.read_bytes() == data[: len(data) // 2]  # not silently overwritten


def test_flipped_byte_is_an_error_naming_the_file(tmp_path):
    path = _cache_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as error:
        shapes(tmp_path)
    assert str(path) in str(error.value) and "delete" in str(error.value)


def test_tampered_arrays_fail_the_checksum(tmp_path):
    path = _cache_file(tmp_path)
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["images"][0, 10, 10, 0] = 0.5  # a valid archive whose content no longer matches its sha256
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="fails its integrity check") as error:
        shapes(tmp_path)
    assert str(path) in str(error.value)


def test_file_holding_another_dataset_is_rejected(tmp_path):
    path = _cache_file(tmp_path)
    shapes(tmp_path, seed=1)
    (other,) = set(tmp_path.glob("scattered_shapes-*.npz")) - {path}
    os.replace(other, path)
    with pytest.raises(ValueError, match="holds a different dataset") as error:
        shapes(tmp_path)
    assert str(path) in str(error.value)


def test_auto_cache_dir_uses_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "from_env"))
    assert default_cache_dir() == tmp_path / "from_env"
    shapes("auto", num_images=2)
    assert len(list((tmp_path / "from_env").glob("scattered_shapes-*.npz"))) == 1
    monkeypatch.delenv("TFOBJ_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "tfobj"


def test_as_dataset_yields_per_image_elements():
    data = shapes(None, num_images=5)
    dataset = as_dataset(data, keys=["images", "boxes", "classes", "num_objects"])
    spec = dataset.element_spec
    assert spec["images"].shape == (48, 48, 3) and spec["images"].dtype.name == "float32"
    assert spec["boxes"].shape == (5, 4) and spec["classes"].shape == (5,) and spec["num_objects"].shape == ()
    elements = list(dataset)
    assert len(elements) == 5
    np.testing.assert_array_equal(elements[3]["boxes"].numpy(), data["boxes"][3])
    assert int(elements[3]["num_objects"]) == data["num_objects"][3]


def test_as_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match=r"keys \['videos'\] are not in arrays"):
        as_dataset({"images": np.zeros((2, 4, 4, 3))}, keys=["videos"])
    with pytest.raises(ValueError, match="share their first dimension"):
        as_dataset({"images": np.zeros((2, 4, 4, 3)), "boxes": np.zeros((3, 1, 4))})


@pytest.mark.slow
def test_64k_mnist_images_generate_cache_and_reload(tmp_path, mnist):
    start = time.monotonic()
    data = scattered_mnist(None, "train", 64_000, cache_dir=tmp_path, digits=mnist)
    generated = time.monotonic() - start
    reloaded = scattered_mnist(None, "train", 64_000, cache_dir=tmp_path, digits=mnist)
    assert_same(data, reloaded)
    assert generated < 300  # measured ~25 s including the 1.8 GB cache write on 2 CPU cores
    np.testing.assert_allclose(np.bincount(data["num_objects"], minlength=6)[1:] / 64_000, 0.2, atol=0.01)
