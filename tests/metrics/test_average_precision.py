"""Tests of tfobj.metrics.average_precision against hand-worked values, a literal loop
re-implementation of the description in the module doc, and pycocotools."""
import contextlib
import io
from fractions import Fraction

import numpy as np
import pytest

from tfobj.metrics import (
    DEFAULT_IOU_THRESHOLDS,
    average_precision,
    average_precision_per_threshold,
    unpad,
)

# Boxes (y_min, x_min, y_max, x_max), normalised.
A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]
C = [0.0, 0.5, 0.5, 1.0]
FAR = [0.5, 0.0, 1.0, 0.5]  # IoU 0 with A, B and C.


def _ap(preds, scores, gts, **kwargs):
    return average_precision(preds, scores, gts, **kwargs)


# ---------------------------------------------------------------------------------------------
# (a) Hand-worked examples.
# ---------------------------------------------------------------------------------------------


def test_hand_tp_fp_tp():
    # One image, GTs A and B. Sorted: A (TP, .9), FAR (FP, .8), B (TP, .7).
    # precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # Recall levels 0..0.5 (6 levels): max precision 1; levels 0.6..1 (5 levels): 2/3.
    # AP_t = (6 * 1 + 5 * 2/3) / 11 = 28/33 at every t < 1 (all IoUs are 1 or 0).
    preds, scores, gts = [[A, FAR, B]], [[0.9, 0.8, 0.7]], [[A, B]]
    assert _ap(preds, scores, gts) == pytest.approx(28 / 33, abs=1e-12)
    # The FP at .8 is followed by a TP of the same image, so aaai2019 drops nothing.
    assert _ap(preds, scores, gts, matching="aaai2019") == pytest.approx(28 / 33, abs=1e-12)


def test_hand_prediction_order_within_image_does_not_matter():
    # Same as above but predictions given in another order: sorting by score restores it.
    assert _ap([[B, A, FAR]], [[0.7, 0.9, 0.8]], [[A, B]]) == pytest.approx(28 / 33, abs=1e-12)


def test_hand_strict_iou_threshold():
    # pred (0, 0, .5, .25) vs GT A: intersection .125, union .25 -> IoU exactly 0.5.
    # TP iff IoU > t (strict): TP for t in .1...4 (AP 1), FP for t in .5...9 (AP 0). Mean 4/9.
    pred = [0.0, 0.0, 0.5, 0.25]
    per_t = average_precision_per_threshold([[pred]], [[1.0]], [[A]])
    assert list(per_t) == list(DEFAULT_IOU_THRESHOLDS)
    assert per_t == {0.1: 1.0, 0.2: 1.0, 0.3: 1.0, 0.4: 1.0, 0.5: 0.0, 0.6: 0.0, 0.7: 0.0, 0.8: 0.0, 0.9: 0.0}
    assert _ap([[pred]], [[1.0]], [[A]]) == pytest.approx(4 / 9, abs=1e-12)


def test_hand_recall_levels_are_exact():
    # 10 disjoint GTs, 7 perfect predictions: recall 0.1 ... 0.7 at precision 1 -> recall levels
    # 0, 0.1, ..., 0.7 are reached (8 of 11), AP = 8/11. A float comparison with np.linspace(0, 1, 11)
    # (whose entry 7 is 0.7000000000000001 > 7/10) would give 7/11.
    gts = [[[0.0, i / 10, 0.1, (i + 1) / 10] for i in range(10)]]
    preds = [gts[0][:7]]
    assert _ap(preds, [np.linspace(1, 0.5, 7)], gts) == pytest.approx(8 / 11, abs=1e-12)


