"""PNG figures. matplotlib is imported inside each function (never at import time of tfobj)."""
from __future__ import annotations

import textwrap
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


def _identity_colour(identity) -> tuple:
    """The RGB colour (floats in [0, 1]) of an object identity in the tracking figures, the same in every figure.

    Hues step by the golden ratio's fraction (0.618 of the circle) from one identity to the next, so that any two
    identities within 20 of each other are at least 0.034 of the circle apart in hue (nearby identities far more:
    consecutive ones 0.38), and the brightness alternates between odd and even identities; a palette cycled
    every 10 or 20 (tab10 + Dark2, earlier) gave near twins such as identities 1 and 11, so that a switch between
    them did not show."""
    import colorsys

    hue = (int(identity) * 0.6180339887) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.85, 0.95 if int(identity) % 2 else 0.7)


def _point(ax, row, col, filled: bool = True):
    """A pink cross (filled) or ring (not filled) in a black halo at a (row, col) pixel-index position."""
    from matplotlib import patheffects

    marker = dict(marker="X", markersize=7, markerfacecolor=PRED_STYLE["colour"]) if filled else \
        dict(marker="o", markersize=6, markerfacecolor="none")
    (mark,) = ax.plot([col], [row], linestyle="none", markeredgecolor=PRED_STYLE["colour"], markeredgewidth=1.2,
                      **marker)
    mark.set_path_effects([patheffects.withStroke(linewidth=2.6, foreground="black")])


def plot_detections(
    images: np.ndarray,
    true_boxes: Sequence[np.ndarray] | None,
    pred_boxes: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
    columns: int = 4,
    pred_points: Sequence[np.ndarray] | None = None,
    points_valid: Sequence[np.ndarray] | None = None,
) -> Path:
    """Saves a grid of images with ground-truth (white, dashed) and predicted (pink, solid) boxes, each line in
    a black halo so it shows on any colour; each image's title gives the true and predicted counts.

    Args:
        images: float `[N, H, W, C]` in [0, 1], C = 3 or 1 (grey).
        true_boxes: per image, `[G_i, 4]` normalised boxes; None to draw predictions only.
        pred_boxes: per image, `[P_i, 4]` normalised boxes.
        path: output PNG file.
        title: figure title.
        columns: images per row.
        pred_points: optional, per image, `[Q_i, 2]` predicted points (row, col) in pixel-index units (LAVAE's
            locations, TUSK's keypoints), drawn as pink crosses and counted as found objects.
        points_valid: optional, per image, bool `[Q_i]`: points flagged False (TUSK's slots without a local maximum)
            are drawn as rings and not counted.

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
    points = pred_points if pred_points is not None else [np.zeros((0, 2))] * num
    valid = points_valid if points_valid is not None else [np.ones(len(p), bool) for p in points]
    for ax, image, truth, pred, point, keep in zip(axes.flat, images, truths, pred_boxes, points, valid):
        height, width = image.shape[:2]
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        for box in [] if truth is None else truth:
            ax.add_patch(_rectangle(box, height, width, TRUE_STYLE["colour"], TRUE_STYLE["style"], TRUE_STYLE["width"]))
        for box in pred:
            ax.add_patch(_rectangle(box, height, width, PRED_STYLE["colour"], PRED_STYLE["style"], PRED_STYLE["width"]))
        for (row, col), filled in zip(np.asarray(point, float).reshape(-1, 2), np.asarray(keep, bool)):
            _point(ax, row, col, filled)
        found = len(pred) + int(np.sum(keep))
        counts = f"found {found}" if truth is None else f"true {len(truth)} / found {found}"
        ax.set_title(counts, fontsize=8)
    shown = ["pink solid: found"] if pred_points is None or any(len(b) for b in pred_boxes) else []
    if pred_points is not None:
        shown.append("pink crosses: found" + (", rings: not a local maximum" if points_valid is not None else ""))
    legend = ", ".join((["white dashed: ground truth"] if true_boxes is not None else []) + shown)
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=9)
    return _save(fig, path)


def plot_objects(images: np.ndarray, objects: Sequence[dict], path: str | Path, true_boxes=None,
                 title: str = "", columns: int = 4) -> Path:
    """The figure beside `model.predict_objects(images)`: the images with what it found (and the ground truth's
    boxes, if given), e.g. `tfobj.plot_objects(images, model.predict_objects(images), "found.png")`. Any model's
    objects: boxes (SPAIR, ConnComp) are drawn as boxes, LAVAE's locations and TUSK's keypoints as crosses (TUSK's
    slots without a local maximum, `valid` False, as rings).

    Args:
        images: float `[N, H, W, C]` in [0, 1] (C = 3, or 1 for grey images).
        objects: per image, a dict with "boxes" `[n, 4]`, or "locations" `[n, 2]` (LAVAE), or "keypoints" `[K, 2]`
            (TUSK, with "valid" `[K]`): what `predict_objects` returns.
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
    kinds = [next((key for key in ("boxes", "locations", "keypoints") if key in o), None) for o in objects]
    if None in kinds or len(set(kinds)) > 1:
        raise ValueError("plot_objects needs the dicts of one model's predict_objects, each with 'boxes' (SPAIR, "
                         "ConnComp), 'locations' (LAVAE) or 'keypoints' (TUSK); got keys "
                         f"{sorted({key for o in objects for key in o})}")
    if not objects or kinds[0] == "boxes":
        return plot_detections(images, true_boxes, [o["boxes"] for o in objects], path, title, columns)
    points = [np.asarray(o[kinds[0]], float).reshape(-1, 2) for o in objects]
    valid = [np.asarray(o["valid"], bool) for o in objects] if all("valid" in o for o in objects) else None
    return plot_detections(images, true_boxes, [np.zeros((0, 4))] * len(objects), path, title, columns,
                           pred_points=points, points_valid=valid)


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
                    ax.add_patch(_rectangle(box, height, width, _identity_colour(identity), style, 1.6))
                if t == 0:
                    ax.set_ylabel(f"video {v + 1}\n{label}", fontsize=8)
                if v == 0 and r == 0:
                    ax.set_title(f"frame {t + 1}", fontsize=8)
    legend = "dashed: ground truth, solid: predicted tracks; colour = identity within a row"
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=9)
    return _save(fig, path)


