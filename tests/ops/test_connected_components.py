"""connected_components against a scipy.ndimage reference and, on the TF 2.15 leg, against tfa."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tfobj.ops.connected_components import _label_any_rank, connected_components, tfa_available

FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


# ----------------------------------------------------------------------------- reference


def reference_labels(images) -> np.ndarray:
    """tfa's labelling from scipy: 4-connected components of each non-zero value, per image,
    numbered 1..n over the whole batch by first pixel in (image, row, col) order; NaN pixels
    (NaN != NaN) are singletons."""
    images = np.asarray(images)
    batch = images.reshape((-1,) + images.shape[-2:])
    provisional = np.zeros(batch.shape, np.int64)  # globally unique but unordered component ids
    next_id = 1
    for n, image in enumerate(batch):
        nan = np.isnan(image) if image.dtype.kind == "f" else np.zeros(image.shape, bool)
        for value in np.unique(image[(image != 0) & ~nan]):
            components, count = ndimage.label(image == value, structure=FOUR_CONNECTED)
            provisional[n][components > 0] = components[components > 0] + next_id - 1
            next_id += count
        provisional[n][nan] = np.arange(next_id, next_id + nan.sum())
        next_id += nan.sum()
    flat = provisional.ravel()
    ids, first_pixel = np.unique(flat, return_index=True)
    ids, first_pixel = ids[ids > 0], first_pixel[ids > 0]
    new_id = np.zeros(next_id, np.int64)
    new_id[ids[np.argsort(first_pixel)]] = np.arange(1, len(ids) + 1)
    return new_id[flat].reshape(images.shape).astype(np.int32)


def test_reference_on_a_hand_checked_example():
    image = np.array(
        [[1, 1, 0, 2],
         [0, 1, 2, 2],
         [3, 0, 2, 1]]
    )
    expected = np.array(
        [[1, 1, 0, 2],
         [0, 1, 2, 2],
         [3, 0, 2, 4]]
    )
    np.testing.assert_array_equal(reference_labels(image), expected)
    second = expected + 4 * (expected > 0)  # numbering continues across the batch
    np.testing.assert_array_equal(reference_labels(np.stack([image, image])), np.stack([expected, second]))


# ----------------------------------------------------------------------------- test images


def random_images(seed, shape, fill, num_values, dtype):
    """Random images: each pixel is non-zero with probability `fill`, with one of `num_values` values."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, num_values + 1, size=shape)
    images = np.where(rng.random(shape) < fill, values, 0)
    if dtype == np.float32:
        images = images * 0.5  # non-integer floats
    return images.astype(dtype)


def serpentine(height, width, vertical=False):
    """One 1-pixel-wide path through every other row (or column), turning at alternate ends."""
    if vertical:
        return serpentine(width, height).T.copy()
    image = np.zeros((height, width), np.int32)
    image[::2] = 1
    image[1::4, -1] = 1
    image[3::4, 0] = 1
    return image


def spiral(size):
    """A 1-pixel-wide square spiral from the border to the centre, with 1-pixel gaps."""
    image = np.zeros((size, size), np.int32)
    row, col, (d_row, d_col) = 0, 0, (0, 1)
    image[0, 0] = 1
    while True:
        for _ in range(2):  # try to go straight, then turn right
            ahead = (row + 2 * d_row, col + 2 * d_col)
            if 0 <= ahead[0] < size and 0 <= ahead[1] < size and not image[ahead]:
                break
            d_row, d_col = d_col, -d_row
        else:
            return image
        image[row + d_row, col + d_col] = image[ahead] = 1
        row, col = ahead