def test_hand_score_ties_keep_image_order():
    # Image 0: GT A, prediction FAR (FP) at .5; image 1: GT B, prediction B (TP) at .5.
    # Stable order: FP then TP -> precision 0, 1/2; recall 0, 1/2 -> levels 0..0.5 get 1/2: AP 3/11.
    assert _ap([[FAR], [B]], [[0.5], [0.5]], [[A], [B]]) == pytest.approx(3 / 11, abs=1e-12)
    # Swapping the images: TP then FP -> precision 1, 1/2; recall 1/2, 1/2 -> AP 6/11.
    assert _ap([[B], [FAR]], [[0.5], [0.5]], [[B], [A]]) == pytest.approx(6 / 11, abs=1e-12)


def test_hand_matched_gt_cannot_be_reused():
    # Two predictions equal to A; GTs A and B. The second prediction's best unmatched GT is B
    # (IoU 0) -> FP. TP, FP: recall 1/2 at precision 1 -> AP 6/11, in both matching modes.
    for matching in ("corrected", "aaai2019"):
        assert _ap([[A, A]], [[0.9, 0.8]], [[A, B]], matching=matching) == pytest.approx(6 / 11, abs=1e-12)


def test_hand_best_unmatched_gt_is_taken():
    # One prediction overlapping both GTs: P = (0, .1, .5, .6) has IoU .2/.3 = 2/3 with A = (0,0,.5,.5)
    # and IoU .05/.45 = 1/9 with G2 = (0, .5, .5, 1). It must take A (highest IoU) even though G2 is
    # listed first; then Q = G2 exactly is a TP too -> AP 1. (Had P taken G2, Q's only unmatched GT
    # would be A at IoU 0: TP, FP -> 6/11 at t = 0.1.)
    g2 = [0.0, 0.5, 0.5, 1.0]
    p = [0.0, 0.1, 0.5, 0.6]
    per_t = average_precision_per_threshold([[p, g2]], [[0.9, 0.8]], [[g2, A]], iou_thresholds=[0.1, 0.5])
    assert per_t == {0.1: 1.0, 0.5: 1.0}
    # At t = 0.7 > 2/3, P is an FP but it does not consume A: Q is still a TP.
    # FP, TP: precision 0, 1/2; recall 0, 1/2 -> AP 6 * (1/2) / 11 = 3/11.
    assert average_precision_per_threshold([[p, g2]], [[0.9, 0.8]], [[g2, A]], iou_thresholds=[0.7]) == {
        0.7: pytest.approx(3 / 11, abs=1e-12)
    }


def test_hand_aaai2019_drops_predictions_after_last_gt_matched():
    # Image 0: GT A; predictions A (.9, TP) and FAR (.8, FP). Image 1: GT B; prediction B (.7, TP).
    # corrected: TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP 28/33 (as above).
    # aaai2019: image 0's FP comes after its only GT was matched -> dropped: TP, TP -> AP 1.
    preds, scores, gts = [[A, FAR], [B]], [[0.9, 0.8], [0.7]], [[A], [B]]
    assert _ap(preds, scores, gts) == pytest.approx(28 / 33, abs=1e-12)
    assert _ap(preds, scores, gts, matching="aaai2019") == 1.0


def test_hand_aaai2019_keeps_predictions_of_images_without_gt():
    # Image 0: GT A, prediction A (.8, TP). Image 1: no GT, prediction FAR (.9): an FP in both modes
    # (the original only stopped an image after a match, so GT-less images keep all predictions).
    # FP (.9), TP (.8): precision 0, 1/2 at recall 0, 1 -> every recall level gets 1/2: AP 1/2.
    for matching in ("corrected", "aaai2019"):
        assert _ap([[A], [FAR]], [[0.8], [0.9]], [[A], []], matching=matching) == pytest.approx(0.5, abs=1e-12)


