"""SPAIR's comparison figure as a table: test AP on Scattered MNIST 48x48 with exactly n digits,
n = 1, 3, 5, 7, 9, for SPAIR and ConnComp; mean and 95% confidence interval (Student t) over repeats.

    python reproduce/spair_comparison.py                 # quick mode (CPU): cut-down training, 2 repeats
    python reproduce/spair_comparison.py --mode full     # the paper's protocol: 6 repeats per n (GPU)
    python reproduce/spair_comparison.py --from-results results/spair_comparison/quick/results.json
                                                         # rebuild the table and figure, no training

The paper shows these results only as a figure (no numbers were published; docs/reproducing.md), so the
table has no published column. Writes <out>/spair_comparison.md, results.json and spair_comparison.png.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)
DEFAULT_CONFIG = ROOT / "configs" / "spair_comparison.toml"

from tfobj import cli, figures  # noqa: E402
from tfobj.config import from_dict, load_config  # noqa: E402
from tfobj.experiments.conncomp import ConnCompDetectionExperiment, run_conncomp_detection  # noqa: E402
from tfobj.experiments.spair import SPAIRExperiment, run_spair  # noqa: E402


@dataclass(frozen=True)
class ComparisonConfig:
    """The comparison experiment; defaults are the original protocol (auto_yolo experiments/comparison)."""

    digit_counts: tuple[int, ...] = (1, 3, 5, 7, 9)
    repeats: int = 6  # original code: n_repeats = 6 per n
    spair: SPAIRExperiment = field(default_factory=SPAIRExperiment)
    conncomp: ConnCompDetectionExperiment = field(default_factory=ConnCompDetectionExperiment)


def mean_and_ci(values) -> tuple[float, float]:
    """Mean and half-width of the Student-t 95% confidence interval of the mean (0 for one value), as the
    original figures' error bars (dps `confidence_interval`: scipy `t.interval(0.95, n - 1, mean, sem)`)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def condition(experiment, n: int, repeat: int):
    """`experiment` on images with exactly n digits, its data (and SPAIR's training) seeded by the repeat."""
    data = replace(experiment.data, scene=replace(experiment.data.scene, min_digits=n, max_digits=n), seed=repeat)
    if isinstance(experiment, SPAIRExperiment):
        return replace(experiment, data=data, train=replace(experiment.train, seed=repeat))
    return replace(experiment, data=data)


def run(config: ComparisonConfig) -> dict:
    """AP per digit count and repeat for SPAIR and ConnComp: {"spair": {n: [AP, ...]}, "conncomp": {...}}."""
    scores = {"spair": {}, "conncomp": {}}
    for n in config.digit_counts:
        for repeat in range(config.repeats):
            logging.info("=== n = %d, repeat %d ===", n, repeat)
            spair = run_spair(condition(config.spair, n, repeat))
            conncomp = run_conncomp_detection(condition(config.conncomp, n, repeat))
            scores["spair"].setdefault(n, []).append(spair["metrics"]["ap"])
            scores["conncomp"].setdefault(n, []).append(conncomp["metrics"]["ap"])
    return scores


def markdown(config: ComparisonConfig, scores: dict) -> str:
    lines = ["| # digits | SPAIR AP | ConnComp AP |", "|---|---|---|"]
    for n in config.digit_counts:
        cells = ["{:.3f} ± {:.3f}".format(*mean_and_ci(scores[name][n])) for name in ("spair", "conncomp")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table_and_figure(config: ComparisonConfig, full: ComparisonConfig, mode: str, scores: dict, out: Path,
                           note: str = "") -> str:
    """Writes <out>/spair_comparison.md and spair_comparison.png; returns the table."""
    header = (f"# SPAIR comparison ({mode} mode): test AP (IoU 0.1…0.9), mean ± 95% CI (Student t) over "
              f"{config.repeats} repeat(s)\n\nPublished: a figure only (SPAIR, AAAI 2019, comparison figure); "
              f"no numbers to compare with.\n{note}")
    header += cli.quick_header(mode, config, full)
    table = header + "\n" + markdown(config, scores) + "\n"
    (out / "spair_comparison.md").write_text(table)
    series = {name.replace("spair", "SPAIR").replace("conncomp", "ConnComp"):
              tuple(np.array([mean_and_ci(scores[name][n]) for n in config.digit_counts]).T)
              for name in ("spair", "conncomp")}
    figures.plot_curves(config.digit_counts, series, out / "spair_comparison.png", "# digits", "test AP",
                        f"Scattered MNIST 48x48 ({mode} mode)", limits=(0.0, 1.0),
                        spread_label=f"95% t-interval over {config.repeats} repeat(s), clipped to [0, 1]")
    return table


def rebuild(results_path: Path, out: Path | None) -> dict:
    """Rebuilds the table and figure from a results.json (its config and per-repeat APs), no training."""
    try:
        record = json.loads(results_path.read_text())
        config = from_dict(ComparisonConfig, record["config"])
        scores = {name: {int(n): values for n, values in per_n.items()} for name, per_n in record["ap"].items()}
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{results_path}: not a spair_comparison results.json ({error})") from error
    out = out or results_path.parent
    out.mkdir(parents=True, exist_ok=True)
    note = (f"\nRebuilt from {results_path.name}: the run `{record.get('command')}` at commit "
            f"{record.get('git_commit', 'unknown')[:7]}, {record.get('wall_time_seconds')} s.\n")
    full = load_config(ComparisonConfig, DEFAULT_CONFIG, mode="full")
    print(write_table_and_figure(config, full, record["mode"], scores, out, note))
    return record


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "spair_comparison", argv, extra=lambda parser: parser.add_argument(
        "--from-results", default=None, metavar="RESULTS_JSON",
        help="rebuild the table and figure from a finished run's results.json (no training)"))
    if args.from_results:
        return rebuild(Path(args.from_results), args.out if args.out_given else None)
    config, full = cli.load(args, ComparisonConfig)
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    scores = run(config)
    print(write_table_and_figure(config, full, args.mode, scores, args.out))
    ap = {name: {str(n): values for n, values in per_n.items()} for name, per_n in scores.items()}
    return cli.write_results(args, config, time.time() - start, ap=ap)


if __name__ == "__main__":
    cli.entry(main)
