"""Tests of tfobj.metrics.keypoint_detection (TUSK's MNIST-Hard metrics) against hand-worked values, a plain-Python
transcription of the original's greedy, brute-force maximum matchings, and plain-Python / brute-force / scipy
prototype mappings."""
import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from tfobj.metrics.keypoint_detection import (
    DETECTION_BOX_SIZE, classification_accuracy, detection_accuracy, match_keypoints)

# Square GT boxes of side 20 (radius 10) on a row; predicted boxes have side 20 (the default).
# Shifting a 20-box by d pixels along one axis against a 20-box: IoU = 20 (20 - d) / (800 - 20 (20 - d))
# = (20 - d) / (20 + d): d = 6 -> 14/26 = 0.538 (> 0.5), d = 7 -> 13/27 = 0.481 (< 0.5).


def one_image(points):
    return np.asarray(points, dtype=np.float64)[None]  # [1, K, 2]


# --------------------------------------------------------------------------- detection: hand-worked


def test_default_box_size_is_tusk_s_20_pixels():
    assert DETECTION_BOX_SIZE == 20.0


def test_perfect_predictions_give_one_in_any_order():
    true = one_image([[20.5, 20.5], [40.0, 60.0], [70.0, 10.0]])
    radii = np.full((1, 3), 10.0)
    assert detection_accuracy(true, true, radii) == 1.0
    np.testing.assert_array_equal(match_keypoints(true[:, ::-1], true, radii), [[2, 1, 0]])


def test_gt_box_side_is_twice_the_radius():
    # A centred 20-box vs a GT box of side b = 2r: IoU = min(b, 20)^2 / max(b, 20)^2.
    # r = 7.5 (b = 15): 225/400 = 0.5625 -> detected; r = 7 (b = 14): 196/400 = 0.49 -> not.
    # r = 14 (b = 28): 400/784 = 0.510 -> detected; r = 14.5 (b = 29): 400/841 = 0.476 -> not.
    centre = one_image([[40.0, 40.0]])
    for radius, expected in [(7.5, 1.0), (7.0, 0.0), (14.0, 1.0), (14.5, 0.0), (10.0, 1.0)]:
        assert detection_accuracy(centre, centre, [[radius]]) == expected, radius


def test_shift_crosses_the_iou_threshold():
    true, radii = one_image([[40.0, 40.0]]), [[10.0]]
    assert detection_accuracy(one_image([[40.0, 46.0]]), true, radii) == 1.0  # IoU 14/26
    assert detection_accuracy(one_image([[40.0, 47.0]]), true, radii) == 0.0  # IoU 13/27
    assert detection_accuracy(one_image([[34.0, 40.0]]), true, radii) == 1.0  # rows alike
    assert detection_accuracy(one_image([[33.0, 40.0]]), true, radii) == 0.0
    # Diagonal shift (3, 3): intersection 17 * 17 = 289, union 800 - 289 = 511, IoU 0.566 -> detected;
    # (4, 4): 256 / 544 = 0.471 -> not.
    assert detection_accuracy(one_image([[43.0, 43.0]]), true, radii) == 1.0
    assert detection_accuracy(one_image([[44.0, 44.0]]), true, radii) == 0.0


def test_threshold_is_strict():
    # Shift 5: IoU = 15 * 20 / (800 - 300) = 300/500, exactly the double nearest 0.6.
    pred, true, radii = one_image([[40.0, 45.0]]), one_image([[40.0, 40.0]]), [[10.0]]
    assert detection_accuracy(pred, true, radii, iou_threshold=0.6) == 0.0
    assert detection_accuracy(pred, true, radii, iou_threshold=0.59) == 1.0


def test_box_size_is_used():
    # A 10-box centred on a radius-10 GT: IoU 100/400 = 0.25 -> not detected at 0.5, detected at 0.2.
    true, radii = one_image([[40.0, 40.0]]), [[10.0]]
    assert detection_accuracy(true, true, radii, box_size=10) == 0.0
    assert detection_accuracy(true, true, radii, box_size=10, iou_threshold=0.2) == 1.0