def test_hand_batch_size_weighted_average():
    # Image 0: GT A, prediction A (.9, TP). Image 1: GT B, prediction FAR (.8, FP).
    # Image 2: GT C, prediction C (.7, TP).
    # Whole set (3 GTs): TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/3, 1/3, 2/3. Levels 0..0.3
    # (4 levels) get 1, levels 0.4..0.6 (3 levels) get 2/3, levels 0.7..1 get 0: (4 + 2) / 11 = 6/11.
    # batch_size=2: batch {0, 1}: TP, FP with 2 GTs -> recall 1/2 at precision 1 -> 6/11;
    # batch {2}: AP 1. Weighted by batch size: (2 * 6/11 + 1 * 1) / 3 = 23/33.
    preds, scores, gts = [[A], [FAR], [C]], [[0.9], [0.8], [0.7]], [[A], [B], [C]]
    assert _ap(preds, scores, gts) == pytest.approx(6 / 11, abs=1e-12)
    assert _ap(preds, scores, gts, batch_size=2) == pytest.approx(23 / 33, abs=1e-12)
    # batch_size=1: AP 1, 0, 1 -> 2/3.
    assert _ap(preds, scores, gts, batch_size=1) == pytest.approx(2 / 3, abs=1e-12)


def test_no_gt_conventions():
    # No GT at all: AP 1 without predictions (nothing to find, nothing wrong), else 0.
    assert _ap([[], []], [[], []], [[], []]) == 1.0
    assert _ap([[], [A]], [[], [0.3]], [[], []]) == 0.0
    # GT but no predictions: recall never reached -> 0.
    assert _ap([[], []], [[], []], [[A], []]) == 0.0


# ---------------------------------------------------------------------------------------------
# (b) Literal re-implementation of the description (plain Python loops, own IoU, exact fractions).
# ---------------------------------------------------------------------------------------------


def _iou_literal(a, b):
    top, left = max(a[0], b[0]), max(a[1], b[1])
    bottom, right = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, bottom - top) * max(0.0, right - left)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_ap_at(preds, scores, gts, t, matching):
    """Follows the original `mAP`: per image sort, greedy match with deletion, optional break."""
    entries = []  # (confidence, is_tp), image by image
    n_gt = 0
    for boxes, confs, gt in zip(preds, scores, gts):
        remaining = [list(g) for g in gt]
        n_gt += len(remaining)
        ordered = sorted(zip(confs, [list(b) for b in boxes]), key=lambda k: -k[0])
        if not remaining:
            entries.extend((conf, False) for conf, _ in ordered)
            continue
        for conf, box in ordered:
            if not remaining:  # in corrected mode: nothing left to match -> FP
                entries.append((conf, False))
                continue
            ious = [_iou_literal(box, g) for g in remaining]
            best = max(range(len(ious)), key=lambda i: (ious[i], -i))
            if ious[best] > t:
                entries.append((conf, True))
                del remaining[best]
            else:
                entries.append((conf, False))
            if matching == "aaai2019" and not remaining:
                break
    if n_gt == 0:
        return 1.0 if not entries else 0.0
    entries = sorted(entries, key=lambda k: -k[0])
    points = []  # (recall, precision)
    tp = 0
    for rank, (_, is_tp) in enumerate(entries, start=1):
        tp += is_tp
        points.append((Fraction(tp, n_gt), Fraction(tp, rank)))
    total = Fraction(0)
    for k in range(11):
        reached = [p for r, p in points if r >= Fraction(k, 10)]
        total += max(reached) if reached else 0
    return float(total / 11)


def _reference_ap(preds, scores, gts, thresholds, matching, batch_size):
    n = len(gts)
    step = n if batch_size is None else batch_size
    result = {}
    for t in thresholds:
        acc = 0.0
        for s in range(0, n, step):
            sl = slice(s, s + step)
            acc += len(gts[sl]) * _reference_ap_at(preds[sl], scores[sl], gts[sl], t, matching)
        result[t] = acc / n
    return result


