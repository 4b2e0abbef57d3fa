"""Scattered MNIST / Shapes videos: motion at constant speed, bounces, track ids, per-frame boxes."""
import numpy as np
import pytest

from tfobj.data import (
    PALETTE, ScatteredMNISTVideoConfig, ScatteredShapesVideoConfig, as_dataset, scattered_mnist_videos,
    scattered_shapes_videos)
from tfobj.data.scattered import bounce_step, initial_velocities


def mnist_videos(mnist, num_videos=30, seed=0, **config):
    return scattered_mnist_videos(ScatteredMNISTVideoConfig(**config), "train", num_videos, seed=seed,
                                  cache_dir=None, digits=mnist)


def shapes_videos(num_videos=30, seed=0, **config):
    return scattered_shapes_videos(ScatteredShapesVideoConfig(**config), "train", num_videos, seed=seed,
                                   cache_dir=None)


def reference_step(position, velocity, limit):
    """Event-driven bounce (the original code's algorithm): move to the first wall hit, flip, repeat."""
    position, remaining = np.array(position, float), np.array(velocity, float)
    signs = np.ones(2)
    while True:
        times = [np.inf, np.inf]
        for axis in range(2):
            if remaining[axis] > 0:
                times[axis] = (limit[axis] - position[axis]) / remaining[axis]
            elif remaining[axis] < 0:
                times[axis] = position[axis] / -remaining[axis]
        axis = int(np.argmin(times))
        if times[axis] >= 1:
            return position + remaining, signs * velocity
        position = position + times[axis] * remaining
        remaining = (1 - times[axis]) * remaining
        remaining[axis] *= -1
        signs[axis] *= -1


def test_bounce_step_matches_event_driven_reference():
    rng = np.random.default_rng(0)
    integer_limits = rng.uniform(size=(500, 1)) < 0.5
    limits = np.where(integer_limits, rng.integers(1, 40, size=(500, 2)), rng.uniform(1, 40, size=(500, 2)))
    positions = rng.uniform(0, 1, size=(500, 2)) * limits
    velocities = rng.normal(size=(500, 2)) * rng.choice([2.0, 5.0, 30.0], size=(500, 1))
    new_positions, new_velocities = bounce_step(positions, velocities, limits)
    for p, v, limit, got_p, got_v in zip(positions, velocities, limits, new_positions, new_velocities):
        want_p, want_v = reference_step(p, v, limit)
        np.testing.assert_allclose(got_p, want_p, atol=1e-9)
        np.testing.assert_array_equal(got_v, want_v)


def test_bounce_step_hand_examples():
    positions, velocities = bounce_step(np.array([[33.0, 1.0]]), np.array([[2.0, -2.0]]), np.array([[34, 34]]))
    np.testing.assert_allclose(positions, [[33.0, 1.0]])  # 35 -> 34 - 1; -1 -> 1
    np.testing.assert_allclose(velocities, [[-2.0, 2.0]])
    positions, velocities = bounce_step(np.array([[1.0, 0.0]]), np.array([[7.0, 3.0]]), np.array([[3, 0]]))
    np.testing.assert_allclose(positions, [[2.0, 0.0]])  # 1 -> 3 -> 0 -> 2: two reflections; no room in x
    np.testing.assert_allclose(velocities, [[7.0, 3.0]])


def test_initial_directions_are_uniform_on_the_circle():
    velocities = initial_velocities(np.random.default_rng(0), 20000, 2.0)
    np.testing.assert_allclose(np.linalg.norm(velocities, axis=1), 2.0)
    angles = np.arctan2(velocities[:, 0], velocities[:, 1])
    histogram = np.histogram(angles, bins=8, range=(-np.pi, np.pi))[0] / 20000
    np.testing.assert_allclose(histogram, 1 / 8, atol=0.012)  # 5 binomial standard deviations (0.0023)


def test_layout_track_ids_and_determinism(mnist):
    data = mnist_videos(mnist)
    assert data["videos"].shape == (30, 8, 48, 48, 3) and data["videos"].dtype == np.float32
    assert data["boxes"].shape == (30, 8, 6, 4) and data["track_ids"].shape == (30, 8, 6)
    assert data["classes"].shape == (30, 6) and data["num_objects"].shape == (30,)
    assert 0.0 <= data["videos"].min() and data["videos"].max() == 1.0
    for ids, count in zip(data["track_ids"], data["num_objects"]):
        expected = np.where(np.arange(6) < count, np.arange(1, 7), 0)
        np.testing.assert_array_equal(ids, np.broadcast_to(expected, (8, 6)))  # same ids in every frame
    padding = data["track_ids"] == 0
    assert np.all(data["boxes"][padding] == 0)
    again = mnist_videos(mnist)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    assert not np.array_equal(data["videos"], mnist_videos(mnist, seed=1)["videos"])


