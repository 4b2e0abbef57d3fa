"""Tests of tfobj.metrics.mota against py-motmetrics and hand-made sequences with known answers."""
import math

import numpy as np
import pytest

from tfobj.metrics import clear_mot, clear_mot_many, unpad

mm = pytest.importorskip("motmetrics")

METRICS = ["mota", "motp", "num_switches", "num_misses", "num_false_positives", "num_matches", "num_objects"]
HEIGHT, WIDTH = 48.0, 80.0  # motmetrics gets pixel boxes of a non-square image


@pytest.fixture(autouse=True)
def _motmetrics_numpy2(monkeypatch):
    """motmetrics 1.4.0's `distances.iou_matrix` calls `np.asfarray`, removed in numpy 2.0."""
    if not hasattr(np, "asfarray"):
        monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False)


def _pixel_xywh(boxes):
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 1] * WIDTH, b[:, 0] * HEIGHT, (b[:, 3] - b[:, 1]) * WIDTH, (b[:, 2] - b[:, 0]) * HEIGHT], 1)


def _accumulator(video, max_iou=0.5):
    gt_ids, gt_boxes, pred_ids, pred_boxes = video
    acc = mm.MOTAccumulator(auto_id=True)
    for oids, oboxes, hids, hboxes in zip(gt_ids, gt_boxes, pred_ids, pred_boxes):
        dists = mm.distances.iou_matrix(_pixel_xywh(oboxes), _pixel_xywh(hboxes), max_iou=max_iou)
        acc.update(list(oids), list(hids), dists)
    return acc


def _motmetrics(video, max_iou=0.5):
    summary = mm.metrics.create().compute(_accumulator(video, max_iou), metrics=METRICS, return_dataframe=False)
    return {key: float(summary[key]) for key in METRICS}


def _motmetrics_overall(videos):
    accs = [_accumulator(v) for v in videos]
    frame = mm.metrics.create().compute_many(accs, metrics=METRICS, generate_overall=True)
    return {key: float(frame.loc["OVERALL", key]) for key in METRICS}


def _assert_same(ours, reference):
    assert set(ours) == set(METRICS)
    for key in METRICS[2:]:
        assert ours[key] == reference[key], key
        assert isinstance(ours[key], int)
    for key in ("mota", "motp"):
        if math.isnan(reference[key]):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(reference[key], abs=1e-9), key


# ---------------------------------------------------------------------------------------------
# Random sequences.
# ---------------------------------------------------------------------------------------------


def _random_video(rng, num_frames):
    """Objects drift, appear/disappear; the tracker jitters, misses, swaps ids and hallucinates."""
    num_objects = int(rng.integers(0, 6))
    gt_id_pool = rng.choice(1000, size=num_objects, replace=False)
    track_pool = rng.choice(np.arange(1000, 2000), num_objects, replace=False)
    track_of = {int(o): int(t) for o, t in zip(gt_id_pool, track_pool)}
    starts = rng.uniform(0, 0.7, size=(num_objects, 2))
    sizes = rng.uniform(0.1, 0.3, size=(num_objects, 2))
    velocity = rng.normal(0, 0.02, size=(num_objects, 2))
    alive = rng.random(num_objects) < 0.8
    next_fresh_id = 5000
    gt_ids, gt_boxes, pred_ids, pred_boxes = [], [], [], []
    for t in range(num_frames):
        alive ^= rng.random(num_objects) < 0.1  # appear / disappear
        corner = starts + t * velocity
        boxes = np.concatenate([corner, corner + sizes], axis=1)
        visible = np.nonzero(alive)[0]
        rng.shuffle(visible)
        oids = [int(gt_id_pool[i]) for i in visible]
        hids, hboxes = [], []
        for i, o in zip(visible, oids):
            if rng.random() < 0.85:
                jitter = rng.choice([0.005, 0.03, 0.08])
                hboxes.append(boxes[i] + rng.normal(0, jitter * (sizes[i, 0] + sizes[i, 1]), size=4))
                hids.append(track_of[o])
        if len(hids) >= 2 and rng.random() < 0.15:  # the tracker swaps two ids from now on
            a, b = rng.choice(len(hids), 2, replace=False)
            oa = [o for o in oids if track_of[o] == hids[a]][0]
            ob = [o for o in oids if track_of[o] == hids[b]][0]
            track_of[oa], track_of[ob] = track_of[ob], track_of[oa]
            hids[a], hids[b] = hids[b], hids[a]
        if oids and rng.random() < 0.1:  # the tracker re-labels one object
            o = oids[int(rng.integers(len(oids)))]
            track_of[o] = next_fresh_id
            next_fresh_id += 1
        for _ in range(int(rng.integers(0, 3)) if rng.random() < 0.5 else 0):  # false positives
            corner = rng.uniform(0, 0.8, size=2)
            hboxes.append(np.concatenate([corner, corner + rng.uniform(0.05, 0.2, size=2)]))
            hids.append(next_fresh_id)
            next_fresh_id += 1
        if rng.random() < 0.1:  # a frame where the tracker outputs nothing
            hids, hboxes = [], []
        order = rng.permutation(len(hids))
        gt_ids.append(np.asarray(oids, dtype=np.int64))
        gt_boxes.append(boxes[visible].reshape(-1, 4))
        pred_ids.append(np.asarray(hids, dtype=np.int64)[order])
        pred_boxes.append(np.asarray(hboxes).reshape(-1, 4)[order])
    return gt_ids, gt_boxes, pred_ids, pred_boxes


