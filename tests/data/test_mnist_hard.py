"""Procedural MNIST-Hard (TUSK / MIST): determinism, layout, scales, placement, ground truth against an independent
re-rendering, split disjointness, the cache, the metrics on the data's own ground truth, bad input."""
import hashlib

import numpy as np
import pytest

from tfobj.data import Digits, digit_alphas, split_digits
from tfobj.data.mnist_hard import MNISTHardConfig, generate_mnist_hard, mnist_hard
from tfobj.metrics.keypoint_detection import classification_accuracy, detection_accuracy, match_keypoints


def generate(mnist, num_images=40, split="train", seed=0, **config):
    return mnist_hard(MNISTHardConfig(**config), split, num_images, seed=seed, cache_dir=None, digits=mnist)


@pytest.fixture(scope="module")
def data(mnist):
    return generate(mnist, num_images=300)


def digit_hash(image):
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def reference_image(pool, indices, sizes, positions, image_size=(80, 80)):
    """Independent rendering: each digit resized by the public `digit_alphas`, white, 1 - prod(1 - alpha)."""
    transparency = np.ones(image_size)
    for index, side, (top, left) in zip(indices, sizes, positions):
        alpha = digit_alphas(Digits(pool.images[index:index + 1], pool.labels[index:index + 1], "one"), int(side))[0]
        transparency[top:top + side, left:left + side] *= 1.0 - alpha
    return 1.0 - transparency


def inked_box(mask, top, left, height=80, width=80):
    """Normalised (y0, x0, y1, x1) of the pixels > 0 of `mask` placed at (top, left); pixel r = [r, r + 1)."""
    rows, cols = np.nonzero(mask > 0)
    return np.array([(top + rows.min()) / height, (left + cols.min()) / width,
                     (top + rows.max() + 1) / height, (left + cols.max() + 1) / width])


# --------------------------------------------------------------------------- determinism and layout


def test_same_arguments_give_identical_arrays_and_seed_or_split_change_them(mnist):
    first, second = generate(mnist, seed=3, split="val"), generate(mnist, seed=3, split="val")
    assert first.keys() == second.keys()
    for key in first:
        assert first[key].dtype == second[key].dtype
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["images"], generate(mnist, seed=4, split="val")["images"])
    assert not np.array_equal(first["images"], generate(mnist, seed=3, split="test")["images"])


def test_defaults_are_80_by_80_with_9_digits_of_sides_16_to_24():
    config = MNISTHardConfig()
    assert (config.image_size, config.num_digits, config.min_digit_size, config.max_digit_size) == (
        (80, 80), 9, 16, 24)


def test_layout_dtypes_and_grey_white_on_black(data):
    n = 300
    expected = {"images": ((n, 80, 80, 3), np.float32), "classes": ((n, 9), np.int32), "num_objects": ((n,), np.int32),
                "boxes": ((n, 9, 4), np.float32), "centres": ((n, 9, 2), np.float32), "radii": ((n, 9), np.float32),
                "keypoints": ((n, 9, 3), np.float32), "positions": ((n, 9, 2), np.int32),
                "sizes": ((n, 9, 2), np.int32), "digit_indices": ((n, 9), np.int32)}
    assert {key: (value.shape, value.dtype) for key, value in data.items()} == expected
    images = data["images"]
    assert images.min() == 0.0 and images.max() <= 1.0 and images.max() > 0.99
    np.testing.assert_array_equal(images[..., 0], images[..., 1])  # three equal channels: grey
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert np.median(images) == 0.0  # black background, white digits
    assert np.all(data["num_objects"] == 9)
    assert set(np.unique(data["classes"])) == set(range(10))


def test_sides_are_uniform_integers_in_the_configured_range(mnist, data):
    sides = data["sizes"]
    np.testing.assert_array_equal(sides[..., 0], sides[..., 1])  # square patches
    counts = np.bincount(sides[..., 0].ravel(), minlength=25)[16:25]
    assert sides.min() >= 16 and sides.max() <= 24 and np.all(counts > 0)
    # 2,700 draws over 9 values: each count ~ 300 +- 16 (binomial sd); 5 sd bounds.
    assert np.all(np.abs(counts - 300) < 5 * np.sqrt(2700 * (1 / 9) * (8 / 9)))
    other = generate(mnist, num_images=30, min_digit_size=10, max_digit_size=12)["sizes"]
    assert set(np.unique(other)) == {10, 11, 12}


def test_patches_and_keypoints_lie_inside_the_image_and_agree(data):
    positions, sides = data["positions"], data["sizes"][..., 0]
    assert positions.min() >= 0 and (positions + sides[..., None]).max() <= 80
    centres = positions + sides[..., None] / 2.0  # patch [r0, r0 + s): centre r0 + s / 2
    np.testing.assert_array_equal(data["centres"], centres)
    np.testing.assert_array_equal(data["radii"], sides / 2.0)
    np.testing.assert_array_equal(data["keypoints"], np.stack([centres[..., 1], centres[..., 0], sides / 2.0], -1))
    assert data["centres"].min() > 0 and data["centres"].max() < 80
    # The MIST-style box centre +- radius is the patch, inside the image.
    assert (data["centres"] - data["radii"][..., None]).min() >= 0
    assert (data["centres"] + data["radii"][..., None]).max() <= 80


def test_cumulative_patch_overlap_never_exceeds_max_overlap(data):
    any_overlap = False
    for positions, sides in zip(data["positions"].astype(int), data["sizes"][..., 0].astype(int)):
        for i in range(9):
            low = np.maximum(positions[:i], positions[i])
            high = np.minimum(positions[:i] + sides[:i, None], positions[i] + sides[i])
            overlap = np.prod(np.clip(high - low, 0, None), axis=1).sum()
            assert overlap <= 100
            any_overlap |= overlap > 0
    assert any_overlap  # digits do overlap: the rule is exercised