# What `plot_silot_objects` reads from SILOT's outputs, with each one's rank.
SILOT_FIGURE_KEYS = {"reconstruction": 5, "boxes": 4, "ids": 3, "is_new": 3, "z_pres": 3, "appearance": 6, "alpha": 6}
# Ground truth in the SILOT objects figure: thin white dots, which do not compete with the identity colours.
THIN_TRUE_STYLE = dict(colour="#ffffff", style=(0, (1, 1.5)), width=0.9)


def _sprite_tiles(sprites: Sequence[np.ndarray], colours: Sequence, columns: int, rows: int, border: int) -> np.ndarray:
    """One RGB image of `sprites` (each `[h, w, 3]`) on a white grid of `rows` × `columns` cells, row by row, each
    sprite framed by `border` pixels of its colour."""
    height, width = sprites[0].shape[:2] if len(sprites) else (1, 1)
    cell_h, cell_w = height + 2 * border + 1, width + 2 * border + 1  # one white pixel between cells
    image = np.ones((rows * cell_h - 1, columns * cell_w - 1, 3))
    for i, (sprite, colour) in enumerate(zip(sprites, colours)):
        top, left = (i // columns) * cell_h, (i % columns) * cell_w
        image[top:top + cell_h - 1, left:left + cell_w - 1] = colour[:3]
        image[top + border:top + border + height, left + border:left + border + width] = np.clip(sprite, 0, 1)
    return image


def _check_output_dict(function: str, outputs, keys, call: str, note: str = "") -> None:
    """Raises ValueError unless `outputs` is a dict (anything with keys) holding every one of `keys`, the outputs
    of `call` (e.g. "SILOT(videos, training=False)") that `function` draws."""
    if not hasattr(outputs, "keys"):
        raise ValueError(f"{function}: outputs must be the dict {call} returns; got {type(outputs).__name__}")
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise ValueError(f"{function}: outputs lacks {missing}; expected the dict of {call} with keys "
                         f"{list(keys)}{note}")


def plot_silot_objects(videos: np.ndarray, outputs: dict, path: str | Path, true_tracks: Sequence[dict] | None = None,
                       title: str = "", max_frames: int = 8, max_videos: int = 3) -> Path:
    """Saves SILOT's figure of its objects (the supplement's Figs. F1 and F2): per video, a row of input frames
    (with the ground truth's boxes, thin white dots, if given), a row of reconstructed frames with each present
    object's box coloured by its identity (the colours of `plot_tracks`), dashed in the frame where the object was
    discovered and solid where it was propagated, and a row of the present objects' appearances (appearance·alpha),
    one small image per frame, ordered by identity and framed in its colour.

    Args:
        videos: float `[V, T, H, W, 3]` in [0, 1].
        outputs: `SILOT(videos, training=False)` (numpy arrays or tensors), at least "reconstruction"
            `[V, T, H, W, 3]`, "boxes" `[V, T, K, 4]` normalised (y_min, x_min, y_max, x_max), "ids" `[V, T, K]`,
            "is_new" `[V, T, K]`, "z_pres" `[V, T, K]` (an object is present where z_pres > 0.5), "appearance"
            `[V, T, K, h, w, 3]` and "alpha" `[V, T, K, h, w, 1]`.
        path: output PNG file.
        true_tracks: optional, per video {"ids": per frame `[n_t]`, "boxes": per frame `[n_t, 4]`} (the
            "true_tracks" of `tfobj.experiments.common.track_examples`).
        title: figure title.
        max_frames, max_videos: frames and videos shown (the first ones).

    Returns:
        The path written.
    """
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"plot_silot_objects: videos must be [V, T, H, W, 3] (rank 5); got shape {videos.shape}")
    _check_output_dict("plot_silot_objects", outputs, SILOT_FIGURE_KEYS, "SILOT(videos, training=False)")
    out = {key: np.asarray(outputs[key]) for key in SILOT_FIGURE_KEYS}
    for key, rank in SILOT_FIGURE_KEYS.items():
        if out[key].ndim != rank:
            raise ValueError(f"plot_silot_objects: outputs[{key!r}] must have rank {rank}; got shape {out[key].shape}")
        if out[key].shape[:2] != videos.shape[:2]:
            raise ValueError(f"plot_silot_objects: outputs[{key!r}] has [V, T] = {list(out[key].shape[:2])}, but "
                             f"videos has {list(videos.shape[:2])}; the outputs must be those of these videos")
    slots = out["boxes"].shape[2]
    for key in ("ids", "is_new", "z_pres", "appearance", "alpha"):
        if out[key].shape[2] != slots:
            raise ValueError(f"plot_silot_objects: outputs[{key!r}] has {out[key].shape[2]} object slots, but "
                             f"outputs['boxes'] has K = {slots}")
    if out["boxes"].shape[-1] != 4 or out["alpha"].shape[-1] != 1:
        raise ValueError(f"plot_silot_objects: outputs['boxes'] must end in 4 and outputs['alpha'] in 1; got "
                         f"shapes {out['boxes'].shape} and {out['alpha'].shape}")
    if true_tracks is not None and len(true_tracks) != len(videos):
        raise ValueError(f"plot_silot_objects: true_tracks must have one entry per video; got {len(true_tracks)} for "
                         f"{len(videos)} videos")
    if max_frames < 1 or max_videos < 1:
        raise ValueError(f"plot_silot_objects: max_frames and max_videos must be at least 1; got {max_frames} and "
                         f"{max_videos}")
    plt = _pyplot()

    num_videos, frames = min(max_videos, len(videos)), min(max_frames, videos.shape[1])
    present = out["z_pres"][:num_videos, :frames] > 0.5  # [V, T, K]
    sprites = out["appearance"] * out["alpha"]  # [V, T, K, h, w, 3], over black
    # One grid of sprites for the whole figure, so a sprite has one size in every frame.
    most = max(1, int(present.sum(axis=-1).max()))
    tile_columns = int(np.ceil(np.sqrt(most)))
    tile_rows = -(-most // tile_columns)
    border = max(1, round(min(sprites.shape[3:5]) / 12))
    rows = 3 * num_videos
    fig, axes = plt.subplots(rows, frames, figsize=(1.45 * frames + 0.9, 1.55 * rows + 0.8), squeeze=False,
                             layout="constrained")
    height, width = videos.shape[2:4]
    for v in range(num_videos):
        for t in range(frames):
            frame_ax, recon_ax, sprite_ax = axes[3 * v, t], axes[3 * v + 1, t], axes[3 * v + 2, t]
            frame_ax.imshow(np.clip(videos[v, t], 0, 1), interpolation="nearest")
            if true_tracks is not None:
                for box in true_tracks[v]["boxes"][t]:
                    frame_ax.add_patch(_rectangle(box, height, width, THIN_TRUE_STYLE["colour"],
                                                  THIN_TRUE_STYLE["style"], THIN_TRUE_STYLE["width"]))
            recon_ax.imshow(np.clip(out["reconstruction"][v, t], 0, 1), interpolation="nearest")
            order = sorted(np.flatnonzero(present[v, t]), key=lambda k: int(out["ids"][v, t, k]))
            colours = [_identity_colour(out["ids"][v, t, k]) for k in order]
            for k, colour in zip(order, colours):
                recon_ax.add_patch(_rectangle(out["boxes"][v, t, k], height, width, colour,
                                              (0, (3, 2)) if out["is_new"][v, t, k] else "-", 1.6))
            tiles = _sprite_tiles([sprites[v, t, k] for k in order], colours, tile_columns, tile_rows, border)
            sprite_ax.imshow(tiles, interpolation="nearest")
            sprite_ax.set_xlabel(f"{len(order)} object{'' if len(order) == 1 else 's'}", fontsize=7)
            for ax in (frame_ax, recon_ax, sprite_ax):
                ax.set_xticks([]), ax.set_yticks([])
            if t == 0:
                frame_ax.set_ylabel(f"video {v + 1}\ninput", fontsize=8)
                recon_ax.set_ylabel("reconstruction", fontsize=8)
                sprite_ax.set_ylabel("objects", fontsize=8)
            if v == 0:
                frame_ax.set_title(f"frame {t + 1}", fontsize=8)
    legend = ["box colour = identity", "dashed: discovered in this frame, solid: propagated",
              "objects: the present ones' appearance·alpha by identity, framed in its colour"]
    if true_tracks is not None:
        legend.append("white dots: ground truth")
    legend = textwrap.fill("; ".join(legend), width=int(fig.get_figwidth() * 13))  # ≈ characters of 9 pt per inch
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=9)
    return _save(fig, path)


