"""PNG figures. matplotlib is imported inside each function (never at import time of tfobj)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    """Lays out, writes `fig` as a PNG at `path` (creating its folder), closes it; returns the path."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# Box styles that stay visible on any object or background colour: a coloured line inside a black halo.
# Ground truth is drawn wider, under the prediction: where the two coincide, the white dashes still show
# on both sides of the pink line.
TRUE_STYLE = dict(colour="#ffffff", style=(0, (3, 2)), width=2.6)  # ground truth: white, dashed, wide
PRED_STYLE = dict(colour="#ff2d95", style="-", width=1.1)  # prediction: pink, solid, thin


def _rectangle(box, height: int, width: int, colour: str, style="-", line: float = 1.3):
    """A matplotlib Rectangle for a normalised (y_min, x_min, y_max, x_max) box, drawn on pixel edges (imshow
    puts pixel centres at integers, so edges are at -0.5), with a black halo under the coloured line."""
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    y_min, x_min, y_max, x_max = box
    rectangle = Rectangle(
        (x_min * width - 0.5, y_min * height - 0.5), (x_max - x_min) * width, (y_max - y_min) * height,
        fill=False, edgecolor=colour, linewidth=line, linestyle=style,
    )
    rectangle.set_path_effects([patheffects.withStroke(linewidth=line + 1.4, foreground="black")])
    return rectangle