def test_one_prediction_between_two_gts_is_used_once():
    # GTs A (col 36) and B (col 44); prediction P (col 40) has IoU 16/24 = 2/3 with both; Q is far away.
    # A (first) takes P; B's only candidate above threshold is P, which is used up -> 1 of 2 detected.
    true = one_image([[40.0, 36.0], [40.0, 44.0]])
    radii = np.full((1, 2), 10.0)
    pred = one_image([[40.0, 40.0], [5.0, 5.0]])
    np.testing.assert_array_equal(match_keypoints(pred, true, radii), [[0, -1]])
    assert detection_accuracy(pred, true, radii) == 0.5


def test_greedy_follows_the_gt_order_like_the_original():
    # A (col 34), B (col 40); P1 (col 38): IoU 16/24 with A, 18/22 with B; P2 (col 45): IoU 15/25 with B,
    # 9/31 with A. Order A, B: A takes P1 (its best), B takes P2 -> 2 detected. Order B, A: B takes P1 (its
    # best), A's best remaining is P2 at 9/31 -> 1 detected, although a 2-matching exists.
    pred = one_image([[40.0, 38.0], [40.0, 45.0]])
    radii = np.full((1, 2), 10.0)
    np.testing.assert_array_equal(match_keypoints(pred, one_image([[40.0, 34.0], [40.0, 40.0]]), radii), [[0, 1]])
    np.testing.assert_array_equal(match_keypoints(pred, one_image([[40.0, 40.0], [40.0, 34.0]]), radii), [[0, -1]])


def test_ties_take_the_lowest_prediction_index():
    true = one_image([[40.0, 40.0], [40.0, 40.0]])
    pred = one_image([[40.0, 40.0], [40.0, 40.0]])
    np.testing.assert_array_equal(match_keypoints(pred, true, np.full((1, 2), 10.0)), [[0, 1]])


def test_a_small_gt_inside_several_prediction_boxes_is_an_exact_tie():
    # A radius-5 GT lies inside the 20-boxes of both predictions: IoU exactly 100/400 with each, and the tie goes
    # to the lower index (np.argmax). Corner coordinates would not tie here: (54.6 + 10) - (54.6 - 10) rounds to
    # 20 - 2^-47, a smaller box area that makes prediction 1's IoU one ulp larger than prediction 0's.
    true = one_image([[58.3, 58.7], [58.3, 58.7]])
    pred = one_image([[58.3, 58.7], [54.6, 58.7]])
    np.testing.assert_array_equal(match_keypoints(pred, true, np.full((1, 2), 5.0), iou_threshold=0.2), [[0, 1]])


