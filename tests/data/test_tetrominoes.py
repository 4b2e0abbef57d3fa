"""Procedural Tetrominoes (tfobj.data.tetrominoes) against independent references.

The shape set is checked against a brute-force enumeration of all 4-cell polyominoes in a 4 x 4 box;
each piece's pixels against that shape's cells, its colour and its recorded position; the label map
and the image against the masks; the sampling frequencies against uniform with chi-square bounds.
"""
import itertools

import numpy as np
import pytest
from scipy import stats

from tfobj.data.tetrominoes import (
    NUM_TETROMINO_SHAPES, TETROMINO_CELLS, TETROMINO_COLOUR_NAMES, TETROMINO_NAMES, TETROMINO_PALETTE,
    TetrominoesConfig, generate_tetrominoes, tetromino_bitmap, tetromino_class, tetrominoes)

BLOCK = 5


def generate(num_images=200, seed=0, **config):
    return generate_tetrominoes(TetrominoesConfig(**config), num_images, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def data():
    return generate(num_images=300, seed=1)


def brute_force_fixed_tetrominoes():
    """Every edge-connected set of 4 cells of a 4 x 4 grid, translated to touch row 0 and column 0."""
    found = set()
    grid = [(r, c) for r in range(4) for c in range(4)]
    for cells in itertools.combinations(grid, 4):
        cells = set(cells)
        seen, stack = set(), [next(iter(cells))]
        while stack:
            r, c = stack.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            stack += [n for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if n in cells]
        if seen == cells:
            top, left = min(r for r, _ in cells), min(c for _, c in cells)
            found.add(frozenset((r - top, c - left) for r, c in cells))
    return found


def test_the_19_shapes_are_exactly_the_fixed_tetrominoes():
    reference = brute_force_fixed_tetrominoes()
    assert len(reference) == 19  # the known count of fixed tetrominoes (multi_object_datasets issue #10)
    shapes = [frozenset(cells) for cells in TETROMINO_CELLS]
    assert len(shapes) == NUM_TETROMINO_SHAPES == len(set(shapes)) == 19
    assert set(shapes) == reference
    assert all(len(cells) == 4 for cells in TETROMINO_CELLS)
    letters = [name[0] for name in TETROMINO_NAMES]
    assert {letter: letters.count(letter) for letter in "IOTSZJL"} == dict(I=2, O=1, T=4, S=2, Z=2, J=4, L=4)


def test_bitmap_is_the_cells_scaled_by_the_block_size():
    for code, cells in enumerate(TETROMINO_CELLS, start=1):
        bitmap = tetromino_bitmap(code, 3)
        assert bitmap.dtype == bool and bitmap.sum() == 4 * 9
        downsampled = bitmap[::3, ::3]
        assert {tuple(cell) for cell in np.argwhere(downsampled)} == set(cells)
        np.testing.assert_array_equal(bitmap, np.repeat(np.repeat(downsampled, 3, axis=0), 3, axis=1))


def test_layout_dtypes_and_background_entry(data):
    n = 300
    expected = {"image": ((n, 35, 35, 3), np.float32), "mask": ((n, 4, 35, 35, 1), np.uint8),
                "label_map": ((n, 35, 35), np.int32), "x": ((n, 4), np.float32), "y": ((n, 4), np.float32),
                "shape": ((n, 4), np.float32), "color": ((n, 4, 3), np.float32),
                "visibility": ((n, 4), np.float32), "color_index": ((n, 4), np.int32)}
    assert {key: (value.shape, value.dtype) for key, value in data.items()} == expected
    assert set(np.unique(data["mask"])) == {0, 255}  # the multi_object_datasets convention
    assert set(np.unique(data["image"])) == {0.0, 1.0}
    np.testing.assert_array_equal(data["visibility"], 1.0)
    for key in ("x", "y", "shape", "color_index"):
        np.testing.assert_array_equal(data[key][:, 0], 0)
    np.testing.assert_array_equal(data["color"][:, 0], 0.0)  # black background
    assert set(np.unique(data["shape"][:, 1:])) <= set(range(1, 20))
    assert set(np.unique(data["color_index"][:, 1:])) <= set(range(1, 7))


def test_same_rng_state_gives_identical_arrays_and_other_seeds_differ():
    first, second = generate(num_images=30, seed=7), generate(num_images=30, seed=7)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["image"], generate(num_images=30, seed=8)["image"])


