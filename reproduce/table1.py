"""tfobj's headline table: one row per system on its main benchmark, ours beside the published number.

    python reproduce/table1.py                      # quick mode: CPU, minutes, cut-down data (says what it cuts)
    python reproduce/table1.py --mode full          # the papers' protocols and sizes
    python reproduce/table1.py --only conncomp_detection --set conncomp_detection.data.num_test_images=200

Writes <out>/table1.md, <out>/results.json (resolved config, command, git commit, package versions,
wall time in all and per row, every metric), one PNG per row of test images with true and predicted boxes, and
the figures some rows add (SILOT's objects, TUSK's keypoints and prototypes, LAVAE's Figures 1-3 and 9, the β-VAE's samples).
Published numbers come from reproduce/published.toml (with their sources); see docs/reproducing.md.
A row is one entry in ROWS (its experiment config and run function), its [quick] cuts in
configs/table1.toml and its published numbers in reproduce/published.toml.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)

from tfobj import cli, figures  # noqa: E402
from tfobj.data import ScatteredShapesVideoConfig  # noqa: E402
from tfobj.data.experiment_data import VideoData  # noqa: E402
from tfobj.experiments import conncomp, lavae, silot, spair  # noqa: E402
from tfobj.experiments import tusk  # noqa: E402

# name: (the row's experiment config in full mode, the function that runs it).
ROWS = {
    "spair": (spair.SPAIRExperiment, spair.run_spair),
    "conncomp_detection": (conncomp.ConnCompDetectionExperiment, conncomp.run_conncomp_detection),
    "conncomp_tracking_mnist": (conncomp.ConnCompTrackingExperiment, conncomp.run_conncomp_tracking),
    # SILOT's Scattered Shapes runs: 96x96 frames, the "1-10 shapes" condition, 5 px/frame.
    "conncomp_tracking_shapes": (
        lambda: conncomp.ConnCompTrackingExperiment(data=VideoData(
            scene=ScatteredShapesVideoConfig(image_size=(96, 96), max_shapes=10), num_train_videos=1000,
            num_val_videos=0, num_test_videos=1000)),
        conncomp.run_conncomp_tracking),
    "silot": (silot.SILOTExperiment, silot.run_silot),
    "lavae": (lavae.LAVAEExperiment, lavae.run_lavae),
    "beta_vae": (lavae.BetaVAEExperiment, lavae.run_beta_vae),
    "tusk_mnist_hard": (tusk.TUSKMNISTHardExperiment, tusk.run_tusk_mnist_hard),
    "tusk_tetrominoes": (tusk.TUSKTetrominoesExperiment, tusk.run_tusk_tetrominoes),
}
Table1Config = cli.rows_config("Table1Config", {name: factory for name, (factory, _) in ROWS.items()})


def format_number(value) -> str:
    return "figure only" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def markdown_table(results: dict, published: dict) -> str:
    lines = ["| system | benchmark | metric | ours | published | gap | source |", "|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        paper = published[name]
        for metric, paper_value in paper["metrics"].items():
            ours = result["metrics"][metric]
            gap = "n/a" if math.isnan(paper_value) else f"{ours - paper_value:+.3f}"
            lines.append(
                f"| {paper['system']} ({result['setting']}) | {paper['benchmark']} | {metric} "
                f"| {ours:.3f} | {format_number(paper_value)} | {gap} | {paper['source']} |"
            )
    return "\n".join(lines)


def threshold_table(results: dict, published: dict) -> str:
    """The detection rows' AP at each IoU threshold (its mean is the table's "ap"), or "" if no row has them."""
    rows = {name: result["ap_by_threshold"] for name, result in results.items() if "ap_by_threshold" in result}
    if not rows:
        return ""
    thresholds = list(next(iter(rows.values())))
    lines = ["AP at each IoU threshold (the mean of these is the table's ap):", "",
             "| system | " + " | ".join(thresholds) + " |", "|---|" + "---|" * len(thresholds)]
    for name, values in rows.items():
        lines.append(f"| {published[name]['system']} | " + " | ".join(f"{values[t]:.3f}" for t in thresholds) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "table1", argv, rows=list(ROWS))
    config, full = cli.load(args, Table1Config)
    published = cli.published("table1")
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    results = {}
    for name in args.only:
        logging.info("=== %s ===", name)
        row_start = time.time()
        result = ROWS[name][1](getattr(config, name))
        result["wall_seconds"] = time.time() - row_start  # data, training, test and figures of this row
        examples, title = result.pop("examples"), f"{name} ({result['setting']}), test"
        if "videos" in examples:
            figures.plot_tracks(examples["videos"], examples["true_tracks"], examples["pred_tracks"],
                                args.out / f"{name}.png", title=title)
            if "outputs" in examples:  # SILOT's objects figure (its supplement's Figs. F1, F2)
                figures.plot_silot_objects(examples["videos"], examples["outputs"], args.out / f"{name}_objects.png",
                                           true_tracks=examples["true_tracks"], title=title)
        else:
            figures.plot_detections(examples["images"], examples["true_boxes"], examples["pred_boxes"],
                                    args.out / f"{name}.png", title=title)
            figures.plot_tusk_figures(examples, args.out, name, title)  # TUSK's keypoints and prototypes
            # LAVAE's Figures 1-3, 9 and the β-VAE's samples (not all of test images: no ", test")
            figures.plot_lavae_figures(examples, args.out, name, f"{name} ({result['setting']})")
        results[name] = result

    header = f"# tfobj table 1 ({args.mode} mode)\n" + cli.quick_header(args.mode, config, full, only=args.only)
    table = header + "\n" + markdown_table(results, published) + "\n"
    by_threshold = threshold_table(results, published)
    if by_threshold:
        table += "\n" + by_threshold
    table += "\nWall time per row (data, training, test, figures): " + ", ".join(
        f"{name} {result['wall_seconds'] / 60:.1f} min" for name, result in results.items()) + ".\n"
    print(table)
    (args.out / "table1.md").write_text(table)
    record = cli.write_results(args, config, time.time() - start, rows=results)
    logging.info("wrote %s", args.out)
    return record


if __name__ == "__main__":
    cli.entry(main)