def test_matches_motmetrics_on_random_videos():
    rng = np.random.default_rng(0)
    totals = dict.fromkeys(METRICS[2:], 0)
    for case in range(40):
        video = _random_video(rng, int(rng.integers(1, 13)))
        reference = _motmetrics(video)
        _assert_same(clear_mot(*video), reference)
        for key in totals:
            totals[key] += reference[key]
    # The random videos exercise every kind of event.
    assert all(totals[key] > 10 for key in totals), totals


def test_matches_motmetrics_with_other_iou_threshold():
    rng = np.random.default_rng(1)
    for _ in range(10):
        video = _random_video(rng, 8)
        _assert_same(clear_mot(*video, iou_threshold=0.3), _motmetrics(video, max_iou=0.7))


def _video_with_detection(rng, num_frames):
    """A random video in which motmetrics finds at least one match or switch."""
    while True:
        video = _random_video(rng, num_frames)
        reference = _motmetrics(video)
        if reference["num_matches"] + reference["num_switches"] > 0:
            return video


def test_clear_mot_many_matches_motmetrics_overall_row():
    # Every video has a detection, else motmetrics' OVERALL MOTP is NaN (see the next test).
    rng = np.random.default_rng(2)
    for _ in range(6):
        videos = [_video_with_detection(rng, int(rng.integers(1, 10))) for _ in range(int(rng.integers(1, 5)))]
        _assert_same(clear_mot_many(videos), _motmetrics_overall(videos))


def test_clear_mot_many_motp_when_a_video_has_no_detection():
    # motmetrics' OVERALL MOTP is sum(motp_v * detections_v) / detections: NaN * 0 = NaN as soon as
    # one video has no detection. Ours pools the distances: the MOTP of the video with detections.
    rng = np.random.default_rng(3)
    video = _random_video(rng, 6)
    while clear_mot(*video)["num_matches"] == 0:
        video = _random_video(rng, 6)
    empty = ([np.array([7])], [[[0.0, 0.0, 0.5, 0.5]]], [np.array([], dtype=int)], [np.zeros((0, 4))])
    reference = _motmetrics_overall([video, empty])
    assert math.isnan(reference["motp"])
    ours = clear_mot_many([video, empty])
    assert ours["motp"] == pytest.approx(_motmetrics(video)["motp"], abs=1e-9)
    _assert_same({**ours, "motp": math.nan}, reference)


def test_clear_mot_many_accepts_mappings_and_sums_counts():
    rng = np.random.default_rng(4)
    videos = [_random_video(rng, 5) for _ in range(3)]
    as_dicts = [dict(zip(("gt_ids", "gt_boxes", "pred_ids", "pred_boxes"), v)) for v in videos]
    ours = clear_mot_many(as_dicts)
    assert ours == clear_mot_many(videos)
    singles = [clear_mot(*v) for v in videos]
    for key in METRICS[2:]:
        assert ours[key] == sum(s[key] for s in singles)


# ---------------------------------------------------------------------------------------------
# Hand-made sequences.
# ---------------------------------------------------------------------------------------------

A = [0.0, 0.0, 0.4, 0.4]
B = [0.6, 0.6, 1.0, 1.0]


