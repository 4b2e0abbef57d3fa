"""LAVAE's Table 1 (Dittadi & Winther 2019): the 100-sample bound on −log p(x) and the object-count accuracy of LAVAE
and of the fully convolutional β-VAE baseline on multi-MNIST-1k, multi-MNIST-10k and multi-dSprites, mean ± standard
deviation over training seeds, beside the published numbers.

    python reproduce/lavae_table1.py                          # quick mode: CPU, cut-down models and runs (it says what)
    python reproduce/lavae_table1.py --mode full              # the paper's sizes and schedules (GPU, days)
    python reproduce/lavae_table1.py --only multi_mnist_1k --set repeats=1
    python reproduce/lavae_table1.py --only multi_mnist_1k --set repeats=1 --set first_seed=1 \
        --out results/lavae_table1/quick_seed1   # seed 1 alone, beside seed 0's results (not over them)

Writes <out>/lavae_table1.md, <out>/results.json (resolved config, command, git commit, versions, wall time, every
run's metrics), one PNG per data set and model (test images | reconstructions, true and inferred boxes) and, from
the first seed, the paper's qualitative figures (`tfobj.figures.plot_lavae_figures`: <data set>_lavae_inference.png,
_samples.png, _fixed_count.png, _disentanglement.png; <data set>_beta_vae_samples.png).
Published numbers: reproduce/published.toml [lavae_table1.*]; docs/lavae.md and docs/reproducing.md.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)

from tfobj import cli, figures  # noqa: E402
from tfobj.data.multi_object import MultiDSpritesConfig, MultiMNISTConfig  # noqa: E402
from tfobj.experiments.lavae import (  # noqa: E402
    BetaVAEExperiment, LAVAEExperiment, MultiObjectData, run_beta_vae, run_lavae)
from tfobj.models.baselines.conv_vae import ConvVAEConfig  # noqa: E402
from tfobj.models.lavae.lavae_config import LAVAEConfig  # noqa: E402

MODELS = {"lavae": run_lavae, "beta_vae": run_beta_vae}
METRICS = ("nll", "count_accuracy", "count_accuracy_7")


@dataclass(frozen=True)
class Column:
    """One data set's column of Table 1: LAVAE and the β-VAE baseline, on the same data."""

    lavae: LAVAEExperiment
    beta_vae: BetaVAEExperiment


def column(scene, lavae_model: LAVAEConfig, vae_model: ConvVAEConfig):
    """A data set's two experiments (Table 1's column), on the same data."""
    data = MultiObjectData(scene=scene)
    return field(default_factory=lambda: Column(LAVAEExperiment(model=lavae_model, data=data),
                                                BetaVAEExperiment(model=vae_model, data=data)))


@dataclass(frozen=True)
class LAVAETable1Config:
    """Full mode = the paper's protocol (appendix B models and schedules, 190k/10k/10k images per data set)."""

    repeats: int = 5  # not in the paper ("across all tested random seeds"): how many training seeds
    first_seed: int = 0  # tfobj's: seeds first_seed .. first_seed + repeats − 1 (to split a column's seeds over runs)
    multi_mnist_1k: Column = column(MultiMNISTConfig(pool_size=1000), LAVAEConfig(), ConvVAEConfig())
    multi_mnist_10k: Column = column(MultiMNISTConfig(pool_size=10000), LAVAEConfig(), ConvVAEConfig())
    multi_dsprites: Column = column(MultiDSpritesConfig(), LAVAEConfig.preset("multi_dsprites"),
                                    ConvVAEConfig(image_channels=3))

    def __post_init__(self):
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an integer >= 1; got {self.repeats!r}")
        if isinstance(self.first_seed, bool) or not isinstance(self.first_seed, int) or self.first_seed < 0:
            raise ValueError(f"first_seed must be an integer >= 0; got {self.first_seed!r}")


DATASETS = ("multi_mnist_1k", "multi_mnist_10k", "multi_dsprites")


def summary(values) -> str:
    values = np.asarray(values, np.float64)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def paper_cell(paper: dict, metric: str) -> str:
    """The published value as Table 1 prints it: "42.2 ± 1.1" for a bound, "≥ 0.999" for a count accuracy."""
    if metric not in paper["metrics"]:
        return "—"
    value = paper["metrics"][metric]
    if metric == "nll":
        return f"{value} ± {paper['spread']['nll']}"
    return f"≥ {value}"


def markdown_table(runs: dict, published: dict, header: str) -> str:
    lines = [header, "", "| data set | model | metric | ours (mean ± sd over seeds) | published | source |",
             "|---|---|---|---|---|---|"]
    for dataset, models in runs.items():
        for model, results in models.items():
            paper = published[dataset][model]
            for metric in METRICS:
                if metric in results[0]["metrics"]:
                    ours = summary([r["metrics"][metric] for r in results])
                    lines.append(f"| {paper['data']} | {paper['system']} | {metric} | {ours} "
                                 f"| {paper_cell(paper, metric)} | {paper['source']} |")
    # Each run's setting names the data actually used (e.g. a multi-MNIST pool smaller than asked for) and the
    # kept step; the minutes are the run's wall time (data, training, test bounds, the figures' arrays).
    lines += ["", "Runs (data as used, steps, kept weights; wall time):", ""]
    for dataset, models in runs.items():
        for model, results in models.items():
            for index, result in enumerate(results):
                seed = result.get("seed", index)
                minutes = f"; {result['wall_seconds'] / 60:.1f} min" if "wall_seconds" in result else ""
                lines.append(f"- {dataset}, {model}, seed {seed}: {result['setting']}{minutes}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "lavae_table1", argv, rows=list(DATASETS))
    config, full = cli.load(args, LAVAETable1Config)
    published = cli.published("lavae_table1")
    args.out.mkdir(parents=True, exist_ok=True)
    start, runs = time.time(), {}
    for dataset in args.only:
        runs[dataset] = {}
        for model, run in MODELS.items():
            experiment = getattr(getattr(config, dataset), model)
            seeds = range(config.first_seed, config.first_seed + config.repeats)
            for seed in seeds:
                logging.info("=== %s, %s, seed %d ===", dataset, model, seed)
                run_start = time.time()
                result = run(replace(experiment, train=replace(experiment.train, seed=seed)))
                result["wall_seconds"] = time.time() - run_start  # data, training, test bounds, figure arrays
                result["seed"] = seed
                examples = result.pop("examples")
                if seed == seeds[0]:
                    figures.plot_detections(examples["images"], examples["true_boxes"], examples["pred_boxes"],
                                            args.out / f"{dataset}_{model}.png",
                                            title=f"{dataset}, {model} ({result['setting']}), test")
                    figures.plot_lavae_figures(examples, args.out, f"{dataset}_{model}",
                                               f"{dataset}, {model} ({result['setting']})")
                runs[dataset].setdefault(model, []).append(result)
    seed_text = f"seed {config.first_seed}" if config.repeats == 1 else (
        f"seeds {config.first_seed}-{config.first_seed + config.repeats - 1}")
    header = (f"# LAVAE Table 1 ({args.mode} mode, {seed_text})\n"
              + cli.quick_header(args.mode, config, full))
    table = markdown_table(runs, published, header)
    print(table)
    (args.out / "lavae_table1.md").write_text(table)
    return cli.write_results(args, config, time.time() - start, runs=runs)


if __name__ == "__main__":
    cli.entry(main)
