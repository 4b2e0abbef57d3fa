"""Scattered MNIST images: determinism, layout, the overlap rule, ground-truth boxes, bad input."""
import numpy as np
import pytest

from tfobj.data import (
    Digits, ScatteredMNISTConfig, ScatteredShapesConfig, digit_alphas, scattered_mnist, split_digits)
from tfobj.data.scattered import place_patches


def generate(mnist, num_images=40, split="train", seed=0, **config):
    return scattered_mnist(ScatteredMNISTConfig(**config), split, num_images, seed=seed, cache_dir=None, digits=mnist)


def cumulative_overlaps(positions, sizes):
    """[n] sum of rectangle-intersection areas of patch i with patches 0..i-1 (pixels)."""
    top_left = positions.astype(np.int64)
    bottom_right = top_left + sizes
    totals = []
    for i in range(len(positions)):
        low = np.maximum(top_left[:i], top_left[i])
        high = np.minimum(bottom_right[:i], bottom_right[i])
        totals.append(int(np.prod(np.clip(high - low, 0, None), axis=1).sum()))
    return np.array(totals)


def inked_box(image):
    """Independent reference: normalised (y0, x0, y1, x1) of all pixels > 0, pixel (r, c) = [r, r+1) x [c, c+1)."""
    rows, cols = np.nonzero(image.max(axis=-1) > 0)
    height, width = image.shape[:2]
    return np.array([rows.min() / height, cols.min() / width, (rows.max() + 1) / height, (cols.max() + 1) / width])


def test_same_arguments_give_identical_arrays(mnist):
    first, second = generate(mnist, seed=3), generate(mnist, seed=3)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_seed_and_split_change_the_data(mnist):
    base = generate(mnist)
    assert not np.array_equal(base["images"], generate(mnist, seed=1)["images"])
    assert not np.array_equal(base["images"], generate(mnist, split="test")["images"])


def test_shapes_dtypes_range_and_zero_padding(mnist):
    data = generate(mnist, num_images=60)
    assert data["images"].shape == (60, 48, 48, 3) and data["images"].dtype == np.float32
    assert data["boxes"].shape == (60, 5, 4) and data["boxes"].dtype == np.float32
    assert data["classes"].shape == (60, 5) and data["classes"].dtype == np.int32
    assert data["num_objects"].shape == (60,) and data["num_objects"].dtype == np.int32
    assert data["images"].min() == 0.0 and data["images"].max() == 1.0
    np.testing.assert_array_equal(data["images"][..., 0], data["images"][..., 1])  # white digits: grey levels
    np.testing.assert_array_equal(data["images"][..., 0], data["images"][..., 2])
    padding = np.arange(5)[None, :] >= data["num_objects"][:, None]
    assert np.all(data["boxes"][padding] == 0) and np.all(data["classes"][padding] == 0)
    assert np.all(data["positions"][padding] == 0) and np.all(data["sizes"][padding] == 0)
    assert np.all(data["sizes"][~padding] == 14)
    assert set(np.unique(data["classes"][~padding])) <= set(range(10))


def test_cumulative_overlap_never_exceeds_98_pixels(mnist):
    data = generate(mnist, num_images=200, min_digits=5, max_digits=5)
    any_overlap = False
    for positions, sizes in zip(data["positions"], data["sizes"]):
        overlaps = cumulative_overlaps(positions, sizes)
        assert overlaps.max() <= 98
        any_overlap |= overlaps.max() > 0
        assert positions.min() >= 0 and (positions + sizes).max() <= 48  # patches fully inside
    assert any_overlap  # the rule is exercised, not vacuous


def test_single_digit_box_is_inked_extent_and_patch_is_a_pool_digit(mnist):
    data = generate(mnist, num_images=30, min_digits=1, max_digits=1)
    pool = split_digits(mnist, "train")
    alphas = digit_alphas(pool, 14)
    for image, box, (top, left), label in zip(data["images"], data["boxes"][:, 0], data["positions"][:, 0],
                                              data["classes"][:, 0]):
        np.testing.assert_allclose(box, inked_box(image), atol=1e-7)
        patch = image[top:top + 14, left:left + 14, 0]
        assert image[..., 0].sum() == pytest.approx(patch.sum(), abs=1e-4)  # nothing drawn outside the patch
        matches = np.flatnonzero(np.all(alphas == patch, axis=(1, 2)))  # exact alpha compositing on black
        assert matches.size >= 1 and label in pool.labels[matches]


def test_disjoint_digits_boxes_match_ink_inside_each_patch(mnist):
    data = generate(mnist, num_images=30, min_digits=3, max_digits=3, max_overlap=0)
    for image, boxes, positions in zip(data["images"], data["boxes"], data["positions"]):
        for box, (top, left) in zip(boxes, positions):
            crop = np.zeros_like(image)
            crop[top:top + 14, left:left + 14] = image[top:top + 14, left:left + 14]
            np.testing.assert_allclose(box, inked_box(crop), atol=1e-7)


