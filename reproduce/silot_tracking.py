"""SILOT's main figure (Fig. 5, Scattered MNIST) as a table and a plot, its Scattered Shapes figure, and its
prior-propagation experiment (supplement G.1): MOTA, AP and count absolute error of SILOT and ConnComp on test videos
with exactly n objects, mean ± 95% confidence interval (Student t) over repeats.

    python reproduce/silot_tracking.py                   # quick mode (CPU): parts mnist and prior, 1 repeat
    python reproduce/silot_tracking.py --only shapes     # quick mode, Scattered Shapes (not run by default in quick)
    python reproduce/silot_tracking.py --mode full       # the paper's protocol, all three parts (GPU)

Parts (`--only`):
  mnist   Fig. 5. Per repeat, SILOT trained once on Scattered MNIST videos (48×48, 8 frames; supplement D.1) with
          1–6 digits (full mode also a second SILOT on 1–12 digits: `mnist.training_counts`), and ConnComp's τ tuned
          once for MOTA on training videos with 1–6 digits (as `run_conncomp_tracking`); both tested on the same
          `mnist.silot.data.num_test_videos` videos with exactly n digits, for each n in `mnist.counts` (full: 1..12
          and 1,000 videos each, D.1; quick: 1, 3, 6, 9, 12 and 200 each).
  prior   G.1 (the supplement's Fig. G3). The mnist part's SILOT models on the same test videos, called with
          `prior_from_frame = mnist.prior_from_frame` (3): frames 0–2 as usual, then discovery off and the learned
          prior propagating the objects without seeing the frames; MOTA and AP on frames 3–7 only ("computed only on
          the final 5 frames"), beside the normal posterior's on the same frames. The mnist part's SILOT is trained
          with the learned prior (`learned_prior = true`: the library default, and set in quick mode), so one
          training serves both parts; `--only prior` trains it all the same, and skips ConnComp.
  shapes  The Scattered Shapes figure: as mnist on Scattered Shapes videos (96×96, 8 frames, 5 px per frame; D.2),
          SILOT trained on 1–10 and on 21–30 shapes (the original code's conditions), tested on n = 1, 5, 10, ..., 35
          shapes (the generator places 35 shapes of ~14 px in 96×96 frames with the first-frame overlap limit; checked).
          Full mode: K = 36 slots, batch 8 and attention σ = 0.15 (the original code's shapes settings). Full mode
          runs it by default; quick mode only with `--only shapes`.

Metrics, per n, system and repeat: MOTA (CLEAR MOT, a match needs IoU ≥ 0.5) and the count absolute error (mean over
frames of |#tracked − #true|), `tracking_scores`; AP (IoU 0.1…0.9, SPAIR's), `detection_scores` over all test frames,
each frame one image whose detections are the tracked objects' boxes scored by their presence probability (ConnComp:
1 each; AP's stable sort then ranks them in frame order), as Fig. 5's AP over all frames. SILOT is evaluated in the
posterior mode (z_pres hard, no noise; the original sampled z_pres for MNIST). Repeats use seeds 0, 1, ... for the
training and test data and for SILOT's initialisation and noise. Full mode: 6 repeats for mnist (and prior), 4 for
shapes, the original plotting code's `n_repeats` (e2crawfo/silot, branch aaai_2020, `silot/plot/gen_plots.py`;
the supplement gives none). ConnComp's τ is tuned once per repeat, on the
training condition; the original tuned it per test count and per metric.

The paper shows these results as figures only (no numbers were published; docs/reproducing.md), so the tables have no
published column. Writes <out>/silot_tracking.md (a table per part), results.json (per part, system, metric and n the
value of every repeat, and each SILOT run's steps and early stops, each τ), silot_tracking.png (mnist: MOTA, AP, count
error vs n), silot_tracking_prior.png and silot_tracking_shapes.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)
DEFAULT_CONFIG = ROOT / "configs" / "silot_tracking.toml"

from reproduce.spair_comparison import mean_and_ci  # noqa: E402  (the comparison figures' error bars, shared)
from tfobj import cli  # noqa: E402
from tfobj.data.experiment_data import VideoData  # noqa: E402
from tfobj.data.scattered import ScatteredShapesVideoConfig  # noqa: E402
from tfobj.experiments.common import detection_scores, tracking_scores  # noqa: E402
from tfobj.experiments.conncomp import ConnCompTrackingExperiment, tune_tracker  # noqa: E402
from tfobj.experiments.silot import SILOTExperiment, fit_silot  # noqa: E402
from tfobj.models.silot.silot_config import SILOT_TRAINING, SILOTConfig  # noqa: E402

PARTS = ("mnist", "prior", "shapes")
METRICS = ("mota", "ap", "count_abs_error")
PRIOR_METRICS = ("mota", "ap")  # Fig. G3's panels
METRIC_LABELS = {"mota": "MOTA", "ap": "AP", "count_abs_error": "count abs. error"}
METRIC_RANGES = {"mota": (-np.inf, 1.0), "ap": (0.0, 1.0), "count_abs_error": (0.0, np.inf)}  # error bars clipped


def _shapes_part() -> "PartConfig":
    """The Scattered Shapes figure's defaults: 96×96 videos (D.2), SILOT trained on 1–10 and 21–30 shapes, tested on
    1, 5, ..., 35 (the original code's conditions: e2crawfo/silot, branch aaai_2020, its shapes experiments)."""
    scene = ScatteredShapesVideoConfig(image_size=(96, 96), min_shapes=1, max_shapes=10)
    model = replace(SILOTConfig(), num_objects=36, attention_std=0.15)  # original code: n_prop_objects 36, σ 0.15
    silot = SILOTExperiment(model=model, data=VideoData(scene=scene, num_train_videos=60000, num_val_videos=1000,
                                                        num_test_videos=1000),
                            train=replace(SILOT_TRAINING, batch_size=8))  # original code: batch 8 at 96×96
    # ConnComp's τ tuned on the table-1 row's Scattered Shapes condition (1–10 shapes, 1,000 videos).
    conncomp = ConnCompTrackingExperiment(data=VideoData(scene=scene, num_train_videos=1000, num_val_videos=0,
                                                         num_test_videos=0))
    return PartConfig(counts=(1, 5, 10, 15, 20, 25, 30, 35), training_counts=((1, 10), (21, 30)), repeats=4,
                      prior_from_frame=None, silot=silot, conncomp=conncomp)


@dataclass(frozen=True)
class PartConfig:
    """One figure: per repeat, SILOT trained on each of `training_counts` and ConnComp tuned once; both tested on
    videos with exactly n objects for each n in `counts`. Defaults: Fig. 5 (Scattered MNIST, supplement D.1).

    The test videos are `silot.data`'s scene with n objects (its test split, `silot.data.num_test_videos` per n,
    seed = the repeat); each training condition replaces the scene's count range (train and val splits).
    `conncomp.data`'s training split tunes τ (seed = the repeat); its test split is not used.
    """

    counts: tuple[int, ...] = tuple(range(1, 13))  # Fig. 5's x axis: 1..12 digits
    training_counts: tuple[tuple[int, int], ...] = ((1, 6), (1, 12))  # D.1: SILOT trained on 1–6 and on 1–12 digits
    repeats: int = 6  # the original plotting code's n_repeats for Scattered MNIST (the supplement gives none)
    prior_from_frame: int | None = 3  # G.1: the regular network on the first 3 frames, the prior on the last 5
    silot: SILOTExperiment = field(default_factory=SILOTExperiment)  # learned_prior on: SILOTConfig's default
    conncomp: ConnCompTrackingExperiment = field(default_factory=ConnCompTrackingExperiment)

    def __post_init__(self):
        # Checked when the config is loaded, before any data is generated or any model built.
        if not self.counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.counts):
            raise ValueError(f"counts must be a non-empty list of object counts >= 1 (MOTA needs true objects); "
                             f"got {self.counts}")
        if not self.training_counts or any(not 1 <= low <= high for low, high in self.training_counts):
            raise ValueError(f"training_counts must be a non-empty list of [min, max] object counts, 1 <= min <= max; "
                             f"got {self.training_counts}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an integer >= 1; got {self.repeats!r}")
        scene, tuning = self.silot.data.scene, self.conncomp.data.scene
        if type(tuning) is not type(scene) or tuning.image_size != scene.image_size:
            raise ValueError(f"conncomp.data.scene ({type(tuning).__name__} {tuning.image_size}) must be the kind "
                             f"and size of silot.data.scene ({type(scene).__name__} {scene.image_size}): ConnComp is "
                             "tested on SILOT's test videos")
        if self.conncomp.data.num_train_videos < 1:
            raise ValueError("conncomp.data.num_train_videos must be at least 1 (the videos τ is tuned on)")
        if self.prior_from_frame is not None and not 1 <= self.prior_from_frame < scene.num_frames:
            raise ValueError(f"prior_from_frame must be in 1..{scene.num_frames - 1} (frames before it discover the "
                             f"objects, frames from it on are scored); got {self.prior_from_frame}")
        for low, high in tuple(self.training_counts) + tuple((n, n) for n in self.counts):
            with_counts(scene, low, high)  # the scene's own checks: do that many objects fit the frame?


