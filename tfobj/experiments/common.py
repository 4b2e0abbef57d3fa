"""What every experiment shares: threshold search, tracking scores against a video set, figure examples.

Detection scores (AP, count accuracy) are `tfobj.training.evaluation.detection_scores`, which training's
validation uses too; tracking scores are CLEAR MOT (`tfobj.metrics.clear_mot_many`).
"""
from __future__ import annotations


from tfobj import metrics
from tfobj.training.evaluation import detection_scores

__all__ = ["best_threshold", "detection_scores", "examples", "track_examples", "tracking_scores"]


def best_threshold(scores: dict[float, float]) -> float:
    """The threshold with the highest score; ties go to the smallest threshold."""
    best = max(scores.values())
    return min(threshold for threshold, score in scores.items() if score == best)


def tracking_scores(tracks, videos: dict) -> dict:
    """CLEAR MOT scores (mota, motp, num_switches, ...) of per-video tracks (`.ids`, `.boxes` per frame)
    against a video dataset's ground truth ("track_ids" `[N, T, K]`, "boxes" `[N, T, K, 4]`)."""
    sequences = []
    for v, track in enumerate(tracks):
        gt_ids, gt_boxes = [], []
        for t in range(len(track.ids)):
            valid = videos["track_ids"][v, t] > 0
            gt_ids.append(videos["track_ids"][v, t][valid])
            gt_boxes.append(videos["boxes"][v, t][valid])
        sequences.append((gt_ids, gt_boxes, track.ids, track.boxes))
    return metrics.clear_mot_many(sequences)


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