def test_lists_padding_and_empty_predictions():
    # Image 0: 2 GTs, one detected; image 1: no predictions; image 2: no GT.
    preds = [np.array([[40.0, 40.0]]), np.zeros((0, 2)), np.array([[10.0, 10.0]])]
    trues = [np.array([[40.0, 40.0], [10.0, 70.0]]), np.array([[20.0, 20.0]]), np.zeros((0, 2))]
    radii = [np.array([10.0, 10.0]), np.array([10.0]), np.zeros(0)]
    matches = match_keypoints(preds, trues, radii)
    assert isinstance(matches, list)
    for got, want in zip(matches, [[0, -1], [-1], []]):
        np.testing.assert_array_equal(got, want)
    assert detection_accuracy(preds, trues, radii) == 1 / 3
    # The same GTs padded to [3, 2] with num_true.
    padded_true = np.array([[[40.0, 40.0], [10.0, 70.0]], [[20.0, 20.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    padded_radii = np.array([[10.0, 10.0], [10.0, 0.0], [0.0, 0.0]])  # padding may hold anything
    matches = match_keypoints(preds, padded_true, padded_radii, num_true=[2, 1, 0])
    np.testing.assert_array_equal(matches, [[0, -1], [-1, -1], [-1, -1]])
    assert detection_accuracy(preds, padded_true, padded_radii, num_true=[2, 1, 0]) == 1 / 3
    assert detection_accuracy([np.zeros((0, 2))], [np.zeros((0, 2))], [np.zeros(0)]) == 1.0


def test_tensors_plug_in():
    import tensorflow as tf

    true = np.array([[[20.5, 20.5], [60.5, 60.5]]])
    matches = match_keypoints(tf.constant(true[:, ::-1], tf.float32), tf.constant(true), tf.fill([1, 2], 10.0))
    np.testing.assert_array_equal(matches, [[1, 0]])


# --------------------------------------------------------------------------- detection: references


def reference_matches(preds, trues, radii, box_size=20.0, threshold=0.5):
    """Plain-Python transcription of TUSK's calc_acc loop for one image, in exact rational arithmetic
    (corner coordinates, as the original), so that geometric ties are exact and argmax takes the first."""
    def iou(p, t, r):
        h, r = Fraction(box_size) / 2, Fraction(r)
        inter = Fraction(1)
        for axis in range(2):
            pa, ta = Fraction(p[axis]), Fraction(t[axis])
            inter *= max(min(pa + h, ta + r) - max(pa - h, ta - r), Fraction(0))
        return inter / ((2 * h) ** 2 + (2 * r) ** 2 - inter)

    table = [[iou(p, t, r) for t, r in zip(trues, radii)] for p in preds]
    result = []
    for g in range(len(trues)):
        column = [row[g] for row in table]
        if not column:
            result.append(-1)
            continue
        best = max(range(len(column)), key=lambda p: (column[p], -p))  # first index of the maximum
        if column[best] > Fraction(threshold):
            result.append(best)
            table[best] = [Fraction(0)] * len(trues)
        else:
            result.append(-1)
    return result


def test_iou_equals_the_corner_form_of_ops_boxes():
    from tfobj.metrics.keypoint_detection import _square_iou
    from tfobj.ops.boxes import iou_matrix

    rng = np.random.default_rng(3)
    preds, trues, radii = rng.uniform(0, 80, (30, 2)), rng.uniform(0, 80, (40, 2)), rng.uniform(3, 20, 40)
    boxes_a = np.concatenate([preds - 10, preds + 10], axis=1)
    boxes_b = np.concatenate([trues - radii[:, None], trues + radii[:, None]], axis=1)
    expected = iou_matrix(boxes_a, boxes_b)
    assert (expected > 0).mean() > 0.05  # overlapping pairs occur
    np.testing.assert_allclose(_square_iou(preds, 10.0, trues, radii), expected, rtol=1e-12, atol=1e-12)


def maximum_matching(preds, trues, radii, box_size=20.0, threshold=0.5):
    """Brute force: the largest number of GTs that distinct predictions with IoU > threshold can detect."""
    pred_boxes = np.concatenate([preds - box_size / 2, preds + box_size / 2], axis=1)
    true_boxes = np.concatenate([trues - radii[:, None], trues + radii[:, None]], axis=1)
    ok = []
    for p in pred_boxes:
        row = []
        for t in true_boxes:
            inter = np.prod(np.clip(np.minimum(p[2:], t[2:]) - np.maximum(p[:2], t[:2]), 0, None))
            row.append(inter / (np.prod(p[2:] - p[:2]) + np.prod(t[2:] - t[:2]) - inter) > threshold)
        ok.append(row)
    best = 0
    k, g = len(preds), len(trues)
    for size in range(min(k, g), 0, -1):
        for gts in itertools.combinations(range(g), size):
            for ps in itertools.permutations(range(k), size):
                if all(ok[p][t] for p, t in zip(ps, gts)):
                    return size
    return best


def random_scene(rng, max_pred=5, max_true=5):
    """Clustered keypoints so that predictions compete for GTs and sit near the IoU threshold."""
    num_pred, num_true = rng.integers(0, max_pred + 1), rng.integers(0, max_true + 1)
    centre = rng.uniform(20, 60, size=2)
    trues = centre + rng.normal(0, 8, size=(num_true, 2))
    radii = rng.uniform(6, 14, size=num_true)
    preds = centre + rng.normal(0, 8, size=(num_pred, 2))
    return preds, trues, radii


def test_greedy_matches_the_plain_python_transcription_on_random_scenes():
    rng = np.random.default_rng(0)
    scenes = [random_scene(rng) for _ in range(300)]
    preds, trues, radii = (list(x) for x in zip(*scenes))
    for threshold in (0.3, 0.5):
        got = match_keypoints(preds, trues, radii, iou_threshold=threshold)
        detected = total = 0
        for g, p, t, r in zip(got, preds, trues, radii):
            want = reference_matches(p.tolist(), t.tolist(), r.tolist(), threshold=threshold)
            np.testing.assert_array_equal(g, want)
            detected += sum(w >= 0 for w in want)
            total += len(want)
        assert 0 < detected < total  # both outcomes occur: the comparison is not vacuous
        assert detection_accuracy(preds, trues, radii, iou_threshold=threshold) == pytest.approx(detected / total)


def test_greedy_is_maximal_so_between_half_and_all_of_the_maximum_matching():
    # A GT fails only when no remaining prediction exceeds the threshold, so the greedy matching is maximal:
    # at least half of a maximum matching (brute force), never more than it. Some scenes must fall short.
    rng = np.random.default_rng(1)
    short = 0
    for _ in range(300):
        preds, trues, radii = random_scene(rng, max_pred=4, max_true=4)
        greedy = int(np.sum(match_keypoints([preds], [trues], [radii])[0] >= 0))
        best = maximum_matching(preds, trues, radii)
        assert best / 2 <= greedy <= best
        short += greedy < best
    assert short > 0


# --------------------------------------------------------------------------- classification


def detections(pairs, num_missed):
    """One image per (prototype, class) pair, each detected by its only prediction; plus missed GTs."""
    prototype_ids = [np.array([p]) for p, _ in pairs] + [np.zeros(0, int)] * num_missed
    labels = [np.array([c]) for _, c in pairs] + [np.array([0])] * num_missed
    matches = [np.array([0])] * len(pairs) + [np.array([-1])] * num_missed
    return prototype_ids, labels, matches


def test_majority_versus_hungarian_by_hand():
    # Confusion (prototype x class) [[5, 1, 0], [4, 0, 0], [0, 2, 3]]: 15 correct detections, plus 5 missed GTs.
    # Majority (many-to-one): 5 + 4 + 3 = 12 -> cls_acc 12/15, acc 12/20; prototypes 0 and 1 both -> class 0.
    # Hungarian (one-to-one): best pairing sums to 8 (e.g. 0->0, 1->1, 2->2 = 5 + 0 + 3, or 0->1, 1->0, 2->2
    # = 1 + 4 + 3) -> cls_acc 8/15, acc 8/20.
    table = [[5, 1, 0], [4, 0, 0], [0, 2, 3]]
    pairs = [(p, c) for p in range(3) for c in range(3) for _ in range(table[p][c])]
    protos, labels, matches = detections(pairs, num_missed=5)
    majority = classification_accuracy(protos, labels, matches)
    np.testing.assert_array_equal(majority["confusion"], table)
    np.testing.assert_array_equal(majority["prototype_to_class"], [0, 0, 2])
    assert (majority["cls_acc"], majority["acc"], majority["det_acc"]) == (12 / 15, 12 / 20, 15 / 20)
    assert (majority["num_true"], majority["num_detected"], majority["num_classified"]) == (20, 15, 12)
    hungarian = classification_accuracy(protos, labels, matches, mapping="hungarian")
    assert (hungarian["cls_acc"], hungarian["acc"], hungarian["num_classified"]) == (8 / 15, 8 / 20, 8)
    mapped = hungarian["prototype_to_class"]
    assert sorted(mapped.tolist()) == [0, 1, 2] and sum(table[p][c] for p, c in enumerate(mapped)) == 8


def test_only_correct_detections_enter_and_matches_select_the_prediction():
    # Image with 3 predictions (prototypes 7, 3, 5) and 3 GTs (classes 1, 2, 2): GT 0 <- prediction 2,
    # GT 1 <- prediction 0, GT 2 missed. Confusion entries: (5, 1) and (7, 2); prototype 3 is unmatched.
    result = classification_accuracy([[7, 3, 5]], [[1, 2, 2]], [[2, 0, -1]], num_prototypes=10, num_classes=10)
    expected = np.zeros((10, 10), int)
    expected[5, 1] = expected[7, 2] = 1
    np.testing.assert_array_equal(result["confusion"], expected)
    assert (result["cls_acc"], result["acc"]) == (1.0, 2 / 3)
    mapped = [-1] * 10
    mapped[5], mapped[7] = 1, 2  # prototypes without a correct detection map to no class
    np.testing.assert_array_equal(result["prototype_to_class"], mapped)
    hungarian = classification_accuracy([[7, 3, 5]], [[1, 2, 2]], [[2, 0, -1]], mapping="hungarian",
                                        num_prototypes=10, num_classes=10)
    np.testing.assert_array_equal(hungarian["prototype_to_class"], mapped)


def test_hungarian_leaves_extra_prototypes_unpaired():
    # 3 prototypes, 1 class: majority maps all three to class 0 (all correct); Hungarian pairs one of them.
    protos, labels, matches = detections([(0, 0), (1, 0), (1, 0), (2, 0)], num_missed=0)
    assert classification_accuracy(protos, labels, matches)["cls_acc"] == 1.0
    hungarian = classification_accuracy(protos, labels, matches, mapping="hungarian")
    assert hungarian["cls_acc"] == 2 / 4
    np.testing.assert_array_equal(hungarian["prototype_to_class"], [-1, 0, -1])


def plain_confusion(protos, labels, matches):
    counts = {}
    for proto, label, match in zip(protos, labels, matches):
        for g, p in enumerate(match):
            if p >= 0:
                key = (int(proto[p]), int(label[g]))
                counts[key] = counts.get(key, 0) + 1
    return counts


def brute_force_one_to_one(counts, rows, cols):
    """Largest sum over injective pairings of the smaller side into the larger (all permutations)."""
    best = 0
    if rows <= cols:
        for chosen in itertools.permutations(range(cols), rows):
            best = max(best, sum(counts.get((r, c), 0) for r, c in enumerate(chosen)))
    else:
        for chosen in itertools.permutations(range(rows), cols):
            best = max(best, sum(counts.get((r, c), 0) for c, r in enumerate(chosen)))
    return best


def test_random_cases_against_plain_python_brute_force_and_scipy():
    rng = np.random.default_rng(2)
    majority_differs = False
    for _ in range(60):
        num_protos, num_classes = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        protos, labels, matches = [], [], []
        for _ in range(int(rng.integers(1, 6))):
            k, g = int(rng.integers(0, 6)), int(rng.integers(0, 6))
            protos.append(rng.integers(0, num_protos, size=k))
            labels.append(rng.integers(0, num_classes, size=g))
            match = np.full(g, -1)
            chosen = rng.permutation(k)[:min(k, g)]
            slots = rng.permutation(g)[:len(chosen)]
            match[slots] = chosen
            match[rng.random(g) < 0.3] = -1  # some GTs missed
            matches.append(match)
        counts = plain_confusion(protos, labels, matches)
        num_gt = sum(len(label) for label in labels)
        num_detected = sum(counts.values())
        majority = classification_accuracy(protos, labels, matches, num_prototypes=num_protos,
                                           num_classes=num_classes)
        hungarian = classification_accuracy(protos, labels, matches, mapping="hungarian",
                                            num_prototypes=num_protos, num_classes=num_classes)
        dense = np.zeros((num_protos, num_classes), int)
        for (p, c), n in counts.items():
            dense[p, c] = n
        np.testing.assert_array_equal(majority["confusion"], dense)
        want_majority = sum(max([counts.get((p, c), 0) for c in range(num_classes)]) for p in range(num_protos))
        want_hungarian = brute_force_one_to_one(counts, num_protos, num_classes)
        rows, cols = linear_sum_assignment(dense, maximize=True)
        assert want_hungarian == dense[rows, cols].sum()
        assert majority["num_classified"] == want_majority and hungarian["num_classified"] == want_hungarian
        assert majority["acc"] == pytest.approx(want_majority / num_gt if num_gt else 1.0)
        assert hungarian["cls_acc"] == pytest.approx(want_hungarian / num_detected if num_detected else 0.0)
        assert majority["num_detected"] == hungarian["num_detected"] == num_detected
        majority_differs |= want_majority != want_hungarian
    assert majority_differs


def test_end_to_end_with_match_keypoints_and_padded_labels():
    # Two images, 3 GT slots each, the second with 2 valid GTs; predictions sit on the GTs except one.
    true = np.array([[[20.0, 20.0], [20.0, 60.0], [60.0, 40.0]], [[30.0, 30.0], [60.0, 60.0], [0.0, 0.0]]])
    radii = np.array([[10.0, 10.0, 10.0], [10.0, 10.0, 0.0]])
    labels = np.array([[4, 4, 9], [9, 1, 0]])
    pred = np.array([[[60.0, 40.0], [20.0, 20.0], [75.0, 75.0]], [[30.0, 30.0], [60.0, 60.0], [5.0, 75.0]]])
    protos = np.array([[2, 0, 1], [2, 1, 0]])
    matches = match_keypoints(pred, true, radii, num_true=[3, 2])
    np.testing.assert_array_equal(matches, [[1, -1, 0], [0, 1, -1]])
    result = classification_accuracy(protos, labels, matches, num_true=[3, 2])
    # Detections: (0, 4), (2, 9), (2, 9), (1, 1) -> every prototype pure: 4 of 4 detections, 4 of 5 GTs.
    assert (result["cls_acc"], result["acc"], result["det_acc"]) == (1.0, 4 / 5, 4 / 5)
    assert detection_accuracy(pred, true, radii, num_true=[3, 2]) == 4 / 5


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, message", [
    (dict(true_radii=[[0.0]]), "true_radii\\[0\\] must be finite and > 0"),
    (dict(true_radii=[[10.0, 10.0]]), "true_radii\\[0\\] must have shape \\[1\\]"),
    (dict(pred_keypoints=[[[1.0, 2.0, 3.0]]]), "pred_keypoints\\[0\\] must have shape \\[num_keypoints, 2\\]"),
    (dict(pred_keypoints=[[[np.nan, 2.0]]]), "pred_keypoints\\[0\\] must be finite"),
    (dict(pred_keypoints=[]), "pred_keypoints must hold one entry per image \\(1 in true_keypoints\\); got 0"),
    (dict(box_size=0), "box_size=0 must be a finite number > 0"),
    (dict(iou_threshold=1.0), "iou_threshold=1.0 must be a number in \\[0, 1\\)"),
    (dict(iou_threshold=-0.1), "iou_threshold=-0.1 must be a number in \\[0, 1\\)"),
])
def test_detection_errors_name_the_argument(kwargs, message):
    args = dict(pred_keypoints=[[[40.0, 40.0]]], true_keypoints=[[[40.0, 40.0]]], true_radii=[[10.0]])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        detection_accuracy(**args)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mapping="greedy"), "mapping must be one of \\('majority', 'hungarian'\\); got 'greedy'"),
    (dict(matches=[[0, 0]]), "matches\\[0\\] uses a prediction twice"),
    (dict(matches=[[2, -1]]), "matches\\[0\\] must hold prediction indices in \\[0, 2\\) or -1"),
    (dict(matches=[[0]]), "matches\\[0\\] must hold one entry per GT \\(2"),
    (dict(matches=[[0, 1], [0]]), "matches must hold one entry per image \\(1 in true_labels\\); got 2"),
    (dict(prototype_ids=[[0, -1]]), "prototype_ids\\[0\\] must hold ids >= 0"),
    (dict(true_labels=[[0.5, 1]]), "true_labels\\[0\\] must hold integer ids"),
    (dict(num_prototypes=1), "num_prototypes=1 is too small: found prototype id 1"),
])
def test_classification_errors_name_the_argument(kwargs, message):
    args = dict(prototype_ids=[[0, 1]], true_labels=[[3, 4]], matches=[[1, 0]])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        classification_accuracy(**args)