TUSK_FIGURE_KEYS = {"keypoints": 3, "prototype_ids": 2, "valid": 2, "reconstruction": 4}


def plot_tusk_keypoints(images: np.ndarray, outputs: dict, path: str | Path, title: str = "",
                        max_images: int = 8) -> Path:
    """Saves TUSK's keypoint figure: per image (a column), the input with its K keypoints, each labelled with its
    prototype id; the reconstruction; and, for the alpha-blending decoder, the K alpha masks in one picture
    (Σ_k α_k · colour_k, keypoint k's colour as on the input). A keypoint slot that holds no local maximum
    (`valid` False) is drawn as a ring.

    Args:
        images: float `[N, H, W, 3]` in [0, 1].
        outputs: `TUSK(images, training=False)` (numpy arrays or tensors), at least "keypoints" `[N, K, 2]`
            (row, col pixel indices), "prototype_ids" `[N, K]`, "valid" `[N, K]`, "reconstruction"
            `[N, H, W, 3]`; "masks" `[N, K, H, W]` adds the masks row.
        path: output PNG file.
        title: figure title.
        max_images: images shown (the first ones).

    Returns:
        The path written.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) < 1:
        raise ValueError(f"plot_tusk_keypoints: images must be [N, H, W, 3] with N >= 1; got shape {images.shape}")
    _check_output_dict("plot_tusk_keypoints", outputs, TUSK_FIGURE_KEYS, "TUSK(images, training=False)",
                       note=' (and "masks" for alpha blending)')
    expected = dict(TUSK_FIGURE_KEYS, masks=4)
    out = {key: np.asarray(outputs[key]) for key in expected if key in outputs}
    for key, value in out.items():
        if value.ndim != expected[key] or len(value) != len(images):
            raise ValueError(f"plot_tusk_keypoints: outputs[{key!r}] must have rank {expected[key]} and one entry per "
                             f"image ({len(images)}); got shape {value.shape}")
    sizes = {"reconstruction": (out["reconstruction"].shape[1:], images.shape[1:])}  # [H, W, 3]
    if "masks" in out:
        sizes["masks"] = (out["masks"].shape[2:], images.shape[1:3])  # [H, W]
    for key, (got, wanted) in sizes.items():
        if got != wanted:
            raise ValueError(f"plot_tusk_keypoints: outputs[{key!r}] must match the images' size {list(wanted)}; got "
                             f"shape {out[key].shape}")
    slots = out["keypoints"].shape[1]
    if any(out[key].shape[1] != slots for key in ("prototype_ids", "valid")) or out["keypoints"].shape[2] != 2 \
            or ("masks" in out and out["masks"].shape[1] != slots):
        shapes = {key: value.shape for key, value in out.items()}
        raise ValueError(f"plot_tusk_keypoints: outputs['keypoints'] must be [N, K, 2] and prototype_ids, valid "
                         f"(and masks) have the same K; got shapes {shapes}")
    if max_images < 1:
        raise ValueError(f"plot_tusk_keypoints: max_images must be at least 1; got {max_images}")
    from matplotlib import patheffects

    plt = _pyplot()
    count = min(max_images, len(images))
    colours = np.array([_identity_colour(k + 1) for k in range(slots)])  # [K, 3]
    rows = 3 if "masks" in out else 2
    fig, axes = plt.subplots(rows, count, figsize=(max(1.6 * count, 4.8) + 0.9, 1.7 * rows + 0.9), squeeze=False,
                             layout="constrained")
    halo = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    for i in range(count):
        ax = axes[0, i]
        ax.imshow(np.clip(images[i], 0, 1), interpolation="nearest")
        for k in range(slots):
            row, col = out["keypoints"][i, k]
            valid = bool(out["valid"][i, k])
            (mark,) = ax.plot([col], [row], linestyle="none", marker="X" if valid else "o", markersize=7,
                              markerfacecolor=colours[k] if valid else "none", markeredgecolor=colours[k],
                              markeredgewidth=1.2)
            mark.set_path_effects(halo)
            text = ax.annotate(str(int(out["prototype_ids"][i, k])), (col, row), xytext=(4, 3),
                               textcoords="offset points", color=colours[k], fontsize=7, fontweight="bold")
            text.set_path_effects(halo)
        axes[1, i].imshow(np.clip(out["reconstruction"][i], 0, 1), interpolation="nearest")
        if "masks" in out:
            blended = np.einsum("khw,kc->hwc", out["masks"][i], colours)
            axes[2, i].imshow(np.clip(blended, 0, 1), interpolation="nearest")
        for ax in axes[:, i]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("keypoints", fontsize=8)
    axes[1, 0].set_ylabel("reconstruction", fontsize=8)
    legend = ["number = prototype id", "ring: no local maximum in that slot"]
    if "masks" in out:
        axes[2, 0].set_ylabel("alpha masks", fontsize=8)
        legend.append("masks: Σ_k α_k · keypoint k's colour")
    fig.suptitle(_wrapped(fig, [title, "; ".join(legend)]), fontsize=9)
    return _save(fig, path)


def _wrapped(fig, lines) -> str:
    """The non-empty `lines`, each wrapped to the figure's width (≈ 13 characters of 9 pt per inch)."""
    width = int(fig.get_figwidth() * 13)
    return "\n".join(textwrap.fill(line, width=width) for line in lines if line)


