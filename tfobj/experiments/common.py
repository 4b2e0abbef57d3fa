"""What every experiment shares: threshold search, tracking scores against a video set, figure examples.

Detection scores (AP, count accuracy) are `tfobj.training.evaluation.detection_scores` and tracking scores
(CLEAR MOT, `tfobj.metrics.clear_mot_many`, and the count error) `tfobj.training.evaluation.tracking_scores`,
which training's validation uses too.
"""
from __future__ import annotations


from tfobj.metrics.average_precision import average_precision_per_threshold
from tfobj.training.evaluation import detection_scores, tracking_scores

__all__ = ["ap_by_threshold", "best_threshold", "detection_scores", "examples", "track_examples", "tracking_scores"]


def ap_by_threshold(detections: list[dict], true_boxes, num_objects) -> dict[str, float]:
    """The AP at each IoU threshold (0.1, 0.2, …, 0.9) whose mean is `detection_scores`' "ap", keyed by the
    threshold as text ("0.1", …; JSON keys): where a detector's AP is lost, at low IoU (missed or extra objects)
    or at high IoU (boxes that do not fit the objects tightly)."""
    per_threshold = average_precision_per_threshold([d["boxes"] for d in detections],
                                                    [d["scores"] for d in detections], true_boxes,
                                                    num_gt=num_objects)
    return {f"{threshold:g}": value for threshold, value in per_threshold.items()}


def best_threshold(scores: dict[float, float]) -> float:
    """The threshold with the highest score; ties go to the smallest threshold."""
    best = max(scores.values())
    return min(threshold for threshold, score in scores.items() if score == best)


def examples(images, true_boxes, num_objects, found, count: int = 8) -> dict:
    """The first `count` test images with their true and predicted boxes, for `tfobj.figures.plot_detections`."""
    return {
        "images": images[:count],
        "true_boxes": [b[:n] for b, n in zip(true_boxes[:count], num_objects[:count])],
        "pred_boxes": [d["boxes"] for d in found[:count]],
    }


def track_examples(videos: dict, tracks, count: int = 3) -> dict:
    """The first `count` test videos with their true and predicted tracks, for `tfobj.figures.plot_tracks`."""
    truth = []
    for v in range(count):
        valid = videos["track_ids"][v] > 0  # [T, K]
        truth.append({"ids": [ids[keep] for ids, keep in zip(videos["track_ids"][v], valid)],
                      "boxes": [boxes[keep] for boxes, keep in zip(videos["boxes"][v], valid)]})
    return {"videos": videos["videos"][:count], "true_tracks": truth,
            "pred_tracks": [{"ids": track.ids, "boxes": track.boxes} for track in tracks[:count]]}
