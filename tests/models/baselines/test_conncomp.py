"""ConnComp detection and tracking against scipy.ndimage and brute-force matching."""
import itertools

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tfobj.models.baselines.conncomp import ConnComp, ConnCompTracker, detect

RED, GREEN = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


def scipy_boxes(mask):
    """Reference: normalised boxes of 4-connected components, ordered by first pixel (raster)."""
    labels, _ = ndimage.label(mask)  # default structure = 4-connectivity; labels in raster order
    height, width = mask.shape
    return np.array(
        [[s[0].start / height, s[1].start / width, s[0].stop / height, s[1].stop / width]
         for s in ndimage.find_objects(labels)]
    ).reshape(-1, 4)


def test_boxes_match_scipy_on_random_images():
    rng = np.random.default_rng(0)
    grey = rng.random((16, 20, 24)) * (rng.random((16, 20, 24)) < 0.4)
    images = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    tau = 0.9  # L1 over 3 equal channels: foreground iff grey >= 0.3
    found = detect(ConnComp(threshold=tau), images, batch_size=5)
    for image, result in zip(images, found):
        expected = scipy_boxes(np.abs(image).sum(-1) >= tau)
        np.testing.assert_allclose(result["boxes"], expected, atol=1e-6)
        assert np.all(result["scores"] == 1.0)


def test_threshold_is_inclusive_l1_over_channels():
    image = np.zeros((1, 4, 4, 3), np.float32)
    image[0, 1, 1] = (0.25, 0.25, 0.0)  # L1 distance to black = 0.5
    assert ConnComp(threshold=0.5)(image)["num_objects"].numpy().tolist() == [1]
    assert ConnComp(threshold=0.5001)(image)["num_objects"].numpy().tolist() == [0]
    white = np.ones((1, 4, 4, 3), np.float32)
    assert ConnComp(threshold=0.5, background=(1, 1, 1))(white)["num_objects"].numpy().tolist() == [0]


def test_centroids_and_padding():
    images = np.zeros((3, 6, 8, 3), np.float32)
    images[0, 1:3, 2:5] = 1.0  # rows 1-2, cols 2-4
    images[2, 5, 7] = 1.0
    images[2, 0, 0] = 1.0
    out = {k: v.numpy() for k, v in ConnComp(threshold=0.5)(images).items()}
    assert out["num_objects"].tolist() == [1, 0, 2]
    assert out["boxes"].shape == (3, 2, 4)
    np.testing.assert_allclose(out["boxes"][0, 0], [1 / 6, 2 / 8, 3 / 6, 5 / 8])
    np.testing.assert_allclose(out["centroids"][0, 0], [2.0, 3.5])  # mean of pixel centres
    np.testing.assert_allclose(out["centroids"][2], [[0.5, 0.5], [5.5, 7.5]])  # raster order
    assert np.all(out["boxes"][1] == 0) and np.all(out["boxes"][0, 1] == 0)
    assert out["labels"].max() == 3