def test_cached_entry_point_matches_uncached_and_depends_on_split(tmp_path):
    uncached = tetrominoes(None, "train", 12, seed=3, cache_dir=None)
    cached = tetrominoes(None, "train", 12, seed=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tetrominoes-*.npz"))) == 1
    again = tetrominoes(None, "train", 12, seed=3, cache_dir=tmp_path)  # read from the file
    for key in uncached:
        np.testing.assert_array_equal(cached[key], uncached[key])
        np.testing.assert_array_equal(again[key], uncached[key])
        assert again[key].dtype == uncached[key].dtype
    assert not np.array_equal(tetrominoes(None, "val", 12, seed=3, cache_dir=None)["image"], uncached["image"])


def test_masks_partition_every_image(data):
    membership = data["mask"][..., 0].astype(np.int64) // 255  # [N, 4, H, W] in {0, 1}
    np.testing.assert_array_equal(membership.sum(axis=1), 1)
    np.testing.assert_array_equal(membership[:, 1:].sum(axis=(2, 3)), 4 * BLOCK**2)  # no piece loses a pixel


def test_each_piece_is_its_shape_at_its_position_in_its_colour(data):
    for i in range(len(data["image"])):
        for k in range(1, 4):
            pixels = np.argwhere(data["mask"][i, k, :, :, 0] == 255)
            top, left = pixels.min(axis=0)
            assert (top, left) == (data["y"][i, k], data["x"][i, k])
            local = {tuple(p) for p in pixels - [top, left]}
            code = int(data["shape"][i, k])
            cells = TETROMINO_CELLS[code - 1]
            blocks = itertools.product(cells, range(BLOCK), range(BLOCK))
            assert local == {(BLOCK * r + dr, BLOCK * c + dc) for (r, c), dr, dc in blocks}
            colour = TETROMINO_PALETTE[data["color_index"][i, k] - 1]
            np.testing.assert_array_equal(data["color"][i, k], colour)
            piece_pixels = data["image"][i][pixels[:, 0], pixels[:, 1]]
            np.testing.assert_array_equal(piece_pixels, np.broadcast_to(colour, piece_pixels.shape))


def test_label_map_agrees_with_masks_and_reproduces_the_image(data):
    expected = np.argmax(data["mask"][..., 0], axis=1)  # each pixel is in exactly one mask
    np.testing.assert_array_equal(data["label_map"], expected)
    rebuilt = np.take_along_axis(data["color"], data["label_map"].reshape(len(expected), -1)[..., None], axis=1)
    np.testing.assert_array_equal(data["image"], rebuilt.reshape(data["image"].shape))
    assert np.all(data["image"][data["label_map"] == 0] == 0.0)


def test_shapes_colours_and_their_114_classes_are_uniform():
    data = generate(num_images=3000, seed=11)
    shapes = data["shape"][:, 1:].astype(int).ravel()
    colours = data["color_index"][:, 1:].ravel()
    assert shapes.size == colours.size == 9000
    # Chi-square goodness of fit to uniform. The tolerance: reject only beyond the 1e-4 upper quantile
    # (shapes: 18 dof, bound 49.2; colours: 5 dof, 25.7; classes: 113 dof, 177.6). In expectation a generator
    # that never draws one of the 19 shapes scores ~500 on shapes, one that doubles one colour's rate ~918.
    for values, bins in ((shapes - 1, 19), (colours - 1, 6)):
        counts = np.bincount(values, minlength=bins)
        assert counts.size == bins
        statistic = ((counts - values.size / bins) ** 2 / (values.size / bins)).sum()
        assert statistic < stats.chi2.ppf(1 - 1e-4, bins - 1), counts
    classes = tetromino_class(shapes, colours)
    np.testing.assert_array_equal(classes, (shapes - 1) * 6 + colours - 1)
    counts = np.bincount(classes, minlength=114)
    assert counts.size == 114 and counts.min() > 0
    statistic = ((counts - 9000 / 114) ** 2 / (9000 / 114)).sum()
    assert statistic < stats.chi2.ppf(1 - 1e-4, 113)
    # Independence of shape and colour (contingency chi-square, 18 * 5 = 90 dof, same 1e-4 level).
    table = np.bincount(classes, minlength=114).reshape(19, 6)
    assert stats.chi2_contingency(table).pvalue > 1e-4


def test_positions_reach_every_image_border():
    data = generate(num_images=500, seed=2)
    labels = data["label_map"] > 0
    # Every row and column of the canvas is covered by some piece in some image, so corners are not truncated.
    assert labels.any(axis=(0, 2)).all() and labels.any(axis=(0, 1)).all()


def test_min_gap_keeps_pieces_apart_and_zero_gap_lets_them_touch():
    def touching_pairs(label_map):
        """Pairs of 8-neighbouring pixels that belong to two different pieces."""
        padded = np.pad(label_map, 1)
        centre = padded[1:-1, 1:-1]
        count = 0
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            other = padded[1 + dr:1 + dr + 35, 1 + dc:1 + dc + 35]
            count += np.sum((centre > 0) & (other > 0) & (centre != other))
        return count

    apart = generate(num_images=300, seed=4, min_gap=1)
    assert sum(touching_pairs(m) for m in apart["label_map"]) == 0
    close = generate(num_images=300, seed=4, min_gap=0)
    assert sum(touching_pairs(m) for m in close["label_map"]) > 0


def test_subsets_of_shapes_and_a_custom_palette_are_respected():
    palette = ((1.0, 0.5, 0.0), (0.2, 0.2, 0.2))
    data = generate(num_images=100, shapes=(1, 3), palette=palette, block_size=4, background=(1.0, 1.0, 1.0))
    assert set(np.unique(data["shape"][:, 1:])) == {1.0, 3.0}
    assert set(np.unique(data["color_index"][:, 1:])) == {1, 2}
    np.testing.assert_array_equal(data["color"][:, 0], 1.0)
    np.testing.assert_array_equal(data["mask"][:, 1:].sum(axis=(2, 3, 4)) // 255, 4 * 16)
    np.testing.assert_allclose(data["color"][:, 1:], np.asarray(palette, np.float32)[data["color_index"][:, 1:] - 1])


def test_palette_order_is_tusks_colour_classes():
    names = {"red": [1, 0, 0], "green": [0, 1, 0], "blue": [0, 0, 1], "cyan": [0, 1, 1], "magenta": [1, 0, 1],
             "yellow": [1, 1, 0]}
    assert [names[name] for name in TETROMINO_COLOUR_NAMES] == TETROMINO_PALETTE.astype(int).tolist()
    # TUSK datasets/multi_object.py color_dict: RGB key "r-g-b" -> colour class; ours is color_index - 1.
    tusk = {"1-0-0": 0, "0-1-0": 1, "0-0-1": 2, "0-1-1": 3, "1-0-1": 4, "1-1-0": 5}
    for index, rgb in enumerate(TETROMINO_PALETTE):
        assert tusk["-".join(str(int(c)) for c in rgb)] == index


@pytest.mark.parametrize("fields, match", [
    (dict(block_size=9), r"block_size=9.*larger than image_size=\(35, 35\)"),
    (dict(num_pieces=13), r"num_pieces=13 .*cover 1300 pixels.*\(1225\)"),
    (dict(shapes=(0, 1)), r"shapes entry=0 must be an integer >= 1"),
    (dict(shapes=(20,)), r"shapes entry 20 must be a shape code in 1..19"),
    (dict(shapes=()), r"non-empty sequence of distinct shape codes"),
    (dict(palette=((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))), r"contains the background colour"),
    (dict(palette=((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))), r"distinct colours"),
    (dict(palette=((1.5, 0.0, 0.0),)), r"RGB triple with components in \[0, 1\]"),
    (dict(num_pieces=0), r"num_pieces=0 must be an integer >= 1"),
    (dict(min_gap=-1), r"min_gap=-1 must be an integer >= 0"),
])
def test_invalid_configs_name_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        TetrominoesConfig(**fields)


def test_unplaceable_scene_raises_after_the_restarts():
    config = TetrominoesConfig(image_size=(8, 8), block_size=2, num_pieces=4, min_gap=2, max_placement_tries=5,
                               max_restarts=3)
    with pytest.raises(ValueError, match=r"could not place 4 tetrominoes .*min_gap=2.*max_restarts=3"):
        generate_tetrominoes(config, 1, np.random.default_rng(0))


def test_tetromino_class_rejects_background_codes():
    with pytest.raises(ValueError, match=r"shape in 1..19 and color_index in 1..6"):
        tetromino_class([0, 1], [1, 1])