def _check_motion(data, speed):
    limits = 48 - data["sizes"].astype(float)  # [N, K, 2]
    steps, full_speed = 0, 0
    for positions, limit, count in zip(data["positions"], limits, data["num_objects"]):
        positions, limit = positions[:, :count], limit[:count]
        assert positions.min() >= 0 and np.all(positions <= limit[None])  # always fully inside
        deltas = np.diff(positions, axis=0)
        lengths = np.linalg.norm(deltas, axis=-1)
        for t in range(deltas.shape[0]):
            for k in range(count):
                steps += 1
                if abs(lengths[t, k] - speed) < 1e-9:
                    full_speed += 1
                else:
                    _check_reflected(positions[t, k], positions[t + 1, k], limit[k], speed)
        no_bounce = np.abs(lengths - speed) < 1e-9
        both = no_bounce[:-1] & no_bounce[1:]
        np.testing.assert_allclose(deltas[:-1][both], deltas[1:][both], atol=1e-9)  # constant velocity
    assert full_speed / steps > 0.6  # most steps do not touch a wall


def _check_reflected(before, after, limit, speed):
    """A shortened step is a reflection: some unfolded displacement of length `speed` folds onto it."""
    candidates = []
    for axis in range(2):
        p, q, size = before[axis], after[axis], limit[axis]
        options = [q - p]
        if -q - p < -p:  # bounced off the low wall: q = -(p + d)
            options.append(-q - p)
        if 2 * size - q - p > size - p:  # bounced off the high wall: q = 2 * limit - (p + d)
            options.append(2 * size - q - p)
        candidates.append(options)
    lengths = [np.hypot(dy, dx) for dy in candidates[0] for dx in candidates[1]]
    assert min(abs(length - speed) for length in lengths) < 1e-9, (before, after, limit)


def test_mnist_motion_is_2_px_per_frame_with_bounces(mnist):
    data = mnist_videos(mnist, num_videos=200)
    _check_motion(data, 2.0)


def test_shapes_motion_is_5_px_per_frame_with_bounces():
    data = shapes_videos(num_videos=200)
    _check_motion(data, 5.0)


def test_first_frame_obeys_cumulative_overlap_rule(mnist):
    data = mnist_videos(mnist, num_videos=200, min_digits=6, max_digits=6)
    first = data["positions"][:, 0]
    np.testing.assert_array_equal(first, np.round(first))  # integer placement on frame 0
    for corners, sizes in zip(first.astype(int), data["sizes"]):
        ends = corners + sizes
        for i in range(1, 6):
            sides = np.clip(np.minimum(ends[:i], ends[i]) - np.maximum(corners[:i], corners[i]), 0, None)
            assert np.prod(sides, axis=1).sum() <= 98


def test_single_object_boxes_are_per_frame_inked_extent_at_floor_position(mnist):
    data = mnist_videos(mnist, num_videos=20, min_digits=1, max_digits=1)
    for video, boxes, positions in zip(data["videos"], data["boxes"][:, :, 0], data["positions"][:, :, 0]):
        for frame, box, position in zip(video, boxes, positions):
            rows, cols = np.nonzero(frame.max(axis=-1) > 0)
            np.testing.assert_allclose(box, [rows.min() / 48, cols.min() / 48, (rows.max() + 1) / 48,
                                             (cols.max() + 1) / 48], atol=1e-7)
            top, left = np.floor(position).astype(int)
            assert top <= rows.min() and rows.max() < top + 14 and left <= cols.min() and cols.max() < left + 14


def test_shape_videos_keep_colour_and_class_over_time():
    data = shapes_videos(num_videos=20, min_shapes=1, max_shapes=1)
    np.testing.assert_array_equal(data["classes"], data["shapes"] * 6 + data["colours"])
    for video, colour in zip(data["videos"], data["colours"][:, 0]):
        alpha = video.max(axis=-1)
        np.testing.assert_array_equal(video, alpha[..., None] * PALETTE[colour])
        assert np.all(alpha.reshape(8, -1).max(axis=1) == 1.0)  # visible, fully inked, in every frame


def test_video_dataset_elements():
    data = shapes_videos(num_videos=4)
    element = next(iter(as_dataset(data)))
    assert element["videos"].shape == (8, 48, 48, 3) and element["boxes"].shape == (8, 5, 4)
    assert element["track_ids"].shape == (8, 5) and element["classes"].shape == (5,)
    np.testing.assert_array_equal(element["videos"].numpy(), data["videos"][0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_frames=0), r"num_frames=0 must be an integer >= 1"),
    (dict(speed=-2.0), r"speed=-2.0 must be a finite number >= 0"),
    (dict(speed=float("inf")), r"speed=inf must be a finite number >= 0"),
])
def test_bad_motion_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScatteredMNISTVideoConfig(**kwargs)