def _video(frames):
    """frames: list of (gt dict id -> box, pred dict id -> box)."""
    gt_ids = [np.array(list(g), dtype=int) for g, _ in frames]
    gt_boxes = [np.array(list(g.values())).reshape(-1, 4) for g, _ in frames]
    pred_ids = [np.array(list(p), dtype=int) for _, p in frames]
    pred_boxes = [np.array(list(p.values())).reshape(-1, 4) for _, p in frames]
    return gt_ids, gt_boxes, pred_ids, pred_boxes


def test_perfect_track():
    video = _video([({1: A, 2: B}, {10: A, 11: B})] * 3)
    result = clear_mot(*video)
    assert result == {
        "mota": 1.0, "motp": 0.0, "num_switches": 0, "num_misses": 0,
        "num_false_positives": 0, "num_matches": 6, "num_objects": 6,
    }
    _assert_same(result, _motmetrics(video))


def test_one_id_change_is_one_switch():
    # GT 1 is tracked as 10 for two frames, then as 12: one switch (not a match) at frame 2.
    video = _video([({1: A}, {10: A}), ({1: A}, {10: A}), ({1: A}, {12: A}), ({1: A}, {12: A})])
    result = clear_mot(*video)
    assert (result["num_switches"], result["num_matches"], result["num_objects"]) == (1, 3, 4)
    assert result["mota"] == pytest.approx(1 - 1 / 4)
    _assert_same(result, _motmetrics(video))


def test_two_tracks_swapping_ids_are_two_switches():
    video = _video([({1: A, 2: B}, {10: A, 11: B}), ({1: A, 2: B}, {11: A, 10: B}), ({1: A, 2: B}, {11: A, 10: B})])
    result = clear_mot(*video)
    assert (result["num_switches"], result["num_matches"]) == (2, 4)
    assert result["mota"] == pytest.approx(1 - 2 / 6)
    _assert_same(result, _motmetrics(video))


def test_switch_is_remembered_across_frames_where_the_gt_is_missed():
    # GT 1 matched to 10, then missed, then matched to 12: a switch (last match was 10); then 10
    # comes back and is a switch again.
    video = _video([({1: A}, {10: A}), ({1: A}, {}), ({1: A}, {12: A}), ({1: A}, {10: A})])
    result = clear_mot(*video)
    assert (result["num_switches"], result["num_matches"], result["num_misses"]) == (2, 1, 1)
    assert result["mota"] == pytest.approx(1 - 3 / 4)
    _assert_same(result, _motmetrics(video))


def test_all_misses_give_zero_mota():
    video = _video([({1: A, 2: B}, {}), ({1: A}, {})])
    result = clear_mot(*video)
    assert result["mota"] == 0.0 and result["num_misses"] == 3 and result["num_matches"] == 0
    assert math.isnan(result["motp"])  # no matched pair
    _assert_same(result, _motmetrics(video))


def test_more_false_positives_than_objects_give_negative_mota():
    far1, far2 = [0.5, 0.0, 0.9, 0.3], [0.0, 0.6, 0.3, 1.0]
    video = _video([({1: A}, {10: A, 20: far1, 21: far2})] * 3)
    result = clear_mot(*video)
    assert (result["num_false_positives"], result["num_matches"]) == (6, 3)
    assert result["mota"] == pytest.approx(1 - 6 / 3)
    _assert_same(result, _motmetrics(video))


def test_previous_correspondence_wins_over_a_closer_hypothesis():
    # Frame 1: hypothesis 10 (IoU 0.6 with GT 1) is kept over the closer 11 (IoU 1): a match and an
    # FP, no switch. MOTP = (0 + 0.4) / 2.
    partial = [0.0, 0.0, 0.4, 0.24]  # IoU 0.24 / 0.4 = 0.6 with A
    video = _video([({1: A}, {10: A}), ({1: A}, {11: A, 10: partial})])
    result = clear_mot(*video)
    assert (result["num_matches"], result["num_switches"], result["num_false_positives"]) == (2, 0, 1)
    assert result["motp"] == pytest.approx(0.2)
    _assert_same(result, _motmetrics(video))


def test_assignment_maximises_the_number_of_matches_first():
    # Boxes span the full height; x intervals: a = [.15, .65], b = [.35, .85], x = [.225, .725],
    # y = [0, .5]. Distances (1 - IoU): a-x .261, b-x .4, a-y .462, b-y disallowed (.82).
    # Matching a-x alone costs less (.261) but a-y + b-x (.862) matches both: 2 matches, no miss.
    a, b, x, y = ([0.0, lo, 1.0, hi] for lo, hi in ((0.15, 0.65), (0.35, 0.85), (0.225, 0.725), (0.0, 0.5)))
    video = _video([({1: a, 2: b}, {10: x, 11: y})])
    result = clear_mot(*video)
    assert (result["num_matches"], result["num_misses"], result["num_false_positives"]) == (2, 0, 0)
    assert result["motp"] == pytest.approx((1 - 0.375 / 0.625 + 1 - 0.35 / 0.65) / 2)
    _assert_same(result, _motmetrics(video))


