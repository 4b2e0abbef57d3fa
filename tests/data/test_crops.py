"""tfobj.data.random_crops against plain slicing, inked-pixel extents and a hand-computed case."""
import numpy as np
import pytest

from tfobj.data import ScatteredMNISTConfig, random_crops, scattered_mnist


def _ink_box(image, height, width):
    """Normalised box of the pixels > 0 (inclusive extents), or None."""
    rows, cols = np.nonzero(image.max(axis=-1) > 0)
    if len(rows) == 0:
        return None
    return np.array([rows.min() / height, cols.min() / width, (rows.max() + 1) / height, (cols.max() + 1) / width])


@pytest.fixture(scope="module")
def single_digits(mnist):
    config = ScatteredMNISTConfig(image_size=(36, 36), min_digits=1, max_digits=1)
    return scattered_mnist(config, "train", 60, seed=3, cache_dir=None, digits=mnist)


def test_crops_are_slices_and_boxes_match_ink(single_digits):
    out = random_crops(single_digits, crop_size=(24, 20), crops_per_image=3, seed=1)
    assert out["images"].shape == (180, 24, 20, 3) and out["boxes"].shape == (180, 1, 4)
    inside = partial = dropped = 0
    for m in range(180):
        i, (top, left) = out["source"][m], out["offsets"][m]
        assert i == m // 3 and 0 <= top <= 12 and 0 <= left <= 16
        crop = single_digits["images"][i][top:top + 24, left:left + 20]
        np.testing.assert_array_equal(out["images"][m], crop)
        ink = _ink_box(crop, 24, 20)
        whole = _ink_box(single_digits["images"][i], 36, 36)
        fully_inside = ink is not None and np.allclose(
            ink * [24, 20, 24, 20] + [top, left, top, left], whole * 36)
        if ink is None:  # no visible ink: the clipped box is empty or a part of the box without ink
            dropped += out["num_objects"][m] == 0
            continue
        assert out["num_objects"][m] == 1  # visible ink implies a non-empty clipped box
        box = out["boxes"][m, 0]
        if fully_inside:
            inside += 1
            np.testing.assert_allclose(box, ink, atol=1e-6)
        else:
            partial += 1  # the clipped amodal box contains the visible ink
            assert (box[:2] <= ink[:2] + 1e-6).all() and (box[2:] >= ink[2:] - 1e-6).all()
            np.testing.assert_allclose(box * [24, 20, 24, 20],  # the source box in crop pixels, clipped
                                       np.clip(whole * 36 - [top, left, top, left], 0, [24, 20, 24, 20]), atol=1e-4)
        assert out["classes"][m, 0] == single_digits["classes"][i, 0]
    assert inside and partial and dropped  # all three cases occur with this seed


def test_hand_computed_clipping_and_compaction():
    images = np.zeros((1, 10, 10, 3), np.float32)
    boxes = np.array([[[0.0, 0.0, 0.2, 0.2],  # rows 0-1, cols 0-1: outside a crop at (4, 3)
                       [0.3, 0.2, 0.8, 0.6],  # rows 3-7, cols 2-5: clipped to rows 4-7, cols 3-5
                       [0.5, 0.5, 0.9, 1.0],  # rows 5-8, cols 5-9: clipped to rows 5-8, cols 5-8
                       [0.0, 0.0, 0.0, 0.0]]], np.float32)  # padding
    arrays = {"images": images, "boxes": boxes, "num_objects": np.array([3]), "classes": np.array([[7, 8, 9, 0]])}
    # Find the seed's offsets first, then check the boxes by hand for a seed giving (4, 3).
    for seed in range(1000):
        out = random_crops(arrays, crop_size=(5, 6), crops_per_image=1, seed=seed)
        if tuple(out["offsets"][0]) == (4, 3):
            break
    else:
        pytest.fail("no seed gives offsets (4, 3)")
    assert out["num_objects"][0] == 2
    np.testing.assert_allclose(out["boxes"][0], [[0 / 5, 0 / 6, 4 / 5, 3 / 6],
                                                 [1 / 5, 2 / 6, 5 / 5, 6 / 6],
                                                 [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)
    np.testing.assert_array_equal(out["classes"][0], [8, 9, 0, 0])


def test_edge_on_crop_border_is_dropped():
    boxes = np.array([[[0.0, 0.0, 12 / 36, 12 / 36]]], np.float32)  # float32 12/36 * 36 is not exactly 12
    arrays = {"images": np.zeros((1, 36, 36, 3), np.float32), "boxes": boxes,
              "num_objects": np.array([1]), "classes": np.array([[4]])}
    for seed in range(2000):
        out = random_crops(arrays, crop_size=(24, 24), crops_per_image=1, seed=seed)
        if tuple(out["offsets"][0]) == (12, 0):
            assert out["num_objects"][0] == 0 and not out["boxes"].any()
            return
    pytest.fail("no seed gives offsets (12, 0)")


def test_deterministic_and_seed_dependent(single_digits):
    a = random_crops(single_digits, (24, 24), 2, seed=5)
    b = random_crops(single_digits, (24, 24), 2, seed=5)
    c = random_crops(single_digits, (24, 24), 2, seed=6)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["offsets"], c["offsets"])


def test_full_size_crop_is_identity(single_digits):
    out = random_crops(single_digits, (36, 36), 1, seed=0)
    np.testing.assert_array_equal(out["images"], single_digits["images"])
    np.testing.assert_allclose(out["boxes"], single_digits["boxes"], atol=1e-6)
    np.testing.assert_array_equal(out["num_objects"], single_digits["num_objects"])


def test_errors(single_digits):
    with pytest.raises(ValueError, match=r"crop_size \(48, 48\) must fit in the images \(36, 36\)"):
        random_crops(single_digits, (48, 48))
    with pytest.raises(ValueError, match=r"images must have rank 4"):
        random_crops({**single_digits, "images": single_digits["images"][0]}, (12, 12))
    with pytest.raises(ValueError, match=r"boxes must have shape \[N=60, K, 4\]"):
        random_crops({**single_digits, "boxes": single_digits["boxes"][..., :3]}, (12, 12))
    with pytest.raises(ValueError, match=r"classes must have shape"):
        random_crops({**single_digits, "classes": single_digits["classes"][:, None]}, (12, 12))
    with pytest.raises(ValueError, match=r"missing key\(s\) \['num_objects'\]"):
        random_crops({k: v for k, v in single_digits.items() if k != "num_objects"}, (12, 12))
    with pytest.raises(ValueError, match=r"crop_size must be a pair of positive integers"):
        random_crops(single_digits, (12,))
    with pytest.raises(ValueError, match=r"crops_per_image must be a positive integer"):
        random_crops(single_digits, (12, 12), crops_per_image=0)