def plot_detections(
    images: np.ndarray,
    true_boxes: Sequence[np.ndarray] | None,
    pred_boxes: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
    columns: int = 4,
) -> Path:
    """Saves a grid of images with ground-truth (white, dashed) and predicted (pink, solid) boxes, each line in
    a black halo so it shows on any colour; each image's title gives the true and predicted counts.

    Args:
        images: float `[N, H, W, C]` in [0, 1].
        true_boxes: per image, `[G_i, 4]` normalised boxes; None to draw predictions only.
        pred_boxes: per image, `[P_i, 4]` normalised boxes.
        path: output PNG file.
        title: figure title.
        columns: images per row.

    Returns:
        The path written.
    """
    plt = _pyplot()

    num = len(images)
    columns = max(1, min(columns, num))
    rows = max(1, -(-num // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.5 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    truths = true_boxes if true_boxes is not None else [None] * num
    for ax, image, truth, pred in zip(axes.flat, images, truths, pred_boxes):
        height, width = image.shape[:2]
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        for box in [] if truth is None else truth:
            ax.add_patch(_rectangle(box, height, width, TRUE_STYLE["colour"], TRUE_STYLE["style"], TRUE_STYLE["width"]))
        for box in pred:
            ax.add_patch(_rectangle(box, height, width, PRED_STYLE["colour"], PRED_STYLE["style"], PRED_STYLE["width"]))
        counts = f"found {len(pred)}" if truth is None else f"true {len(truth)} / found {len(pred)}"
        ax.set_title(counts, fontsize=8)
    legend = "pink solid: found" if true_boxes is None else "white dashed: ground truth, pink solid: found"
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=9)
    return _save(fig, path)


def plot_objects(images: np.ndarray, objects: Sequence[dict], path: str | Path, true_boxes=None,
                 title: str = "", columns: int = 4) -> Path:
    """The figure beside `model.predict_objects(images)`: the images with the boxes it found (and the ground
    truth's, if given), e.g. `tfobj.plot_objects(images, model.predict_objects(images), "found.png")`.

    Args:
        images: float `[N, H, W, C]` in [0, 1].
        objects: per image, a dict with "boxes" `[n, 4]` (what `predict_objects` returns).
        path: output PNG file.
        true_boxes: optional per-image ground-truth boxes: a list of `[G_i, 4]`, or padded `[N, K, 4]` with
            zero rows for absent objects.
        title, columns: as `plot_detections`.

    Returns:
        The path written.
    """
    if len(images) != len(objects):
        raise ValueError(f"plot_objects needs one objects dict per image; got {len(images)} images and "
                         f"{len(objects)} dicts")
    if true_boxes is not None:
        true_boxes = [np.asarray(boxes)[np.any(np.asarray(boxes) != 0, axis=-1)] for boxes in true_boxes]
    return plot_detections(images, true_boxes, [o["boxes"] for o in objects], path, title, columns)


def plot_tracks(videos: np.ndarray, true_tracks: Sequence[dict], pred_tracks: Sequence[dict], path: str | Path,
                title: str = "", max_frames: int = 8) -> Path:
    """Saves a tracking figure: per video, a row of frames with the ground truth's boxes (dashed) and a row with
    the predicted tracks' boxes (solid), each box coloured by its identity, so that a tracked object keeps one
    colour along its row and an identity switch shows as a change of colour.

    Args:
        videos: float `[V, T, H, W, C]` in [0, 1].
        true_tracks, pred_tracks: per video, {"ids": per frame `[n_t]` ints, "boxes": per frame `[n_t, 4]`}.
        path: output PNG file.
        title: figure title.
        max_frames: frames shown per video (the first ones).

    Returns:
        The path written.
    """
    plt = _pyplot()
    colours = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors

    def colour(identity):
        return colours[int(identity) % len(colours)]

    frames = min(max_frames, videos.shape[1])
    rows = 2 * len(videos)
    fig, axes = plt.subplots(rows, frames, figsize=(1.45 * frames + 0.9, 1.55 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for v, (video, truth, pred) in enumerate(zip(videos, true_tracks, pred_tracks)):
        for r, (tracks, label, style) in enumerate(((truth, "truth", (0, (3, 2))), (pred, "tracks", "-"))):
            for t in range(frames):
                ax = axes[2 * v + r, t]
                ax.imshow(np.clip(video[t], 0, 1), interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                height, width = video.shape[1:3]
                for identity, box in zip(tracks["ids"][t], tracks["boxes"][t]):
                    ax.add_patch(_rectangle(box, height, width, colour(identity), style, 1.6))
                if t == 0:
                    ax.set_ylabel(f"video {v + 1}\n{label}", fontsize=8)
                if v == 0 and r == 0:
                    ax.set_title(f"frame {t + 1}", fontsize=8)
    legend = "dashed: ground truth, solid: predicted tracks; colour = identity within a row"
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=9)
    return _save(fig, path)


def plot_curves(x, series: dict, path: str | Path, xlabel: str, ylabel: str, title: str = "",
                limits: tuple[float, float] | None = None, spread_label: str = "") -> Path:
    """Saves a line plot of several series with error bars.

    Args:
        x: the x values, length X.
        series: name -> (mean `[X]`, spread `[X]`), drawn as a line with error bars mean ± spread.
        path: output PNG file.
        xlabel, ylabel, title: labels.
        limits: the metric's range (e.g. (0, 1) for AP): error bars are clipped to it and the axis spans it.
        spread_label: what the error bars are (e.g. "95% t-interval over 6 repeats"), written on the figure.

    Returns:
        The path written.
    """
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for name, (mean, spread) in series.items():
        mean, spread = np.asarray(mean, dtype=float), np.asarray(spread, dtype=float)
        low, high = mean - spread, mean + spread
        if limits is not None:
            low, high = np.clip(low, *limits), np.clip(high, *limits)
        ax.errorbar(x, mean, yerr=np.stack([mean - low, high - mean]), marker="o", capsize=3, label=name)
    if limits is not None:
        margin = 0.03 * (limits[1] - limits[0])
        ax.set_ylim(limits[0] - margin, limits[1] + margin)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if not spread_label else f"{title}\nerror bars: {spread_label}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_transfer_curves(
    counts: Sequence[int],
    curves: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    title: str = "",
    metrics: Sequence[tuple[str, str]] = (("ap", "AP (IoU 0.1…0.9)"), ("count_abs_error", "count absolute error"),
                                          ("count_01_error", "count 0-1 error")),
) -> Path:
    """Saves one panel per metric of a score against the test object count (SPAIR's transfer figure).

    Args:
        counts: the test object counts n (x axis).
        curves: per line label (a training condition or a baseline), per metric key, `(mean, spread)`
            with one value per count; the spread is drawn as a shaded band of ± spread.
        path: output PNG file.
        title: figure title.
        metrics: (key, axis label) per panel, in order.

    Returns:
        The path written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(counts)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        for name, scores in curves.items():
            mean, spread = (np.asarray(v, dtype=float) for v in scores[key])
            (line,) = ax.plot(counts, mean, marker="o", markersize=3, label=name)
            ax.fill_between(counts, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("number of digits in the test image")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