def _random_box(rng, near=None):
    if near is None:
        y, x = rng.uniform(0, 0.8, size=2)
        h, w = rng.uniform(0.05, 0.3, size=2)
    else:
        jitter = rng.choice([0.003, 0.02, 0.05])  # IoUs from ~0.95 down to ~0.2
        y, x = near[0] + rng.normal(0, jitter), near[1] + rng.normal(0, jitter)
        h = (near[2] - near[0]) * (1 + rng.normal(0, 2 * jitter))
        w = (near[3] - near[1]) * (1 + rng.normal(0, 2 * jitter))
    return [y, x, y + h, x + w]


def _random_dataset(rng, num_images, tied_scores=False):
    preds, scores, gts = [], [], []
    for _ in range(num_images):
        gt = [_random_box(rng) for _ in range(rng.integers(0, 6))]
        pred = [_random_box(rng, g) for g in gt if rng.random() < 0.8]
        pred += [_random_box(rng) for _ in range(rng.integers(0, 3))]
        rng.shuffle(pred)
        conf = rng.random(len(pred))
        if tied_scores:
            conf = np.round(conf, 1)
        gts.append(np.asarray(gt).reshape(-1, 4))
        preds.append(np.asarray(pred).reshape(-1, 4))
        scores.append(conf)
    return preds, scores, gts


@pytest.mark.parametrize("matching", ["corrected", "aaai2019"])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_matches_literal_reference_on_random_cases(matching, batch_size):
    rng = np.random.default_rng(0)
    for case in range(25):
        preds, scores, gts = _random_dataset(rng, int(rng.integers(1, 9)), tied_scores=case % 2 == 1)
        expected = _reference_ap(preds, scores, gts, DEFAULT_IOU_THRESHOLDS, matching, batch_size)
        got = average_precision_per_threshold(preds, scores, gts, matching=matching, batch_size=batch_size)
        assert got == pytest.approx(expected, abs=1e-12), f"case {case}"
        assert average_precision(preds, scores, gts, matching=matching, batch_size=batch_size) == pytest.approx(
            np.mean(list(expected.values())), abs=1e-12
        )


# ---------------------------------------------------------------------------------------------
# (c) pycocotools as an independent implementation.
# ---------------------------------------------------------------------------------------------