def plot_prototypes(prototype_images: np.ndarray, path: str | Path, counts: np.ndarray | None = None,
                    title: str = "") -> Path:
    """Saves TUSK's prototype bank, decoded (`TUSK.decode_prototypes`): one tile per prototype, labelled with its
    id and, given `counts`, with the number of keypoint slots assigned to it; given `counts`, the prototypes no slot
    chose are left out (the title says how many; if no prototype has a slot, all are shown).

    Args:
        prototype_images: float `[M, H, W, 3]` in [0, 1], row m = prototype id m.
        path: output PNG file.
        counts: optional `[M]` non-negative integers, keypoint slots per prototype (e.g. over the test images).
        title: figure title.

    Returns:
        The path written.
    """
    prototype_images = np.asarray(prototype_images)
    if prototype_images.ndim != 4 or prototype_images.shape[0] < 1 or prototype_images.shape[-1] != 3:
        raise ValueError(f"plot_prototypes: prototype_images must be [M, H, W, 3] with M >= 1; got shape "
                         f"{prototype_images.shape}")
    total = len(prototype_images)
    ids = np.arange(total)
    if counts is not None:
        counts = np.asarray(counts)
        if counts.shape != (total,) or not np.all(np.isfinite(counts)) or np.any(counts < 0) \
                or np.any(counts != np.round(counts)):
            raise ValueError(f"plot_prototypes: counts must be [M] = [{total}] non-negative integers, one per "
                             f"prototype; got shape {counts.shape}: {np.array2string(counts, threshold=8)}")
        if np.any(counts > 0):
            ids = ids[counts > 0]
    plt = _pyplot()
    columns = max(1, min(12, int(np.ceil(np.sqrt(1.5 * len(ids))))))
    rows = -(-len(ids) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(max(1.0 * columns, 4.0) + 0.4, 1.15 * rows + 0.9), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, m in zip(axes.flat, ids):
        ax.imshow(np.clip(prototype_images[m], 0, 1), interpolation="nearest")
        ax.set_title(str(m) if counts is None else f"{m} ({int(counts[m])})", fontsize=7)
    note = f"{total} prototypes, each decoded alone at the centre"
    if counts is not None:
        note += "; (n) = keypoint slots assigned"
        note += f"; {total - len(ids)} unused, not shown" if len(ids) < total else \
            ("; no slot assigned to any: all shown" if not np.any(counts > 0) else "")
    fig.suptitle(_wrapped(fig, [title, note]), fontsize=9)
    return _save(fig, path)


def plot_tusk_figures(examples: dict, directory: str | Path, name: str, title: str = "") -> list[Path]:
    """TUSK's two figures from a run's examples (`tfobj.experiments.tusk`: `examples["tusk"]` =
    `figure_examples(...)`): `<directory>/<name>_keypoints.png` (`plot_tusk_keypoints`) and
    `<directory>/<name>_prototypes.png` (`plot_prototypes`). Returns the paths written (none without "tusk")."""
    if "tusk" not in examples:
        return []
    tusk = examples["tusk"]
    directory = Path(directory)
    return [plot_tusk_keypoints(examples["images"], tusk["outputs"], directory / f"{name}_keypoints.png", title),
            plot_prototypes(tusk["prototype_images"], directory / f"{name}_prototypes.png",
                            tusk["prototype_counts"], title)]


def _show(ax, image, label: str = "", size: int = 7):
    """One image on `ax` without axes: `[H, W]` or `[H, W, 1]` in grey, `[H, W, 3]` in colour, clipped to [0, 1]."""
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if label:
        ax.set_title(label, fontsize=size)


def _image_grid(images, path, title: str, labels=None, columns: int = 8) -> Path:
    """`images` `[N, H, W, C]` as a grid of `columns`, each tile titled with `labels[i]` if given."""
    plt = _pyplot()
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.1 * columns + 0.3, 1.2 * rows + 0.8), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.set_axis_on()
        _show(ax, image, "" if labels is None else str(labels[i]))
    fig.suptitle(_wrapped(fig, [title]), fontsize=9)
    return _save(fig, path)