def maze(height, width, seed=0):
    """A random perfect maze (a spanning tree of 1-pixel corridors), carved by depth-first search."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.int32)
    stack = [(0, 0)]
    image[0, 0] = 1
    while stack:
        row, col = stack[-1]
        steps = [(dr, dc) for dr, dc in ((0, 2), (2, 0), (0, -2), (-2, 0))
                 if 0 <= row + dr < height and 0 <= col + dc < width and not image[row + dr, col + dc]]
        if not steps:
            stack.pop()
            continue
        dr, dc = steps[rng.integers(len(steps))]
        image[row + dr // 2, col + dc // 2] = image[row + dr, col + dc] = 1
        stack.append((row + dr, col + dc))
    return image


def checkerboard(height, width, values=(1, 0)):
    rows, cols = np.indices((height, width))
    return np.where((rows + cols) % 2 == 0, values[0], values[1]).astype(np.int32)


def test_generators_make_one_long_path():
    for image in (serpentine(9, 8), serpentine(9, 8, vertical=True), spiral(11), maze(9, 11)):
        assert reference_labels(image).max() == 1
    for image in (serpentine(9, 8), serpentine(9, 8, vertical=True), spiral(11)):
        padded = np.pad(image, 1)
        neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        degrees = neighbours[image > 0]  # a simple path: two ends, all other pixels of degree 2
        assert sorted(degrees)[:3] == [1, 1, 2] and degrees.max() == 2


def stripes(height, width):
    """Values 1, 2, 3 in touching vertical stripes, plus a block of 2 inside the 1s: no zeros."""
    image = np.repeat(np.arange(width) * 3 // width + 1, height).reshape(width, height).T.copy()
    image[1:3, 0:2] = 2
    return image.astype(np.int32)


ADVERSARIAL = {
    "serpentine": serpentine(32, 33),
    "serpentine_vertical": serpentine(31, 32, vertical=True),
    "spiral": spiral(33),
    "maze": maze(31, 45),
    "checkerboard": checkerboard(16, 17),
    "checkerboard_two_values": checkerboard(16, 17, values=(1, 2)),  # no zeros, all singletons
    "stripes": stripes(12, 9),
    "all_zero": np.zeros((5, 6), np.int32),
    "all_one": np.ones((5, 6), np.int32),
    "one_row": random_images(1, (1, 50), 0.6, 2, np.int32),
    "one_column": random_images(2, (50, 1), 0.6, 2, np.int32),
    "single_pixel": np.array([[7]], np.int32),
}

RANDOM_CASES = [  # (shape, fill, num_values, dtype)
    ((8, 24, 31), 0.45, 1, np.int32),
    ((8, 24, 31), 0.7, 1, bool),
    ((8, 24, 31), 0.3, 1, np.uint8),
    ((8, 24, 31), 0.6, 3, np.int64),
    ((8, 24, 31), 0.9, 4, np.float32),
    ((8, 24, 31), 1.0, 5, np.float64),
    ((8, 24, 31), 0.5, 2, np.int16),
    ((8, 24, 31), 0.5, 3, np.int8),
    ((8, 24, 31), 0.5, 2, np.uint16),
    ((8, 24, 31), 0.5, 3, np.float16),
    ((1, 40, 40), 0.55, 1, np.int32),  # batch of 1
    ((64, 16, 16), 0.5, 2, np.int32),  # batch of 64
    ((3, 7, 13), 0.5, 1, np.int32),
    ((4, 1, 50), 0.6, 2, np.int32),
    ((4, 50, 1), 0.6, 2, np.float32),
]


def random_case(index):
    shape, fill, num_values, dtype = RANDOM_CASES[index]
    return random_images(index, shape, fill, num_values, dtype)


def nan_images():
    """Float images with NaN pixels, some touching each other and equal non-zero neighbours."""
    images = random_images(5, (4, 12, 15), 0.8, 2, np.float32)
    images[random_images(6, images.shape, 0.15, 1, bool)] = np.nan
    images[0, :2, :3] = np.nan  # a block of NaNs: still six components
    return images


# ----------------------------------------------------------------------------- values vs scipy


def assert_labels(images, **kwargs):
    labels = connected_components(images, **kwargs)
    assert labels.dtype == tf.int32
    np.testing.assert_array_equal(labels.numpy(), reference_labels(images))


@pytest.mark.parametrize("index", range(len(RANDOM_CASES)), ids=lambda i: "{}-{}-fill{}-values{}".format(
    "x".join(map(str, RANDOM_CASES[i][0])), np.dtype(RANDOM_CASES[i][3]).name, *RANDOM_CASES[i][1:3]))
def test_random_images_match_scipy(index):
    assert_labels(random_case(index))


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_adversarial_images_match_scipy(case):
    image = ADVERSARIAL[case]
    assert_labels(image)
    assert_labels(np.stack([image, image[::-1], np.zeros_like(image), image[:, ::-1]]))


def test_adversarial_batch_of_64_numbered_across_the_batch():
    images = np.stack([np.roll(checkerboard(10, 10), i, axis=1) * (i % 5) for i in range(64)])
    labels = connected_components(images).numpy()
    np.testing.assert_array_equal(labels, reference_labels(images))
    assert labels.max() == 51 * 50  # 50 singletons in each of the 51 non-zero images


def test_nan_pixels_are_singletons():
    images = nan_images()
    labels = connected_components(images).numpy()
    np.testing.assert_array_equal(labels, reference_labels(images))
    assert len(np.unique(labels[0, :2, :3])) == 6


def test_bfloat16_images():
    images = random_images(4, (3, 20, 21), 0.6, 3, np.int32)
    labels = connected_components(tf.cast(images, tf.bfloat16))
    np.testing.assert_array_equal(labels.numpy(), reference_labels(images))


def test_touching_different_values_stay_separate():
    image = np.array([[1, 2, 2], [1, 1, 2], [3, 3, 3]], np.int32)
    np.testing.assert_array_equal(connected_components(image), [[1, 2, 2], [1, 1, 2], [3, 3, 3]])


@pytest.mark.parametrize("shape", [(0, 5, 6), (3, 0, 6), (3, 5, 0), (0, 0), (4, 0)])
def test_empty_images(shape):
    labels = connected_components(np.zeros(shape, np.float32))
    assert labels.dtype == tf.int32 and tuple(labels.shape) == shape


def test_rank_2_equals_rank_3_with_one_image():
    image = random_images(3, (20, 30), 0.5, 2, np.int32)
    rank2 = connected_components(image).numpy()
    np.testing.assert_array_equal(rank2, connected_components(image[None]).numpy()[0])
    np.testing.assert_array_equal(rank2, reference_labels(image))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4, 5)])
def test_wrong_rank_raises(shape):
    with pytest.raises(ValueError, match=rf"rank 2 \[H, W\] or rank 3 \[N, H, W\]; got rank {len(shape)}"):
        connected_components(np.ones(shape, np.int32))


def test_unsupported_dtype_raises():
    with pytest.raises(ValueError, match="integer, floating-point or bool dtype; got string"):
        connected_components(tf.constant([["a", "b"]]))


def test_unknown_implementation_raises():
    with pytest.raises(ValueError, match=r"implementation must be one of \('native', 'tfa', 'auto'\); got 'scipy'"):
        connected_components(np.ones((2, 2)), implementation="scipy")


def test_jit_compile_raises_instead_of_hanging():
    outer = tf.function(lambda x: connected_components(x) + 0, jit_compile=True)
    with pytest.raises(NotImplementedError, match=r"cannot be compiled with XLA \(jit_compile=True\)"):
        outer(tf.ones([2, 3, 3], tf.int32))


def test_wrong_rank_at_run_time_raises():
    labels = tf.function(connected_components, input_signature=[tf.TensorSpec(None, tf.int32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="rank 2"):
        labels(tf.ones([2, 3, 4, 5], tf.int32))


# ----------------------------------------------------------------------------- graph mode and export


def test_tf_function_with_unknown_shapes():
    images = random_case(0)  # int32
    batch = tf.function(connected_components, input_signature=[tf.TensorSpec([None, None, None], tf.int32)])
    single = tf.function(connected_components, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    any_rank = tf.function(connected_components, input_signature=[tf.TensorSpec(None, tf.int32)])
    cases = [(batch, images), (batch, images[:, :5, :7]), (single, images[1]),
             (any_rank, images), (any_rank, images[2])]
    for fn, x in cases:
        np.testing.assert_array_equal(fn(x).numpy(), reference_labels(x))
    assert batch.get_concrete_function().structured_outputs.shape.as_list() == [None, None, None]


def test_name_scopes_the_ops():
    graph = tf.function(lambda x: connected_components(x, name="my_labels")).get_concrete_function(
        tf.TensorSpec([None, None, None], tf.int32)).graph
    assert any(op.name.startswith("my_labels/") for op in graph.get_operations())


def test_import_loads_no_tfa_and_on_keras_2_no_keras_beyond_tensorflow():
    # tfa must be imported lazily (its import warns, and fails on TF >= 2.16). On the TF 2.15 stack (Keras 2)
    # `import tfobj` loads nothing of Keras beyond what `import tensorflow` loads; on Keras 3 it imports the
    # models, to register them with Keras (tfobj/__init__.py), so only tfa is checked there.
    code = (
        "import sys, tensorflow, keras\n"
        "before = set(sys.modules)\n"
        "import tfobj.ops.connected_components\n"
        "new = set(sys.modules) - before\n"
        "watched = ('tensorflow_addons',) if int(keras.__version__.split('.')[0]) >= 3 else "
        "('keras', 'tf_keras', 'tensorflow_addons')\n"
        "print(sorted(m for m in new if m.split('.')[0] in watched))"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_saved_model_round_trip(tmp_path):
    class Labeller(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int32)])
        def __call__(self, images):
            return connected_components(images)

    tf.saved_model.save(Labeller(), str(tmp_path))
    restored = tf.saved_model.load(str(tmp_path))
    for images in (random_case(0), np.stack([ADVERSARIAL["spiral"]] * 2), np.zeros((0, 4, 4), np.int32)):
        np.testing.assert_array_equal(restored(tf.constant(images)).numpy(), reference_labels(images))


# ----------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("case", ["serpentine", "serpentine_vertical", "spiral", "maze"])
def test_long_paths_need_few_rounds(case):
    size = 128
    image = {"serpentine": serpentine(size, size), "serpentine_vertical": serpentine(size, size, vertical=True),
             "spiral": spiral(size), "maze": maze(size, size)}[case]
    labels, rounds, jump_steps = _label_any_rank(tf.constant(image))
    np.testing.assert_array_equal(labels.numpy(), reference_labels(image))
    # Min-label propagation needs one step per pixel on the path from the first pixel to the
    # farthest one: over 8000 steps for the snakes and the spiral, over 1500 for the maze.
    # A root survives a hooking round only if it is smaller than all the roots it touches; on a
    # path those survivors are pairwise non-adjacent, so each round at least halves the roots:
    # at most log2(pixels) = 14 rounds. Pointer jumping halves tree depth per step, so a round
    # takes at most log2(pixels) + 2 steps; measured totals are 15 (snakes, spiral) and 26 (maze),
    # so 3 * log2(pixels) = 42 leaves room while catching any drift towards path-length growth.
    log_pixels = math.log2(image.size)
    assert int(rounds) <= log_pixels
    assert int(jump_steps) <= 3 * log_pixels


# ----------------------------------------------------------------------------- implementations


def test_auto_gives_the_reference_labels():
    images = random_case(3)
    np.testing.assert_array_equal(connected_components(images, implementation="auto").numpy(), reference_labels(images))


def test_tfa_implementation_without_tfa_raises():
    if tfa_available():
        pytest.skip("tensorflow-addons is importable here")
    with pytest.raises(ValueError, match=r"tfa needs TF <= 2\.15"):
        connected_components(np.ones((2, 2)), implementation="tfa")


# ----------------------------------------------------------------------------- parity with tfa (TF 2.15 leg)

PARITY_CASES = {
    **{f"random{i}": random_case(i) for i in range(len(RANDOM_CASES))},
    **{name: np.stack([image, image[::-1]]) for name, image in ADVERSARIAL.items()},
    "nan": nan_images(),
    "bool_rank2": random_images(7, (33, 17), 0.5, 1, bool),
    "batch64_float": random_images(8, (64, 12, 9), 0.5, 3, np.float32),
    "empty_batch": np.zeros((0, 4, 5), np.int32),
}


@pytest.mark.tfa
@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_native_equals_tfa_bit_for_bit(case):
    import tensorflow_addons as tfa

    images = PARITY_CASES[case]
    expected = tfa.image.connected_components(images)
    native = connected_components(images, implementation="native")
    assert native.dtype == expected.dtype == tf.int32
    assert np.array_equal(native.numpy(), expected.numpy())
    np.testing.assert_array_equal(native.numpy(), reference_labels(images))


@pytest.mark.tfa
@pytest.mark.parametrize("implementation", ["tfa", "auto"])
def test_tfa_and_auto_route_to_tfa(implementation, monkeypatch):
    import tensorflow_addons as tfa

    assert tfa_available()
    calls = []
    original = tfa.image.connected_components

    def spy(images, *args, **kwargs):
        calls.append(images.shape)
        return original(images, *args, **kwargs)

    monkeypatch.setattr(tfa.image, "connected_components", spy)
    images = random_case(2)
    labels = connected_components(images, implementation=implementation)
    assert calls == [images.shape]
    np.testing.assert_array_equal(labels.numpy(), reference_labels(images))
