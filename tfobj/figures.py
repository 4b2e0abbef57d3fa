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

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _rectangle(box, height: int, width: int, colour: str, style: str = "-"):
    """A matplotlib Rectangle for a normalised (y_min, x_min, y_max, x_max) box, drawn on pixel
    edges (imshow puts pixel centres at integers, so edges are at -0.5)."""
    from matplotlib.patches import Rectangle

    y_min, x_min, y_max, x_max = box
    return Rectangle(
        (x_min * width - 0.5, y_min * height - 0.5), (x_max - x_min) * width, (y_max - y_min) * height,
        fill=False, edgecolor=colour, linewidth=1.2, linestyle=style,
    )


def plot_detections(
    images: np.ndarray,
    true_boxes: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
    columns: int = 4,
) -> Path:
    """Saves a grid of images with ground-truth (green, dashed) and predicted (red) boxes.

    Args:
        images: float `[N, H, W, C]` in [0, 1].
        true_boxes: per image, `[G_i, 4]` normalised boxes.
        pred_boxes: per image, `[P_i, 4]` normalised boxes.
        path: output PNG file.
        title: figure title.
        columns: images per row.

    Returns:
        The path written.
    """
    plt = _pyplot()

    num = len(images)
    rows = max(1, -(-num // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, truth, pred in zip(axes.flat, images, true_boxes, pred_boxes):
        height, width = image.shape[:2]
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        for box in truth:
            ax.add_patch(_rectangle(box, height, width, "lime", "--"))
        for box in pred:
            ax.add_patch(_rectangle(box, height, width, "red"))
        ax.set_title(f"true {len(truth)} / pred {len(pred)}", fontsize=8)
    fig.suptitle(f"{title}\ngreen dashed: ground truth, red: predicted", fontsize=9)
    return _save(fig, path)


def plot_curves(x, series: dict, path: str | Path, xlabel: str, ylabel: str, title: str = "") -> Path:
    """Saves a line plot of several series with error bars.

    Args:
        x: the x values, length X.
        series: name -> (mean `[X]`, spread `[X]`), drawn as a line with error bars.
        path: output PNG file.
        xlabel, ylabel, title: labels.

    Returns:
        The path written.
    """
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, (mean, spread) in series.items():
        ax.errorbar(x, mean, yerr=spread, marker="o", capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
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