def plot_lavae_figures(examples: dict, directory: str | Path, name: str, title: str = "") -> list[Path]:
    """LAVAE's qualitative figures from a run's examples (`tfobj.experiments.lavae`: `examples["lavae"]` =
    `figure_examples(...)`, `examples["beta_vae"]` = the baseline's prior samples), as the paper's:

    - `<name>_inference.png` (Figure 1; 5 for multi-dSprites): per test image, input, reconstruction, the inferred
      locations (white on black) and the sprite each appearance latent generates;
    - `<name>_samples.png` (Figure 2): images from the prior, with the learned p(n) (LAVAE) or z ~ N(0, I) (the
      β-VAE), titled with n;
    - `<name>_fixed_count.png` (Figure 9): images from LAVAE's prior with p(n) = 1/2 on 4 and on 5;
    - `<name>_disentanglement.png` (Figure 3): a location traversal on a 7-object image, object swaps (original
      reconstruction above, swapped below), appearance traversals along one latent dimension per row.

    Returns the paths written (none if `examples` has neither key). Panels whose arrays are missing
    (`figure_examples` leaves them out when M < 5, no image has n̂ ≥ 2, n̂ = 0 on the 7-object image, or no object
    is found at all) are left out, and a figure with no panel is not written.
    """
    directory, written = Path(directory), []
    if "beta_vae" in examples:
        written.append(_image_grid(examples["beta_vae"]["prior"], directory / f"{name}_samples.png",
                                   f"{title}: samples from the prior, z ~ N(0, I)"))
    if "lavae" not in examples:
        return written
    lv = examples["lavae"]
    plt = _pyplot()
    from scipy import ndimage

    images, counts = lv["images"], np.asarray(lv["num_objects"])
    shown = max(1, min(int(counts.max(initial=0)), lv["sprites"].shape[1]))
    fig, axes = plt.subplots(len(images), 3 + shown, figsize=(1.1 * (3 + shown) + 0.3, 1.2 * len(images) + 0.8),
                             squeeze=False, layout="constrained")
    for b, row in enumerate(axes):
        top = b == 0
        _show(row[0], images[b], "input" if top else "")
        _show(row[1], lv["reconstructions"][b], "reconstruction" if top else "")
        _show(row[2], ndimage.maximum_filter(lv["location_maps"][b], size=3), f"locations (n̂ = {counts[b]})")
        for i, ax in enumerate(row[3:]):
            if i < counts[b]:
                _show(ax, lv["sprites"][b, i], f"sprite {i + 1}" if top else "")
            else:
                ax.set_axis_off()
    fig.suptitle(_wrapped(fig, [title, "inference and reconstruction (posterior mode): input, reconstruction, "
                                       "inferred locations (each pixel drawn 3 × 3), the sprite of each appearance "
                                       "latent"]), fontsize=9)
    written.append(_save(fig, directory / f"{name}_inference.png"))

    written.append(_image_grid(lv["prior"], directory / f"{name}_samples.png",
                               f"{title}: samples from the prior p(z_loc | n) p(z_app | n) p(n), p(n) learned; "
                               f"n above each", labels=[f"n = {n}" for n in lv["prior_num_objects"]]))
    if "fixed_count" in lv:
        written.append(_image_grid(lv["fixed_count"], directory / f"{name}_fixed_count.png",
                                   f"{title}: samples from the prior with p(n) = 1/2 on n = 4 and n = 5",
                                   labels=[f"n = {n}" for n in lv["fixed_count_num_objects"]]))

    rows = []  # (label, the row's images)
    if "location_traversal" in lv:
        rows.append(("7-object test image; object 1's location moved along its row",
                     [lv["location_traversal_image"]] + list(lv["location_traversal"])))
    if "swap_original" in lv:
        rows.append(("reconstructions", list(lv["swap_original"])))
        rows.append(("objects swapped (z_loc sequence rotated by one)", list(lv["swap_swapped"])))
    if "appearance_traversal" in lv:
        values = lv["appearance_values"]
        for d, traversal in zip(lv["appearance_dimensions"], lv["appearance_traversal"]):
            rows.append((f"object 1's z_app[{d}] = {values[0]:g} … {values[-1]:g}", list(traversal)))
    if rows:
        columns = max(len(row_images) for _, row_images in rows)
        fig = plt.figure(figsize=(1.1 * columns + 0.3, 1.4 * len(rows) + 0.8), layout="constrained")
        for (label, row_images), panel in zip(rows, np.atleast_1d(fig.subfigures(len(rows), 1))):
            axes = panel.subplots(1, columns, squeeze=False)[0]
            for ax in axes:
                ax.set_axis_off()
            for ax, image in zip(axes, row_images):
                ax.set_axis_on()
                _show(ax, image)
            panel.suptitle(label, fontsize=7, x=0.01, ha="left")
        fig.suptitle(_wrapped(fig, [title, "disentanglement (posterior mode): location traversal, object swap, "
                                           "appearance traversals"]), fontsize=9)
        written.append(_save(fig, directory / f"{name}_disentanglement.png"))
    return written


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