@dataclass(frozen=True)
class TrackingConfig:
    """The three parts' experiments: `mnist` (Fig. 5, and G.1's prior propagation with its models) and `shapes`."""

    mnist: PartConfig = field(default_factory=PartConfig)
    shapes: PartConfig = field(default_factory=_shapes_part)


def with_counts(scene, low: int, high: int):
    """`scene` (Scattered MNIST or Shapes videos) with low..high objects per video."""
    if isinstance(scene, ScatteredShapesVideoConfig):
        return replace(scene, min_shapes=low, max_shapes=high)
    return replace(scene, min_digits=low, max_digits=high)


def system_name(low: int, high: int) -> str:
    return f"silot_{low}-{high}"


def label(system: str, prior_from_frame: int | None = None) -> str:
    """The legend of a system: 'silot_1-6' -> 'SILOT (1–6)', 'silot_1-6/prior' -> 'SILOT (1–6), prior from frame 3',
    'silot_1-6/posterior' -> 'SILOT (1–6), posterior', 'conncomp' -> 'ConnComp'."""
    if system == "conncomp":
        return "ConnComp"
    name, _, variant = system.partition("/")
    text = "SILOT ({})".format(name.removeprefix("silot_").replace("-", "–"))
    if variant == "prior":
        return f"{text}, prior from frame {prior_from_frame}"
    return f"{text}, {variant}" if variant else text


