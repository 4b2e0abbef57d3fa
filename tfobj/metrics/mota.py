"""CLEAR MOT tracking metrics (MOTA, MOTP, identity switches) as SILOT reports them.

Implements the CLEAR MOT metrics of Bernardin & Stiefelhagen (2008) exactly as py-motmetrics 1.4.0's
`MOTAccumulator` computes them (the library SILOT's code used), with distance = 1 - IoU and a pair
allowed iff distance <= 1 - `iou_threshold` (motmetrics `iou_matrix(..., max_iou=0.5)` for the
default 0.5). For each frame:

1. Correspondences carried over: for each GT id in the given order, if its last matched hypothesis
   id (from any earlier frame, not only the previous one) is present, not yet taken in this frame,
   and the pair is allowed, they are matched again (never a switch).
2. The remaining allowed pairs are assigned by a maximum-cardinality, minimum-total-distance
   assignment (Hungarian, `scipy.optimize.linear_sum_assignment` with disallowed pairs given a
   prohibitive cost, as motmetrics does). A GT matched to a hypothesis other than its last match
   counts an identity switch (a "SWITCH" event, not a "MATCH").
3. Unmatched GTs are misses, unmatched hypotheses false positives.

Then MOTA = 1 - (misses + false positives + switches) / number of GT boxes, and MOTP = mean
distance (1 - IoU) over matches and switches. Note motmetrics' MOTP is a distance: lower is better,
0 for perfect boxes. `num_matches` counts "MATCH" events only (switches are not included), as in
motmetrics; matches + switches = detected GT boxes.

Like motmetrics (which divides quietly), MOTA is NaN if there are no GT boxes and no errors, and
-inf if there are no GT boxes but false positives; MOTP is NaN without any matched pair.

Many videos: SILOT's code averaged per-batch motmetrics OVERALL rows weighted by batch size. Our
default (`clear_mot_many`) is one OVERALL row over all test videos: counts and distances are summed,
then MOTA and MOTP are computed from the sums. (motmetrics' own OVERALL row computes MOTP as
sum(motp_v * detections_v) / detections, which is NaN as soon as one video has no detection; ours is
the pooled mean distance, identical whenever every video has a detection.)

Ties in the assignment (equal total distances) may be broken differently from motmetrics' default
solver (lapjv); with continuous box coordinates they do not occur.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from tfobj.ops.boxes import check_boxes, iou_matrix

_COUNT_KEYS = ("num_switches", "num_misses", "num_false_positives", "num_matches", "num_objects")
_VIDEO_KEYS = ("gt_ids", "gt_boxes", "pred_ids", "pred_boxes")


def clear_mot(gt_ids, gt_boxes, pred_ids, pred_boxes, iou_threshold: float = 0.5) -> dict:
    """CLEAR MOT metrics of one video (motmetrics' `MOTAccumulator` semantics, module doc).

    Args:
        gt_ids: Sequence over `T` frames; frame `t`: integer ids `[G_t]`, unique within the frame.
            A padded `[T, K]` array can be split with `tfobj.metrics.unpad(ids, num_objects)`.
        gt_boxes: Sequence over frames; frame `t`: boxes `[G_t, 4]`, normalised
            `(y_min, x_min, y_max, x_max)`.
        pred_ids: Sequence over frames; frame `t`: hypothesis (track) ids `[P_t]`, unique per frame.
        pred_boxes: Sequence over frames; frame `t`: boxes `[P_t, 4]`.
        iou_threshold: A GT/hypothesis pair may be matched iff 1 - IoU <= 1 - iou_threshold.

    Returns:
        Dict with `"mota"` (float, <= 1, may be negative), `"motp"` (float, mean 1 - IoU of matched
        pairs, lower is better), and int counts `"num_switches"`, `"num_misses"`,
        `"num_false_positives"`, `"num_matches"` (excluding switches), `"num_objects"` (GT boxes).

    Raises:
        ValueError: on frame-count mismatch, shape mismatch, non-integer or duplicate ids, NaN
            boxes, or an `iou_threshold` outside [0, 1].
    """
    counts, distance = _accumulate_video(gt_ids, gt_boxes, pred_ids, pred_boxes, iou_threshold)
    return _summarise(counts, distance)


def clear_mot_many(videos, iou_threshold: float = 0.5) -> dict:
    """CLEAR MOT metrics over many videos: counts summed, then MOTA/MOTP from the sums.

    This is motmetrics' `compute_many(..., generate_overall=True)` OVERALL row (except that MOTP is
    the pooled mean distance, see module doc). The original SILOT code instead averaged per-batch
    OVERALL rows weighted by batch size.

    Args:
        videos: Sequence of videos, each a mapping with keys `gt_ids, gt_boxes, pred_ids,
            pred_boxes` or a tuple `(gt_ids, gt_boxes, pred_ids, pred_boxes)`, as in `clear_mot`.
            Ids only need to be consistent within a video.
        iou_threshold: As in `clear_mot`.

    Returns:
        The same dict as `clear_mot`, over all videos.

    Raises:
        ValueError: if `videos` is empty or a video is malformed (the message names the video).
    """
    if len(videos) == 0:
        raise ValueError("videos must hold at least one video; got 0")
    totals = dict.fromkeys(_COUNT_KEYS, 0)
    total_distance = 0.0
    for index, video in enumerate(videos):
        fields = _video_fields(video, index)
        try:
            counts, distance = _accumulate_video(*fields, iou_threshold)
        except ValueError as error:
            raise ValueError(f"videos[{index}]: {error}") from error
        totals = {key: totals[key] + counts[key] for key in _COUNT_KEYS}
        total_distance += distance
    return _summarise(totals, total_distance)


def _video_fields(video, index: int) -> tuple:
    if isinstance(video, Mapping):
        missing = [key for key in _VIDEO_KEYS if key not in video]
        if missing:
            raise ValueError(f"videos[{index}] must have keys {_VIDEO_KEYS}; missing {missing}")
        return tuple(video[key] for key in _VIDEO_KEYS)
    if isinstance(video, Sequence) and len(video) == 4:
        return tuple(video)
    raise ValueError(f"videos[{index}] must be a mapping with keys {_VIDEO_KEYS} or a 4-tuple; got {type(video)}")


def _summarise(counts: dict, distance_sum: float) -> dict:
    """MOTA and MOTP from summed counts and the summed distance of matches and switches."""
    errors = counts["num_misses"] + counts["num_false_positives"] + counts["num_switches"]
    detections = counts["num_matches"] + counts["num_switches"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mota = 1.0 - np.true_divide(errors, counts["num_objects"])
        motp = np.true_divide(distance_sum, detections)
    return {"mota": float(mota), "motp": float(motp), **{key: int(counts[key]) for key in _COUNT_KEYS}}


def _accumulate_video(gt_ids, gt_boxes, pred_ids, pred_boxes, iou_threshold):
    """Counts `{key: int}` and summed matched distance of one video."""
    max_distance = _check_threshold(iou_threshold)
    frames = _check_video(gt_ids, gt_boxes, pred_ids, pred_boxes)
    counts = dict.fromkeys(_COUNT_KEYS, 0)
    distance_sum = 0.0
    last_match: dict = {}  # GT id -> hypothesis id of its most recent match.
    for oids, oboxes, hids, hboxes in frames:
        dist = 1.0 - iou_matrix(oboxes, hboxes)
        dist[dist > max_distance] = np.nan
        matches, switches, frame_distance = _match_frame(oids, hids, dist, last_match)
        counts["num_matches"] += matches
        counts["num_switches"] += switches
        counts["num_misses"] += len(oids) - matches - switches
        counts["num_false_positives"] += len(hids) - matches - switches
        counts["num_objects"] += len(oids)
        distance_sum += frame_distance
    return counts, distance_sum


def _match_frame(oids, hids, dist, last_match: dict) -> tuple[int, int, float]:
    """One motmetrics `update`: returns (matches, switches, summed distance); updates `last_match`.

    Args:
        oids: GT ids `[G]`.
        hids: Hypothesis ids `[P]`.
        dist: Distances `[G, P]`, NaN for disallowed pairs.
        last_match: GT id -> last matched hypothesis id, updated in place.
    """
    matches = switches = 0
    distance = 0.0
    o_free = np.ones(len(oids), bool)
    h_free = np.ones(len(hids), bool)
    if len(oids) == 0 or len(hids) == 0:
        return matches, switches, distance
    # 1. Carry over previous correspondences.
    for i, o in enumerate(oids.tolist()):
        if o not in last_match:
            continue
        (js,) = np.nonzero(h_free & (hids == last_match[o]))
        if js.size and np.isfinite(dist[i, js[0]]):
            o_free[i] = h_free[js[0]] = False
            matches += 1
            distance += dist[i, js[0]]
    # 2. Assign the rest; a changed correspondence is a switch.
    rows, cols = np.nonzero(o_free)[0], np.nonzero(h_free)[0]
    for i, j in _assign(dist[np.ix_(rows, cols)]):
        o, h = oids[rows[i]].item(), hids[cols[j]].item()
        if o in last_match and last_match[o] != h:
            switches += 1
        else:
            matches += 1
        last_match[o] = h
        distance += dist[rows[i], cols[j]]
    return matches, switches, distance


def _assign(dist: np.ndarray) -> list[tuple[int, int]]:
    """Maximum-cardinality, minimum-distance assignment over the finite entries of `dist` `[G, P]`.

    As motmetrics, NaN (disallowed) entries get a cost `L = 2 r c + 1` (r = min(G, P), c = max |d| + 1)
    large enough that using one more disallowed pair always costs more than any set of allowed
    ones; pairs that land on a disallowed entry are then dropped.
    """
    valid = np.isfinite(dist)
    if not valid.any():
        return []
    c = np.abs(dist[valid]).max() + 1.0
    costs = np.where(valid, dist, 2 * min(dist.shape) * c + 1.0)
    rows, cols = linear_sum_assignment(costs)
    return [(i, j) for i, j in zip(rows.tolist(), cols.tolist()) if valid[i, j]]


def _check_threshold(iou_threshold) -> float:
    """Returns the largest allowed distance, 1 - iou_threshold."""
    threshold = float(iou_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1]; got {iou_threshold}")
    return 1.0 - threshold


def _check_video(gt_ids, gt_boxes, pred_ids, pred_boxes) -> list[tuple]:
    """Validates one video; returns per-frame `(gt_ids, gt_boxes, pred_ids, pred_boxes)` arrays."""
    num_frames = len(gt_ids)
    if num_frames == 0:
        raise ValueError("gt_ids must hold at least one frame; got 0 frames")
    for name, value in (("gt_boxes", gt_boxes), ("pred_ids", pred_ids), ("pred_boxes", pred_boxes)):
        if len(value) != num_frames:
            raise ValueError(f"{name} must hold one entry per frame ({num_frames} in gt_ids); got {len(value)}")
    frames = []
    for t in range(num_frames):
        oids, oboxes = _check_frame(gt_ids[t], gt_boxes[t], f"gt_ids[{t}]", f"gt_boxes[{t}]")
        hids, hboxes = _check_frame(pred_ids[t], pred_boxes[t], f"pred_ids[{t}]", f"pred_boxes[{t}]")
        frames.append((oids, oboxes, hids, hboxes))
    return frames


def _check_frame(ids, boxes, ids_name: str, boxes_name: str) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{ids_name} must have shape [num_objects]; got {ids.shape}")
    if ids.size == 0:
        ids = ids.astype(np.int64)
    elif not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{ids_name} must hold integer ids; got dtype {ids.dtype}")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{ids_name} must not repeat an id within a frame; got {ids.tolist()}")
    boxes = check_boxes(boxes, boxes_name)
    if boxes.shape != (ids.size, 4):
        raise ValueError(
            f"{boxes_name} must have shape [{ids.size}, 4] (one box per id in {ids_name}); got {boxes.shape}"
        )
    return ids, boxes