# The range of each metric of the transfer figure, to which its shaded bands are clipped.
TRANSFER_LIMITS = {"ap": (0.0, 1.0), "count_abs_error": (0.0, np.inf), "count_01_error": (0.0, 1.0)}


def plot_transfer_curves(
    counts: Sequence[int],
    curves: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    title: str = "",
    metrics: Sequence[tuple[str, str]] = (("ap", "AP (IoU 0.1…0.9)"), ("count_abs_error", "count absolute error"),
                                          ("count_01_error", "count 0-1 error")),
    spread_label: str = "",
    limits: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Saves one panel per metric of a score against the test object count (SPAIR's transfer figure).

    Args:
        counts: the test object counts n (x axis).
        curves: per line label (a training condition or a baseline), per metric key, `(mean, spread)`
            with one value per count; the spread is drawn as a shaded band of ± spread, clipped to the metric's range.
        path: output PNG file.
        title: figure title.
        metrics: (key, axis label) per panel, in order.
        spread_label: what the bands are (e.g. "± one standard deviation over 3 repeats"), written on the figure.
        limits: per metric key, its range (default `TRANSFER_LIMITS`: AP and the 0-1 error in [0, 1], the absolute
            error >= 0); a metric without one is not clipped.

    Returns:
        The path written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(counts)
    limits = TRANSFER_LIMITS if limits is None else limits
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        low_limit, high_limit = limits.get(key, (-np.inf, np.inf))
        for name, scores in curves.items():
            mean, spread = (np.asarray(v, dtype=float) for v in scores[key])
            (line,) = ax.plot(counts, mean, marker="o", markersize=3, label=name)
            ax.fill_between(counts, np.clip(mean - spread, low_limit, high_limit),
                            np.clip(mean + spread, low_limit, high_limit), color=line.get_color(), alpha=0.2,
                            linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("number of digits in the test image")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    bands = f"shaded: {spread_label}" if spread_label else ""
    if title or bands:
        fig.suptitle("\n".join(text for text in (title, bands) if text), fontsize=9)
    return _save(fig, path)