# --------------------------------------------------------------------------- scoring


def frame_truth(videos: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's true boxes as one image's: boxes `[N·T, K, 4]` with each frame's objects first, counts `[N·T]`
    (from "track_ids" `[N, T, K]`, 0 = no object, and "boxes" `[N, T, K, 4]`)."""
    valid = videos["track_ids"] > 0  # [N, T, K]
    order = np.argsort(~valid, axis=-1, kind="stable")  # the frame's objects first, in slot order
    boxes = np.take_along_axis(videos["boxes"], order[..., None], axis=2)  # [N, T, K, 4]
    return boxes.reshape(-1, *boxes.shape[2:]), valid.sum(axis=-1).reshape(-1)


def frame_detections(tracks) -> list[dict]:
    """Every frame of every track as one image's detections, video-major: "boxes" `[n_t, 4]` and "scores" `[n_t]`
    (a `SILOTTrack`'s presence probabilities; 1 for a track without scores, ConnComp's)."""
    detections = []
    for track in tracks:
        scores = getattr(track, "scores", None)
        if scores is None:
            scores = [np.ones(len(boxes), np.float32) for boxes in track.boxes]
        detections += [{"boxes": boxes, "scores": score} for boxes, score in zip(track.boxes, scores)]
    return detections


def evaluate(tracks, videos: dict, first_frame: int = 0) -> dict:
    """MOTA, AP and count absolute error of `tracks` (one per video; `.ids`, `.boxes` per frame) against `videos`'
    ground truth, on frames `first_frame`..T−1 only (G.1: the frames the prior propagates)."""
    if first_frame:
        tracks = [replace(track, **{f.name: getattr(track, f.name)[first_frame:] for f in dataclasses.fields(track)})
                  for track in tracks]
        videos = {key: videos[key][:, first_frame:] for key in ("track_ids", "boxes")}
    tracking = tracking_scores(tracks, videos)
    true_boxes, num_true = frame_truth(videos)
    ap = detection_scores(frame_detections(tracks), true_boxes, num_true)["ap"]
    return {"mota": float(tracking["mota"]), "ap": float(ap), "count_abs_error": float(tracking["count_abs_error"])}


# --------------------------------------------------------------------------- the runs


def train_silot(experiment: SILOTExperiment, counts: tuple[int, int], repeat: int):
    """SILOT trained on videos with counts[0]..counts[1] objects (`fit_silot`: curriculum, early stops, the best
    validation MOTA's weights), data and initialisation seeded by the repeat. Returns (model, run record)."""
    data = replace(experiment.data, scene=with_counts(experiment.data.scene, *counts), seed=repeat)
    train = replace(experiment.train, seed=repeat)
    result, stops = fit_silot(experiment.model, train, data.load("train")["videos"], data.load("val"))
    steps = result.history[-1]["step"] if result.history else 0
    return result.model, {"repeat": repeat, "steps": steps, "best_step": result.best_step,
                          "best_val_mota": result.best_value, "early_stops": list(stops.stops)}


def tune_conncomp(experiment: ConnCompTrackingExperiment, repeat: int):
    """ConnComp's tracker with τ tuned for MOTA on the training split seeded by the repeat (`tune_tracker`, the
    table-1 row's search). Returns (tracker, τ)."""
    tracker, threshold, _ = tune_tracker(replace(experiment, data=replace(experiment.data, seed=repeat)))
    return tracker, threshold


def _add(scores: dict, system: str, n: int, values: dict, metrics) -> None:
    for metric in metrics:
        scores.setdefault(system, {}).setdefault(metric, {}).setdefault(n, []).append(values[metric])


def run_part(part: PartConfig, name: str, sweep: bool = True, prior: bool = False) -> dict:
    """One figure's runs. `sweep`: every system on every n (the figure); `prior`: G.1 on the same videos.

    Returns:
        {name: part result} and, with `prior`, {"prior": part result}; a part result holds "counts", "frames" (the
        scored frames), "repeats", "systems" ({system: {metric: {n: [value per repeat]}}}) and "runs" ({system:
        [per repeat: SILOT's steps, best step and early stops; ConnComp's τ]}).
    """
    frames = part.silot.data.scene.num_frames
    scores, prior_scores, runs = {}, {}, {}
    for repeat in range(part.repeats):
        models = {}
        for low, high in part.training_counts:
            logging.info("=== %s, repeat %d: SILOT on %d-%d objects ===", name, repeat, low, high)
            models[system_name(low, high)], run = train_silot(part.silot, (low, high), repeat)
            runs.setdefault(system_name(low, high), []).append(run)
        if sweep:
            tracker, threshold = tune_conncomp(part.conncomp, repeat)
            runs.setdefault("conncomp", []).append({"repeat": repeat, "threshold": threshold})
        for n in part.counts:
            data = replace(part.silot.data, scene=with_counts(part.silot.data.scene, n, n), seed=repeat)
            test = data.load("test")  # "videos" [V, T, H, W, 3], "track_ids" [V, T, K'], "boxes" [V, T, K', 4]
            for system, model in models.items():
                tracks = model.predict_objects(test["videos"])
                if sweep:
                    _add(scores, system, n, evaluate(tracks, test), METRICS)
                if prior:  # G.1: the prior from frame f on, and the posterior, both scored on frames f..T-1
                    first = part.prior_from_frame
                    found = model.predict_objects(test["videos"], prior_from_frame=first)
                    _add(prior_scores, f"{system}/prior", n, evaluate(found, test, first), PRIOR_METRICS)
                    _add(prior_scores, f"{system}/posterior", n, evaluate(tracks, test, first), PRIOR_METRICS)
            if sweep:
                _add(scores, "conncomp", n, evaluate(tracker.track(test["videos"]), test), METRICS)
            logging.info("%s, repeat %d, n = %d: %s", name, repeat, n, {
                system: {metric: round(values[n][-1], 3) for metric, values in per_metric.items()}
                for system, per_metric in {**scores, **prior_scores}.items()})
    results = {}
    common = {"counts": list(part.counts), "repeats": part.repeats}
    if sweep:
        results[name] = dict(common, frames=list(range(frames)), systems=scores, runs=runs)
    if prior:
        silot_runs = {system: value for system, value in runs.items() if system != "conncomp"}
        results["prior"] = dict(common, frames=list(range(part.prior_from_frame, frames)), systems=prior_scores,
                                runs=silot_runs, prior_from_frame=part.prior_from_frame)
    return results


# --------------------------------------------------------------------------- table and figure


def cell(values) -> str:
    """"mean ± half-width of the 95% t-interval"; the mean alone for one repeat (no interval to give)."""
    if len(values) < 2:
        return f"{float(np.mean(values)):.3f}"
    return "{:.3f} ± {:.3f}".format(*mean_and_ci(values))


def markdown_table(result: dict, metrics, count_label: str, prior_from_frame: int | None = None) -> str:
    """Rows n, columns system × metric, each "mean ± half-width of the 95% t-interval"."""
    systems = list(result["systems"])
    head = [count_label] + [f"{label(s, prior_from_frame)} {METRIC_LABELS[m]}" for s in systems for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in result["counts"]:
        cells = [cell(result["systems"][s][m][n]) for s in systems for m in metrics]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_part(result: dict, metrics, path: Path, count_label: str, title: str,
              prior_from_frame: int | None = None) -> Path:
    """One panel per metric against n, a line per system with the 95% t-interval as error bars, clipped to the
    metric's range (MOTA ≤ 1, AP in [0, 1], count error ≥ 0). (tfobj.figures.plot_curves draws one panel only.)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(result["counts"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        low_limit, high_limit = METRIC_RANGES[metric]
        for system, per_metric in result["systems"].items():
            mean, half = np.array([mean_and_ci(per_metric[metric][n]) for n in result["counts"]]).T  # [X] each
            low, high = np.clip(mean - half, low_limit, high_limit), np.clip(mean + half, low_limit, high_limit)
            spread = np.maximum(np.stack([mean - low, high - mean]), 0.0)  # [2, X]
            ax.errorbar(counts, mean, yerr=spread, marker="o", markersize=3, capsize=3,
                        label=label(system, prior_from_frame))
        if metric == "ap":
            ax.set_ylim(-0.03, 1.03)
        ax.set_xticks(counts)
        ax.set_xlabel(count_label)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}\nerror bars: 95% t-interval over {result['repeats']} repeat(s), clipped to the metric's "
                 "range", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _describe(part: PartConfig) -> tuple[str, str]:
    """(the objects' name for the count column, the test videos in words)."""
    scene = part.silot.data.scene
    kind = "shapes" if isinstance(scene, ScatteredShapesVideoConfig) else "digits"
    height, width = scene.image_size
    videos = (f"Scattered {'Shapes' if kind == 'shapes' else 'MNIST'} videos {height}×{width}, {scene.num_frames} "
              f"frames, {part.silot.data.num_test_videos} test videos per n")
    return f"# {kind}", videos


def write_tables_and_figures(config: TrackingConfig, full: TrackingConfig, mode: str, results: dict, out: Path,
                             only) -> str:
    """Writes <out>/silot_tracking.md and a PNG per part; returns the markdown."""
    sections = []
    for name in PARTS:
        if name not in results:
            continue
        result = results[name]
        part = config.shapes if name == "shapes" else config.mnist
        count_label, videos = _describe(part)
        trained = ", ".join(f"{low}–{high}" for low, high in part.training_counts)
        if name == "prior":
            first, last = result["frames"][0], result["frames"][-1]
            figure = f"Prior propagation (SILOT G.1): the learned prior from frame {first}, frames {first}–{last} scored"
            title = (f"Prior propagation (SILOT supplement G.1, Fig. G3): discovery off and the learned prior from "
                     f"frame {first}; MOTA and AP on frames {first}–{last} only, against the posterior on the same "
                     f"frames")
            metrics, png = PRIOR_METRICS, "silot_tracking_prior.png"
        else:
            figure = "Scattered MNIST (SILOT Fig. 5)" if name == "mnist" else "Scattered Shapes (SILOT)"
            title = (f"{figure}: MOTA, AP, count abs. error on all {len(result['frames'])} frames; ConnComp's τ "
                     f"tuned for MOTA on {part.conncomp.data.num_train_videos} training videos per repeat")
            metrics, png = METRICS, "silot_tracking.png" if name == "mnist" else "silot_tracking_shapes.png"
        sections.append(f"## {title}\n\n{videos}; SILOT trained on {trained} {count_label[2:]}.\n\n"
                        + markdown_table(result, metrics, count_label, part.prior_from_frame))
        plot_part(result, metrics, out / png, f"{count_label} in the test video",
                  f"{figure}\n{videos}; SILOT trained on {trained} {count_label[2:]} ({mode} mode)",
                  part.prior_from_frame)
    repeats = sorted({results[name]["repeats"] for name in results})
    header = (f"# SILOT tracking ({mode} mode): mean ± 95% CI (Student t) over {'/'.join(map(str, repeats))} "
              "repeat(s)\n\nPublished: figures only (SILOT, AAAI 2020: Fig. 5, the Scattered Shapes figure, supplement "
              "Fig. G3); no numbers to compare with.\n")
    header += cli.quick_header(mode, config, full, only=only)
    table = header + "\n" + "\n\n".join(sections) + "\n"
    (out / "silot_tracking.md").write_text(table)
    return table


# --------------------------------------------------------------------------- command line


def selected_parts(mode: str, only: list[str], argv) -> list[str]:
    """`--only`'s parts; without `--only`, every part, but shapes only in full mode."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--only", action="append")
    if probe.parse_known_args(argv)[0].only is not None:
        return [part for part in PARTS if part in only]
    return [part for part in PARTS if mode == "full" or part != "shapes"]


def _jsonable(results: dict) -> dict:
    """The results with string keys for n (JSON object keys)."""
    return {name: dict(result, systems={system: {metric: {str(n): values for n, values in per_n.items()}
                                                 for metric, per_n in per_metric.items()}
                                        for system, per_metric in result["systems"].items()})
            for name, result in results.items()}


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "silot_tracking", argv, rows=PARTS)
    config, full = cli.load(args, TrackingConfig)
    parts = selected_parts(args.mode, args.only, argv)
    if "prior" in parts and (config.mnist.prior_from_frame is None or not config.mnist.silot.model.learned_prior):
        raise cli.ConfigError("the prior part needs mnist.prior_from_frame and mnist.silot.model.learned_prior = true "
                              "(G.1 propagates with the learned prior); or run --only mnist")
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    results = {}
    if "mnist" in parts or "prior" in parts:
        results.update(run_part(config.mnist, "mnist", sweep="mnist" in parts, prior="prior" in parts))
    if "shapes" in parts:
        results.update(run_part(config.shapes, "shapes"))
    only = sorted({"shapes" if part == "shapes" else "mnist" for part in parts})  # the config fields they use
    print(write_tables_and_figures(config, full, args.mode, results, args.out, only))
    return cli.write_results(args, config, time.time() - start, parts=parts, results=_jsonable(results))


if __name__ == "__main__":
    cli.entry(main)
