"""tfobj's headline table: one row per system on its main benchmark, ours beside the published number.

    python reproduce/table1.py                      # quick mode: CPU, minutes, cut-down data (says what it cuts)
    python reproduce/table1.py --mode full          # the papers' protocols and sizes
    python reproduce/table1.py --only conncomp_detection --set conncomp_detection.num_test_images=200

Writes <out>/table1.md, <out>/results.json (resolved config, command, git commit, package versions,
wall time, every metric) and one PNG per row of test images with true and predicted boxes.
Published numbers come from reproduce/published.toml (with their sources); see docs/reproducing.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from tfobj import experiment, figures  # noqa: E402
from tfobj.config import describe_changes, load_config, to_dict  # noqa: E402


@dataclass(frozen=True)
class Table1Config:
    """Every row's experiment; defaults are the papers' protocols (full mode)."""

    conncomp_detection: experiment.ConnCompDetectionExperiment = field(
        default_factory=experiment.ConnCompDetectionExperiment
    )
    conncomp_tracking_mnist: experiment.ConnCompTrackingExperiment = field(
        default_factory=experiment.ConnCompTrackingExperiment
    )
    spair: experiment.SPAIRExperiment = field(default_factory=experiment.SPAIRExperiment)
    # SILOT's Scattered Shapes runs: 96x96 frames, the "1-10 shapes" condition, 5 px/frame.
    conncomp_tracking_shapes: experiment.ConnCompTrackingExperiment = field(
        default_factory=lambda: experiment.ConnCompTrackingExperiment(
            objects="shapes", image_size=(96, 96), max_objects=10
        )
    )


ROWS = {
    "spair": experiment.run_spair,
    "conncomp_detection": experiment.run_conncomp_detection,
    "conncomp_tracking_mnist": experiment.run_conncomp_tracking,
    "conncomp_tracking_shapes": experiment.run_conncomp_tracking,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--config", default=str(ROOT / "configs" / "table1.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these rows (repeatable or comma-separated): {', '.join(ROWS)}")
    parser.add_argument("--out", default=None, help="output directory (default results/table1/<mode>)")
    args = parser.parse_args(argv)
    args.only = [name for item in args.only for name in item.split(",") if name]
    unknown = sorted(set(args.only) - set(ROWS))
    if unknown:
        parser.error(f"unknown row(s) {unknown}; valid rows are {list(ROWS)}")
    return args


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


def provenance(args, config, wall_time) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    packages = {}
    for name in ("tensorflow", "keras", "tensorflow-probability", "numpy", "scipy", "mlxtend"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "mode": args.mode,
        "git_commit": commit,
        "python": platform.python_version(),
        "packages": packages,
        "wall_time_seconds": round(wall_time, 1),
        "config": to_dict(config),
    }


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    config = load_config(Table1Config, args.config, mode=args.mode, overrides=args.overrides)
    full = load_config(Table1Config, args.config, mode="full")
    published = tomllib.loads((ROOT / "reproduce" / "published.toml").read_text())["table1"]
    rows = args.only or list(ROWS)
    out = Path(args.out or ROOT / "results" / "table1" / args.mode)
    out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    results = {}
    for name in rows:
        logging.info("=== %s ===", name)
        result = ROWS[name](getattr(config, name))
        examples = result.pop("examples")
        figures.plot_detections(examples["images"], examples["true_boxes"], examples["pred_boxes"],
                                out / f"{name}.png", title=f"{name} ({result['setting']}), test")
        results[name] = result

    header = f"# tfobj table 1 ({args.mode} mode)\n"
    if args.mode == "quick":
        cuts = describe_changes(config, full, only=rows)
        header += ("\nQuick mode: CPU, minutes, cut-down data — not comparable to the paper. It changes:\n"
                   + "".join(f"- {cut}\n" for cut in cuts))
    table = header + "\n" + markdown_table(results, published) + "\n"
    print(table)
    (out / "table1.md").write_text(table)
    record = provenance(args, config, time.time() - start)
    record["rows"] = {name: {k: v for k, v in result.items()} for name, result in results.items()}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str))
    logging.info("wrote %s", out)
    return record


if __name__ == "__main__":
    main()