def test_iou_exactly_at_threshold_is_allowed():
    # (0, 0, .4, .2) vs A: IoU .08 / .16 = 0.5 exactly -> allowed (distance 0.5 <= 0.5).
    video = _video([({1: A}, {10: [0.0, 0.0, 0.4, 0.2]})])
    result = clear_mot(*video)
    assert (result["num_matches"], result["motp"]) == (1, 0.5)
    _assert_same(result, _motmetrics(video))


def test_empty_frames_and_no_objects():
    # No GT at all and no hypotheses: MOTA 0/0 -> NaN like motmetrics; with an FP: -inf.
    nothing = _video([({}, {}), ({}, {})])
    assert math.isnan(clear_mot(*nothing)["mota"])
    _assert_same(clear_mot(*nothing), _motmetrics(nothing))
    fp_only = _video([({}, {10: A}), ({}, {})])
    assert clear_mot(*fp_only)["mota"] == -math.inf
    assert _motmetrics(fp_only)["mota"] == -math.inf


def test_padded_tracks_via_unpad():
    ids = np.array([[1, 2, -1], [1, -1, -1]])
    boxes = np.array([[A, B, [np.nan] * 4], [A, [np.nan] * 4, [np.nan] * 4]])
    num = np.array([2, 1])
    result = clear_mot(unpad(ids, num), unpad(boxes, num), unpad(ids + 10, num), unpad(boxes, num))
    assert (result["mota"], result["num_matches"], result["num_objects"]) == (1.0, 3, 3)


# ---------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------

GOOD = ([np.array([1])], [np.array([A])], [np.array([10])], [np.array([A])])


@pytest.mark.parametrize(
    "video, kwargs, match",
    [
        (([np.array([1])] * 2, *GOOD[1:]), {}, r"gt_boxes must hold one entry per frame \(2 in gt_ids\); got 1"),
        ((GOOD[0], GOOD[1], [], GOOD[3]), {}, r"pred_ids must hold one entry per frame \(1 in gt_ids\); got 0"),
        (([np.array([1, 1])], [np.array([A, B])], *GOOD[2:]), {}, r"gt_ids\[0\] must not repeat an id.*; got \[1, 1\]"),
        ((GOOD[0], GOOD[1], [np.array([3, 3])], [np.array([A, B])]), {}, r"pred_ids\[0\] must not repeat an id"),
        (([np.array([1, 2])], [np.array([A])], GOOD[2], GOOD[3]), {}, r"gt_boxes\[0\] must have shape \[2, 4\]"),
        ((GOOD[0], GOOD[1], GOOD[2], [np.array([[0, 0, 1]])]), {}, r"pred_boxes\[0\] must have shape \[\.\.\., 4\]"),
        (([np.array([1.5])], GOOD[1], GOOD[2], GOOD[3]), {}, r"gt_ids\[0\] must hold integer ids; got dtype float64"),
        ((GOOD[0], [np.array([[np.nan, 0, 1, 1]])], GOOD[2], GOOD[3]), {}, r"gt_boxes\[0\] contains NaN"),
        (([], [], [], []), {}, r"gt_ids must hold at least one frame"),
        (GOOD, {"iou_threshold": 1.5}, r"iou_threshold must lie in \[0, 1\]"),
    ],
)
def test_invalid_inputs_raise(video, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clear_mot(*video, **kwargs)


def test_clear_mot_many_invalid_inputs_raise():
    with pytest.raises(ValueError, match=r"videos must hold at least one video"):
        clear_mot_many([])
    with pytest.raises(ValueError, match=r"videos\[1\]: gt_ids\[0\] must not repeat"):
        clear_mot_many([GOOD, ([np.array([1, 1])], [np.array([A, B])], GOOD[2], GOOD[3])])
    with pytest.raises(ValueError, match=r"videos\[0\] must have keys .* missing \['pred_boxes'\]"):
        clear_mot_many([{"gt_ids": GOOD[0], "gt_boxes": GOOD[1], "pred_ids": GOOD[2]}])