# --------------------------------------------------------------------------- ground truth


def test_images_are_the_claimed_digits_and_boxes_their_inked_extents(mnist, data):
    pool = split_digits(mnist, "train")
    for i in range(25):
        indices, sides, positions = data["digit_indices"][i], data["sizes"][i, :, 0], data["positions"][i]
        np.testing.assert_allclose(data["images"][i, ..., 0], reference_image(pool, indices, sides, positions),
                                   atol=1e-6)
        np.testing.assert_array_equal(data["classes"][i], pool.labels[indices])
        for k in range(9):
            alpha = digit_alphas(Digits(pool.images[indices[k]][None], pool.labels[indices[k]][None], "one"),
                                 int(sides[k]))[0]
            np.testing.assert_allclose(data["boxes"][i, k], inked_box(alpha, *positions[k]), atol=1e-7)


def test_a_lone_digit_s_box_is_the_image_s_inked_extent(mnist):
    single = generate(mnist, num_images=20, num_digits=1)
    for image, box in zip(single["images"], single["boxes"][:, 0]):
        np.testing.assert_allclose(box, inked_box(image[..., 0], 0, 0), atol=1e-7)


def test_each_split_draws_only_its_own_digits(mnist):
    hashes = {split: {digit_hash(image) for image in split_digits(mnist, split).images}
              for split in ("train", "val", "test")}
    assert not (hashes["train"] & hashes["test"]) and not (hashes["train"] & hashes["val"])
    for split in ("val", "test"):
        scenes = generate(mnist, num_images=60, split=split)
        pool = split_digits(mnist, split)
        for i in range(10):  # the rendered pixels are this split's digits (independent re-rendering)
            np.testing.assert_allclose(
                scenes["images"][i, ..., 0],
                reference_image(pool, scenes["digit_indices"][i], scenes["sizes"][i, :, 0], scenes["positions"][i]),
                atol=1e-6)
        used = {digit_hash(pool.images[index]) for index in scenes["digit_indices"].ravel()}
        assert used <= hashes[split] and not (used & hashes["train"])


def test_ground_truth_scores_perfectly_with_tusk_s_metrics(data):
    # GT centres as predictions: with sides 16..24 a centred 20 x 20 box has IoU >= 16^2/20^2 = 0.64 with its own
    # GT box; prototypes = classes gives a pure confusion matrix.
    matches = match_keypoints(data["centres"], data["centres"], data["radii"])
    np.testing.assert_array_equal(matches, np.broadcast_to(np.arange(9), (300, 9)))
    result = classification_accuracy(data["classes"], data["classes"], matches)
    assert (result["det_acc"], result["cls_acc"], result["acc"]) == (1.0, 1.0, 1.0)
    # Keypoints 10 pixels off along one axis: the IoU with the own GT box is s/2 * min(s, 20) / (400 + s^2 - that),
    # at most 12 * 20 / (400 + 576 - 240) = 0.33 (s = 24), so a GT is detected only if a neighbour's shifted
    # keypoint happens to land on it: most GTs are lost.
    shifted = data["centres"] + np.array([0.0, 10.0], np.float32)
    assert detection_accuracy(shifted, data["centres"], data["radii"]) < 0.05  # measured 0.016 (seed 0)


# --------------------------------------------------------------------------- cache and errors


def test_second_call_reads_the_cache(mnist, tmp_path):
    first = mnist_hard(None, "test", 5, cache_dir=tmp_path, digits=mnist)
    (path,) = tmp_path.glob("mnist_hard-*.npz")
    stamp = path.stat().st_mtime_ns
    second = mnist_hard(None, "test", 5, cache_dir=tmp_path, digits=mnist)
    assert path.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("*.npz"))) == 1
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    mnist_hard(None, "val", 5, cache_dir=tmp_path, digits=mnist)
    assert len(list(tmp_path.glob("mnist_hard-*.npz"))) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_digit_size=20, max_digit_size=18), "min_digit_size=20 must be <= max_digit_size=18"),
    (dict(max_digit_size=81), "max_digit_size=81 does not fit in image_size=\\(80, 80\\)"),
    (dict(num_digits=0), "num_digits=0 must be an integer >= 1"),
    (dict(num_digits=30, min_digit_size=20, max_overlap=0), "cover at least 12000"),
    (dict(image_size=(80,)), "image_size=\\(80,\\) must be a pair"),
    (dict(max_overlap=-1), "max_overlap=-1 must be a finite number >= 0"),
])
def test_bad_configs_raise_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MNISTHardConfig(**kwargs)


def test_bad_arguments_raise(mnist):
    with pytest.raises(ValueError, match="num_images=-1 must be an integer >= 0"):
        mnist_hard(None, "train", -1, cache_dir=None, digits=mnist)
    with pytest.raises(ValueError, match="split='dev' is not one of"):
        mnist_hard(None, "dev", 1, cache_dir=None, digits=mnist)
    with pytest.raises(TypeError, match="config must be a MNISTHardConfig"):
        generate_mnist_hard(object(), mnist, 1, np.random.default_rng(0))
    blank = Digits(np.concatenate([mnist.images[:3], np.zeros((1, 28, 28), np.uint8)]), np.arange(4), "with blank")
    with pytest.raises(ValueError, match="digits.images\\[3\\] \\(source 'with blank'\\) has no ink"):
        generate_mnist_hard(MNISTHardConfig(), blank, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="could not place 9 patches"):
        generate_mnist_hard(MNISTHardConfig(image_size=(48, 48), max_overlap=0, max_restarts=2,
                                            max_placement_tries=5), mnist, 3, np.random.default_rng(0))
