"""Scattered Shapes images and the procedural shape masks."""
import math

import numpy as np
import pytest

from tfobj.data import PALETTE, SHAPE_NAMES, ScatteredShapesConfig, scattered_shapes, shape_mask


def generate(num_images=40, split="train", seed=0, **config):
    return scattered_shapes(ScatteredShapesConfig(**config), split, num_images, seed=seed, cache_dir=None)


def test_palette_is_the_six_saturated_colours():
    expected = {(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 1)}
    assert {tuple(int(v) for v in colour) for colour in PALETTE} == expected


def test_layout_dtypes_and_class_encoding():
    data = generate(num_images=300)
    assert data["images"].shape == (300, 48, 48, 3) and data["images"].dtype == np.float32
    assert 0.0 <= data["images"].min() and data["images"].max() == 1.0
    for key in ("classes", "shapes", "colours"):
        assert data[key].shape == (300, 5) and data[key].dtype == np.int32
    valid = np.arange(5)[None, :] < data["num_objects"][:, None]
    np.testing.assert_array_equal(data["classes"], data["shapes"] * 6 + data["colours"])
    assert set(np.unique(data["shapes"][valid])) == set(range(5))
    assert set(np.unique(data["colours"][valid])) == set(range(6))
    assert np.all(data["classes"][~valid] == 0) and np.all(data["boxes"][~valid] == 0)


def test_determinism_and_split_dependence():
    first, second = generate(seed=5), generate(seed=5)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["images"], generate(seed=5, split="val")["images"])


def test_single_shape_pixels_are_alpha_times_its_palette_colour():
    data = generate(num_images=100, min_shapes=1, max_shapes=1)
    for image, colour_index, box in zip(data["images"], data["colours"][:, 0], data["boxes"][:, 0]):
        colour = PALETTE[colour_index]
        alpha = image.max(axis=-1)
        np.testing.assert_array_equal(image, alpha[..., None] * colour)  # exactly a * c over black
        assert np.any(alpha == 1.0)  # fully covered interior pixels show the exact palette colour
        rows, cols = np.nonzero(alpha > 0)
        np.testing.assert_allclose(box, [rows.min() / 48, cols.min() / 48, (rows.max() + 1) / 48,
                                         (cols.max() + 1) / 48], atol=1e-7)


def test_saturated_pixels_of_crowded_scenes_are_black_or_palette_colours():
    images = generate(num_images=100, min_shapes=5, max_shapes=5)["images"]
    pixels = images.reshape(-1, 3)
    saturated = pixels[np.all((pixels == 0) | (pixels == 1), axis=1)]
    allowed = {(0, 0, 0)} | {tuple(colour) for colour in PALETTE.tolist()}
    assert {tuple(p) for p in np.unique(saturated, axis=0).tolist()} <= allowed


def test_cumulative_overlap_rule_with_random_sizes():
    data = generate(num_images=200, min_shapes=5, max_shapes=5)
    for positions, sizes in zip(data["positions"], data["sizes"]):
        corners, ends = positions.astype(int), positions.astype(int) + sizes
        assert corners.min() >= 0 and ends.max() <= 48
        for i in range(1, 5):
            sides = np.clip(np.minimum(ends[:i], ends[i]) - np.maximum(corners[:i], corners[i]), 0, None)
            assert np.prod(sides, axis=1).sum() <= 98


def test_sizes_are_rounded_normal_14_1p4():
    sizes = generate(num_images=1000, min_shapes=5, max_shapes=5)["sizes"].reshape(-1).astype(float)
    # Each dimension is rint(N(14, 1.4)): mean 14, variance 1.4**2 + 1/12 (rounding), sd 1.4295.
    # With n = 10,000 values the mean's standard error is 0.0143 and the sd's about 0.0101;
    # the tolerances are 5 standard errors.
    assert sizes.size == 10_000
    assert sizes.mean() == pytest.approx(14.0, abs=0.072)
    assert sizes.std() == pytest.approx(math.sqrt(1.4**2 + 1 / 12), abs=0.051)
    assert np.all(sizes == np.round(sizes)) and sizes.min() >= 7


@pytest.mark.parametrize("name, area", [
    ("circle", math.pi / 4),
    ("diamond", 0.5),
    ("star", 10 * 0.5 * 1.0 * 0.45 * math.sin(math.pi / 5) / 4),  # 10 centre triangles, radii 1 and 0.45
    ("cross", 1 - 4 * (1 / 3) ** 2),  # square minus the four corner squares
    ("x", (2 * 1.44 - 0.32) / 4),  # two bands |u -+ v| <= 0.4 (area 1.44 each) minus their overlap 0.32
])
def test_mask_area_matches_the_analytic_shape(name, area):
    mask = shape_mask(SHAPE_NAMES.index(name), 200, 200)
    assert mask.mean() == pytest.approx(area, abs=0.005)


def test_masks_are_anti_aliased_alpha_in_unit_interval():
    for index in range(len(SHAPE_NAMES)):
        mask = shape_mask(index, 14, 17)
        assert mask.shape == (14, 17) and mask.dtype == np.float32
        assert mask.min() == 0.0 and mask.max() == 1.0
        assert np.any((mask > 0) & (mask < 1))  # edge pixels are partially covered
        assert not mask.flags.writeable


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_shape_size=0), r"min_shape_size=0 must be an integer >= 1"),
    (dict(shape_size_std=-1.0), r"shape_size_std=-1.0 must be a finite number >= 0"),
    (dict(image_size=(6, 6)), r"image_size=\(6, 6\) is smaller than min_shape_size=7"),
    (dict(min_shapes=3, max_shapes=2), r"min_shapes=3 must be <= max_shapes=2"),
])
def test_bad_config_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScatteredShapesConfig(**kwargs)
