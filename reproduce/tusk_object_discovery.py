"""TUSK object discovery: foreground ARI on Tetrominoes; CLEVR6/CLEVR10 as the TUSK appendix's Table 8 (ARI and
the prototypes' shape, colour and size accuracies) when you have DeepMind's CLEVR (with masks) TFRecord file.

    python reproduce/tusk_object_discovery.py                      # quick mode: Tetrominoes (CLEVR needs the file)
    python reproduce/tusk_object_discovery.py --mode full          # Table 10's settings (GPU; days on a CPU)
    python reproduce/tusk_object_discovery.py --only clevr6 --mode full \\
        --set clevr6.data.path=/data/clevr_with_masks_train.tfrecords

Rows: `tetrominoes` (procedural Tetrominoes, tfobj.data.tetrominoes; no download) and `clevr6` (trained on
CLEVR6, scored on CLEVR6 and CLEVR10; needs the file at clevr6.data.path, default
data/clevr_with_masks_train.tfrecords — without it the row is skipped with a message naming the file).
Writes <out>/tusk_object_discovery.md, results.json and one PNG per row (test images, boxes at the keypoints).
Published numbers: reproduce/published.toml [tusk_object_discovery.*]; docs/tusk.md for what quick mode cuts.
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
from tfobj.experiments import tusk  # noqa: E402

ROWS = {
    "tetrominoes": (tusk.TUSKTetrominoesExperiment, tusk.run_tusk_tetrominoes),
    "clevr6": (tusk.TUSKCLEVRExperiment, tusk.run_tusk_clevr),
}
ObjectDiscoveryConfig = cli.rows_config("ObjectDiscoveryConfig", {name: factory for name, (factory, _) in ROWS.items()})


def markdown_table(results: dict, published: dict) -> str:
    lines = ["| row | metric | ours | published | gap | source |", "|---|---|---|---|---|---|"]
    for name, result in results.items():
        paper = published[name]
        for metric, ours in result["metrics"].items():
            value = paper["metrics"].get(metric, math.nan)
            shown = "not published" if math.isnan(value) else f"{value:.3f}"
            gap = "n/a" if math.isnan(value) else f"{ours - value:+.3f}"
            lines.append(f"| {name} ({result['setting']}) | {metric} | {ours:.3f} | {shown} | {gap} "
                         f"| {paper['source']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "tusk_object_discovery", argv, rows=list(ROWS))
    config, full = cli.load(args, ObjectDiscoveryConfig)
    published = cli.published("tusk_object_discovery")
    args.out.mkdir(parents=True, exist_ok=True)
    start, results, skipped = time.time(), {}, {}
    for name in args.only:
        row = getattr(config, name)
        if name == "clevr6":
            try:
                row.data.check_exists()
            except FileNotFoundError as error:
                logging.warning("skipping %s: %s", name, error)
                skipped[name] = str(error)
                continue
        logging.info("=== %s ===", name)
        result = ROWS[name][1](row)
        examples = result.pop("examples")
        figures.plot_detections(examples["images"], examples["true_boxes"], examples["pred_boxes"],
                                args.out / f"{name}.png", title=f"TUSK {name} ({result['setting']}), test keypoints")
        figures.plot_tusk_figures(examples, args.out, name, f"TUSK {name} ({result['setting']}), test")
        results[name] = result
    header = f"# TUSK object discovery ({args.mode} mode)\n" + cli.quick_header(args.mode, config, full, only=args.only)
    notes = "".join(f"\nSkipped {name}: {why}\n" for name, why in skipped.items())
    table = header + "\n" + markdown_table(results, published) + "\n" + notes
    print(table)
    (args.out / "tusk_object_discovery.md").write_text(table)
    record = cli.write_results(args, config, time.time() - start, rows=results, skipped=skipped)
    logging.info("wrote %s", args.out)
    return record


if __name__ == "__main__":
    cli.entry(main)