def _coco_ap(preds, scores, gts, thresholds, height, width):
    """COCO AP per threshold with 11 recall levels, one category, no area limit, pixel xywh boxes.

    pycocotools matches a detection to the best unmatched GT with IoU >= t (ours: > t); with
    continuous random boxes no IoU equals a threshold, so the two agree. Recall thresholds are
    `arange(11) / 10` (not linspace, see test_hand_recall_levels_are_exact) since pycocotools locates
    them with a float searchsorted.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box):
        return [box[1] * width, box[0] * height, (box[3] - box[1]) * width, (box[2] - box[0]) * height]

    images = [{"id": i + 1, "height": height, "width": width} for i in range(len(gts))]
    annotations, detections = [], []
    for i, (gt, pred, conf) in enumerate(zip(gts, preds, scores)):
        for g in gt:
            b = xywh(g)
            annotation = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "bbox": b}
            annotations.append({**annotation, "area": b[2] * b[3], "iscrowd": 0})
        for p, s in zip(pred, conf):
            detections.append({"image_id": i + 1, "category_id": 1, "bbox": xywh(p), "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "obj"}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.iouThrs = np.asarray(thresholds, dtype=np.float64)
        evaluator.params.recThrs = np.arange(11) / 10
        evaluator.params.maxDets = [1000]
        evaluator.params.areaRng = [[0.0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, 0, 0, 0]  # [T, R]; recall never reached stays 0.
    assert np.all(precision >= 0), "precision -1 means no GT: excluded by construction"
    return dict(zip(thresholds, precision.mean(axis=1)))


def test_matches_pycocotools_on_random_cases():
    rng = np.random.default_rng(1)
    thresholds = (0.1, 0.3, 0.5, 0.7, 0.9)
    compared = 0
    for case in range(30):
        preds, scores, gts = _random_dataset(rng, int(rng.integers(1, 10)))
        if sum(len(g) for g in gts) == 0 or sum(len(p) for p in preds) == 0:
            continue  # pycocotools marks "no GT" with -1 and loadRes fails on an empty result list.
        expected = _coco_ap(preds, scores, gts, thresholds, height=48, width=64)  # non-square pixels
        got = average_precision_per_threshold(preds, scores, gts, iou_thresholds=thresholds)
        assert got == pytest.approx(expected, abs=1e-9), f"case {case}"
        compared += 1
    assert compared >= 20


def test_matches_pycocotools_on_hand_example():
    # The hand-worked 28/33 example, through pycocotools.
    expected = _coco_ap([[A, FAR, B]], [[0.9, 0.8, 0.7]], [[A, B]], (0.5,), height=30, width=40)
    assert expected[0.5] == pytest.approx(28 / 33, abs=1e-9)
    assert average_precision_per_threshold([[A, FAR, B]], [[0.9, 0.8, 0.7]], [[A, B]], iou_thresholds=(0.5,)) == {
        0.5: pytest.approx(expected[0.5], abs=1e-9)
    }


# ---------------------------------------------------------------------------------------------
# (d) Properties.
# ---------------------------------------------------------------------------------------------


def test_perfect_predictions_give_one_at_every_threshold():
    rng = np.random.default_rng(2)
    _, _, gts = _random_dataset(rng, 8)
    scores = [rng.random(len(g)) for g in gts]
    per_t = average_precision_per_threshold(gts, scores, gts)
    assert per_t == dict.fromkeys(DEFAULT_IOU_THRESHOLDS, 1.0)


def test_all_wrong_predictions_give_zero():
    rng = np.random.default_rng(3)
    # GTs in the top half, predictions in the bottom half: IoU 0 everywhere.
    gts = [np.array([[0.0, 0.1, 0.4, 0.3], [0.1, 0.5, 0.5, 0.9]])] * 4
    preds = [np.array([[0.5, 0.1, 0.9, 0.3], [0.6, 0.5, 1.0, 0.9], [0.55, 0.0, 0.8, 1.0]])] * 4
    scores = [rng.random(3) for _ in range(4)]
    for matching in ("corrected", "aaai2019"):
        assert average_precision_per_threshold(preds, scores, gts, matching=matching) == dict.fromkeys(
            DEFAULT_IOU_THRESHOLDS, 0.0
        )


def test_aaai2019_never_below_corrected():
    # aaai2019 only drops predictions that are FPs in corrected mode (no GT left to match), and the
    # interpolated precision is attained at TPs, so it can only rise.
    rng = np.random.default_rng(4)
    for _ in range(20):
        data = _random_dataset(rng, 6)
        assert average_precision(*data, matching="aaai2019") >= average_precision(*data) - 1e-12


def test_batch_size_covering_all_images_equals_whole_set():
    rng = np.random.default_rng(5)
    for _ in range(10):
        data = _random_dataset(rng, 7)
        whole = average_precision_per_threshold(*data)
        assert average_precision_per_threshold(*data, batch_size=7) == whole
        assert average_precision_per_threshold(*data, batch_size=100) == whole


def test_batch_average_is_weighted_by_batch_size():
    rng = np.random.default_rng(6)
    preds, scores, gts = _random_dataset(rng, 7)
    # batches of 3: images 0-2, 3-5 and 6 -> weights 3, 3, 1.
    parts = [average_precision(preds[s], scores[s], gts[s]) for s in (slice(0, 3), slice(3, 6), slice(6, 7))]
    expected = (3 * parts[0] + 3 * parts[1] + 1 * parts[2]) / 7
    assert average_precision(preds, scores, gts, batch_size=3) == pytest.approx(expected, abs=1e-12)


def test_padded_inputs_equal_ragged_inputs():
    rng = np.random.default_rng(7)
    preds, scores, gts = _random_dataset(rng, 5)
    k = max(len(p) for p in preds)
    padded_preds = np.full((5, k, 4), np.nan)  # padding must be ignored, even NaN
    padded_scores = np.full((5, k), np.nan)
    padded_gts = np.full((5, 6, 4), np.nan)
    for i in range(5):
        padded_preds[i, : len(preds[i])] = preds[i]
        padded_scores[i, : len(scores[i])] = scores[i]
        padded_gts[i, : len(gts[i])] = gts[i]
    num_pred = np.array([len(p) for p in preds])
    num_gt = np.array([len(g) for g in gts])
    expected = average_precision_per_threshold(preds, scores, gts)
    got = average_precision_per_threshold(padded_preds, padded_scores, padded_gts, num_pred=num_pred, num_gt=num_gt)
    assert got == expected
    unpadded = unpad(padded_gts, num_gt)
    assert [u.shape for u in unpadded] == [g.shape for g in gts]
    assert all(np.array_equal(u, g) for u, g in zip(unpadded, gts))


# ---------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------


PADDED_BOXES, PADDED_SCORES = np.zeros((2, 3, 4)), np.zeros((2, 3))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([[A]], [[0.5]], [[A], [B]]), {}, r"pred_boxes must hold one entry per image \(2 in gt_boxes\); got 1"),
        (([[A], [B]], [[0.5]], [[A], [B]]), {}, r"pred_scores must hold one entry per image \(2 in gt_boxes\); got 1"),
        (([[[0, 0, 1]]], [[0.5]], [[A]]), {}, r"pred_boxes\[0\] must have shape \[\.\.\., 4\]"),
        (([[A]], [[0.5]], [[[0, 0, 1]]]), {}, r"gt_boxes\[0\] must have shape \[\.\.\., 4\]"),
        (([[[np.nan, 0, 1, 1]]], [[0.5]], [[A]]), {}, r"pred_boxes\[0\] contains NaN"),
        (([[A]], [[np.nan]], [[A]]), {}, r"pred_scores\[0\] contains NaN"),
        (([[A, B]], [[0.5]], [[A]]), {}, r"pred_scores\[0\] must have shape \[2\] .*got \(1,\)"),
        (([[A]], [[0.5]], [[A]]), {"matching": "coco"}, r"matching must be one of"),
        (([[A]], [[0.5]], [[A]]), {"batch_size": 0}, r"batch_size must be None or a positive integer; got 0"),
        (([[A]], [[0.5]], [[A]]), {"batch_size": 2.0}, r"batch_size must be None or a positive integer"),
        (([[A]], [[0.5]], [[A]]), {"iou_thresholds": [1.5]}, r"iou_thresholds must lie in \[0, 1\]"),
        (([[A]], [[0.5]], [[A]]), {"iou_thresholds": []}, r"iou_thresholds must be a non-empty"),
        (([[A]], [[0.5]], [[A]]), {"iou_thresholds": [0.5, 0.5]}, r"iou_thresholds must not repeat a value"),
        (([], [], []), {}, r"gt_boxes must hold at least one image"),
        ((PADDED_BOXES, PADDED_SCORES, [[A], [B]]), {"num_pred": [1, 4]}, r"counts for pred_boxes must lie in \[0, K=3\]"),
        ((PADDED_BOXES, PADDED_SCORES, [[A], [B]]), {"num_pred": [1]}, r"counts for pred_boxes must have shape \[N\]"),
    ],
)
def test_invalid_inputs_raise(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        average_precision(*args, **kwargs)


def test_empty_prediction_lists_are_fine():
    # numpy arrays [0, 4] and plain empty lists both work as "no prediction in this image".
    got = average_precision([np.zeros((0, 4)), [], [A]], [np.zeros(0), [], [1.0]], [[A], [], [A]])
    # Image 2's A is a TP; image 0's GT is never found: recall 1/2 at precision 1 -> 6/11.
    assert got == pytest.approx(6 / 11, abs=1e-12)