def test_palette_splits_touching_colours():
    image = np.zeros((1, 4, 6, 3), np.float32)
    image[0, 1:3, 0:3] = RED
    image[0, 1:3, 3:6] = np.array(GREEN) * 0.7  # darker green still maps to green
    merged = ConnComp(threshold=0.3)(image)
    split = ConnComp(threshold=0.3, palette=(RED, GREEN))(image)
    assert merged["num_objects"].numpy().tolist() == [1]
    assert split["num_objects"].numpy().tolist() == [2]
    assert split["colours"].numpy()[0].tolist() == [0, 1]


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match=r"images must have shape \[B, H, W, 3\] \(NHWC\); got shape \(4, 4, 3\)"):
        ConnComp()(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="must have 3 channels"):
        ConnComp()(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0; got -1"):
        ConnComp(threshold=-1)
    with pytest.raises(ValueError, match="implementation must be"):
        ConnComp(implementation="cuda")
    for call in (lambda x: detect(ConnComp(), x), ConnComp(), ConnComp().predict_objects):
        with pytest.raises(ValueError, match=r"images is an empty batch \(0 images\)"):
            call(np.zeros((0, 4, 4, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ConnComp images must be in \[0, 1\]"):
        ConnComp()(np.full((1, 4, 4, 3), 2.0, np.float32))


def test_nan_images_are_rejected():
    images = np.zeros((1, 4, 4, 3), np.float32)
    images[0, 2, 2, 1] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="ConnComp images contain NaN or Inf"):
        ConnComp()(images)


def test_get_config_round_trip():
    layer = ConnComp(threshold=0.3, palette=(RED, GREEN), cosine_threshold=0.5, implementation="native")
    clone = ConnComp.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.palette == (RED, GREEN) and clone.threshold == 0.3


def brute_force_matching(previous, current, max_distance):
    """Reference: enumerate every partial matching; maximise matches, then minimise total distance."""
    best, best_key = [], (0, 0.0)
    n, m = len(previous["centroids"]), len(current["centroids"])
    for k in range(min(n, m), 0, -1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                pairs = list(zip(rows, cols))
                if any(previous["colours"][r] != current["colours"][c] for r, c in pairs):
                    continue
                dist = [np.linalg.norm(previous["centroids"][r] - current["centroids"][c]) for r, c in pairs]
                if max_distance is not None and max(dist) > max_distance:
                    continue
                key = (k, -sum(dist))
                if key > best_key:
                    best, best_key = sorted(pairs), key
        if best:
            return best
    return best


@pytest.mark.parametrize("max_distance", [None, 8.0])
def test_hungarian_matching_equals_brute_force(max_distance):
    rng = np.random.default_rng(1)
    tracker = ConnCompTracker(ConnComp(), max_distance=max_distance)
    for _ in range(40):
        n, m = rng.integers(0, 5, size=2)
        previous = {"centroids": rng.random((n, 2)) * 20, "colours": rng.integers(0, 2, n)}
        current = {"centroids": rng.random((m, 2)) * 20, "colours": rng.integers(0, 2, m)}
        assert sorted(tracker.match(previous, current)) == brute_force_matching(previous, current, max_distance)


def square_video(positions, colours, size=24):
    """One video [1, T, size, size, 3] of 3x3 squares at given top-left positions per frame."""
    video = np.zeros((1, len(positions), size, size, 3), np.float32)
    for t, frame_positions in enumerate(positions):
        for (y, x), colour in zip(frame_positions, colours):
            video[0, t, y : y + 3, x : x + 3] = colour
    return video


def test_tracker_keeps_ids_and_uses_colour():
    # Two squares cross paths; a colour-blind tracker would swap them at frame 2, where the red
    # square is closer to the green one's previous position.
    positions = [[(2, 2), (2, 14)], [(2, 7), (2, 10)], [(2, 11), (2, 6)]]
    video = square_video(positions, [RED, GREEN])
    tracks = ConnCompTracker(ConnComp(threshold=0.5, palette=(RED, GREEN))).track(video)
    ids = [frame_ids.tolist() for frame_ids in tracks[0].ids]
    red_id, green_id = ids[0]
    assert red_id != green_id
    for t in range(3):
        order = np.argsort(tracks[0].boxes[t][:, 1])  # left to right
        left, right = np.array(ids[t])[order]
        assert (left, right) == ((red_id, green_id) if t < 2 else (green_id, red_id))


def test_tracker_gate_gives_new_ids():
    video = square_video([[(2, 2)], [(2, 18)]], [RED])
    assert [i.tolist() for i in ConnCompTracker(ConnComp()).track(video)[0].ids] == [[1], [1]]
    gated = ConnCompTracker(ConnComp(), max_distance=10.0).track(video)[0].ids
    assert [i.tolist() for i in gated] == [[1], [2]]


def test_tracker_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"videos must have shape \[N, T, H, W, C\]"):
        ConnCompTracker(ConnComp()).track(np.zeros((2, 8, 8, 3), np.float32))