def test_count_distribution_covers_min_to_max_uniformly(mnist):
    counts = generate(mnist, num_images=1000, min_digits=1, max_digits=5)["num_objects"]
    frequencies = np.bincount(counts, minlength=6)[1:] / 1000
    assert set(np.unique(counts)) == {1, 2, 3, 4, 5}
    # Binomial(1000, 0.2) has standard deviation 0.0126; allow 5 of them.
    np.testing.assert_allclose(frequencies, 0.2, atol=0.063)


def test_exact_count_and_large_image(mnist):
    data = generate(mnist, num_images=20, image_size=(84, 84), min_digits=3, max_digits=3)
    assert data["images"].shape == (20, 84, 84, 3) and np.all(data["num_objects"] == 3)
    assert data["positions"].max() <= 84 - 14 and data["boxes"].max() <= 1.0


def test_zero_images_gives_empty_arrays_of_the_right_shape(mnist):
    data = generate(mnist, num_images=0)
    assert data["images"].shape == (0, 48, 48, 3) and data["boxes"].shape == (0, 5, 4)
    assert data["num_objects"].shape == (0,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=(10, 48)), r"image_size=\(10, 48\) is smaller than digit_size=14"),
    (dict(min_digits=6, max_digits=5), r"min_digits=6 must be <= max_digits=5"),
    (dict(max_overlap=-1), r"max_overlap=-1 must be a finite number >= 0"),
    (dict(max_overlap=float("nan")), r"max_overlap=nan must be a finite number >= 0"),
    (dict(min_digits=-1), r"min_digits=-1 must be an integer >= 0"),
    (dict(image_size=(48,)), r"image_size=\(48,\) must be a pair"),
    (dict(max_digits=30), r"max_digits=30 patches .* more than image_size=\(48, 48\) holds"),
])
def test_bad_config_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScatteredMNISTConfig(**kwargs)


def test_bad_call_arguments_are_named(mnist):
    with pytest.raises(ValueError, match=r"split='training' is not one of \['train', 'val', 'test'\]"):
        generate(mnist, split="training")
    with pytest.raises(ValueError, match=r"num_images=-1 must be an integer >= 0"):
        generate(mnist, num_images=-1)
    with pytest.raises(ValueError, match=r"seed=-3 must be an integer >= 0"):
        generate(mnist, seed=-3)
    with pytest.raises(TypeError, match="config must be a ScatteredMNISTConfig"):
        scattered_mnist(ScatteredShapesConfig(), "train", 2, cache_dir=None, digits=mnist)


def test_nan_in_user_pool_is_rejected_by_name(mnist):
    images = mnist.images[:100].astype(np.float32)
    pool = Digits(images, mnist.labels[:100], "user pool")
    images[3, 10, 10] = np.nan  # corrupted after construction: caught again when used
    with pytest.raises(ValueError, match=r"Digits.images \(source 'user pool'\) contains NaN"):
        scattered_mnist(None, "train", 2, cache_dir=None, digits=pool)


def test_user_pool_of_floats_renders_like_uint8(mnist):
    as_float = Digits(mnist.images.astype(np.float64), mnist.labels, mnist.source)
    np.testing.assert_array_equal(generate(as_float)["images"], generate(mnist)["images"])


def test_impossible_placement_fails_with_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"could not place 4 patches .* after 2 restarts of 5 tries"):
        place_patches(rng, np.full((4, 2), 14), (28, 28), max_overlap=0, max_placement_tries=5, max_restarts=2)


def test_placement_corners_are_uniform_over_valid_positions():
    rng = np.random.default_rng(1)
    corners = np.concatenate([place_patches(rng, np.array([[14, 14]]), (20, 20), 98) for _ in range(7000)])
    # 7 x 7 valid corners per axis pair: each row/col value 0..6 has probability 1/7 (sd 0.0042 at n=7000).
    for axis in range(2):
        np.testing.assert_allclose(np.bincount(corners[:, axis], minlength=7) / 7000, 1 / 7, atol=0.021)


def test_blank_digit_in_user_pool_is_rejected(mnist):
    images = mnist.images[:50].copy()
    images[7] = 0
    with pytest.raises(ValueError, match=r"digits.images\[\d+\] \(source 'user pool.*has no ink"):
        scattered_mnist(None, "train", 2, cache_dir=None, digits=Digits(images, mnist.labels[:50], "user pool"))


def test_scenes_without_objects_are_allowed(mnist):
    data = generate(mnist, num_images=3, min_digits=0, max_digits=0)
    assert data["boxes"].shape == (3, 0, 4) and np.all(data["num_objects"] == 0)
    assert np.all(data["images"] == 0)
