"""SPAIR's transfer/generalisation experiment: train on 48x48 crops, test on 84x84 images with n digits.

    python reproduce/spair_transfer.py                     # quick mode: CPU, one condition, few counts
    python reproduce/spair_transfer.py --mode full         # the original protocol (GPU; days)
    python reproduce/spair_transfer.py --set repeats=2 --set "test_counts=[1, 10, 20]"

Protocol (original code): per training condition (the 84x84 images hold min..max digits), SPAIR
trains on `crops_per_image` random 48x48 crops of each of `num_train_images` 84x84 training images
(annotations clipped to the crop; `tfobj.data.random_crops`) and, being convolutional, is tested on
full 84x84 test images with exactly n digits for every n in `test_counts`. Validation (choosing the
best weights) uses crops of validation-split 84x84 images of the same condition. ConnComp is the
baseline, its τ tuned for AP on training crops of the first training condition.

Repeats: each repeat trains a new SPAIR with seed `seed + repeat`; the training, validation and test
data are the same for every repeat (seed `seed`), so the spread is that of training. ConnComp is
deterministic and runs once (no spread).

Writes <out>/spair_transfer.md (rows n; per training condition and ConnComp: AP, count absolute
error, count 0-1 error, mean ± standard deviation over repeats), <out>/results.json (resolved config,
command, git commit, package versions, wall time, every per-repeat score) and <out>/spair_transfer.png
(the three metrics against n). The paper publishes this experiment as a figure only, without numbers.
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

from tfobj import cli, data, figures  # noqa: E402
from tfobj.experiments.common import best_threshold, detection_scores  # noqa: E402
from tfobj.experiments.conncomp import ThresholdSearch  # noqa: E402
from tfobj.experiments.spair import fit_spair  # noqa: E402
from tfobj.models.baselines.conncomp import ConnComp, detect  # noqa: E402
from tfobj.models.spair.spair_config import SPAIR_TRAINING, SPAIRConfig  # noqa: E402
from tfobj.training.evaluation import predict_detections  # noqa: E402
from tfobj.training.train_config import TrainConfig  # noqa: E402

METRICS = ("ap", "count_abs_error", "count_01_error")
METRIC_NAMES = {"ap": "AP", "count_abs_error": "count abs error", "count_01_error": "count 0-1 error"}


@dataclass(frozen=True)
class TransferConfig:
    """Defaults are the original protocol (full mode)."""

    training_conditions: tuple[tuple[int, int], ...] = ((1, 5), (6, 10), (11, 15))  # digits per 84x84 image
    test_counts: tuple[int, ...] = tuple(range(1, 21))
    image_size: int = 84  # = 6 * 14; a 7x7 SPAIR grid
    crop_size: int = 48
    crops_per_image: int = 4
    num_train_images: int = 25000  # 84x84 images before cropping: 100k training crops
    num_val_images: int = 250  # 84x84 validation images before cropping: 1,000 validation crops
    num_test_images: int = 1000  # per test count n
    repeats: int = 8  # repeat r trains with train.seed + r
    seed: int = 0  # the data's
    # SPAIR (the model and training of tfobj.experiments.spair.SPAIRExperiment; its data are the above).
    # The original transfer runs learned a solid background colour (e2crawfo/auto_yolo aaai_2019,
    # experiments/transfer; the comparison runs: black).
    model: SPAIRConfig = field(default_factory=lambda: SPAIRConfig(background="learn_solid"))
    train: TrainConfig = field(default_factory=lambda: SPAIR_TRAINING)
    # ConnComp baseline: τ grid searched for AP on this many training crops.
    conncomp_tune_images: int = 1000
    conncomp: ThresholdSearch = field(default_factory=ThresholdSearch)

    def __post_init__(self):
        if self.crop_size > self.image_size:
            raise ValueError(f"crop_size {self.crop_size} must be at most image_size {self.image_size}")


def condition_label(condition) -> str:
    return f"SPAIR {condition[0]}–{condition[1]}"


def _images(config: TransferConfig, split: str, num: int, min_digits: int, max_digits: int) -> dict:
    image_config = data.ScatteredMNISTConfig(image_size=(config.image_size,) * 2, min_digits=min_digits,
                                             max_digits=max_digits)
    return data.scattered_mnist(image_config, split, num, seed=config.seed)


def _crops(config: TransferConfig, split: str, num: int, condition) -> dict:
    return data.random_crops(_images(config, split, num, *condition), crop_size=(config.crop_size,) * 2,
                             crops_per_image=config.crops_per_image, seed=config.seed)


def scores(detections: list[dict], test: dict) -> dict:
    """AP, count absolute error and count 0-1 error (1 - count accuracy)."""
    result = detection_scores(detections, test["boxes"], test["num_objects"])
    return {"ap": result["ap"], "count_abs_error": result["count_abs_error"],
            "count_01_error": 1.0 - result["count_accuracy"]}


def run_conncomp(config: TransferConfig) -> dict:
    """τ tuned for AP on training crops of the first condition; scores per test count."""
    tune = _crops(config, "train", -(-config.conncomp_tune_images // config.crops_per_image),
                  config.training_conditions[0])
    tuning = {}
    for tau in config.conncomp.thresholds:
        found = detect(ConnComp(threshold=tau), tune["images"])
        tuning[tau] = detection_scores(found, tune["boxes"], tune["num_objects"])[config.conncomp.metric]
    threshold = best_threshold(tuning)
    logging.info("ConnComp: tau = %.4f (AP on %d training crops = %.4f)", threshold, len(tune["images"]),
                 tuning[threshold])
    per_count = {}
    for n in config.test_counts:
        test = _images(config, "test", config.num_test_images, n, n)
        per_count[n] = scores(detect(ConnComp(threshold=threshold), test["images"]), test)
    return {"threshold": threshold, "tuning": tuning, "scores": per_count}


def run_condition(config: TransferConfig, condition) -> dict:
    """SPAIR trained on crops of `condition`; per repeat, scores per test count."""
    train = _crops(config, "train", config.num_train_images, condition)
    val = _crops(config, "val", config.num_val_images, condition)
    repeats = []
    for repeat in range(config.repeats):
        logging.info("=== %s, repeat %d ===", condition_label(condition), repeat)
        fit = fit_spair(config.model, replace(config.train, seed=config.train.seed + repeat), train["images"], val)
        per_count = {}
        for n in config.test_counts:
            test = _images(config, "test", config.num_test_images, n, n)
            per_count[n] = scores(predict_detections(fit.model, test["images"]), test)
        repeats.append({"scores": per_count, "best_step": fit.best_step, "history": fit.history})
    return {"repeats": repeats}


def summarise(per_repeat: list[dict], counts) -> dict:
    """{metric: (mean per count, standard deviation per count over repeats)}."""
    summary = {}
    for metric in METRICS:
        values = np.array([[scores_[n][metric] for n in counts] for scores_ in per_repeat])
        summary[metric] = (values.mean(axis=0).tolist(), values.std(axis=0).tolist())
    return summary


def markdown_table(counts, curves: dict, header: str) -> str:
    columns = [(name, metric) for name in curves for metric in METRICS]
    lines = [header, "",
             "| n | " + " | ".join(f"{name} {METRIC_NAMES[metric]}" for name, metric in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for i, n in enumerate(counts):
        cells = []
        for name, metric in columns:
            mean, spread = curves[name][metric]
            cells.append(f"{mean[i]:.3f}" if name == "ConnComp" else f"{mean[i]:.3f} ± {spread[i]:.3f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "spair_transfer", argv)
    config, full = cli.load(args, TransferConfig)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    counts = list(config.test_counts)
    results, curves = {}, {}
    for condition in config.training_conditions:
        label = condition_label(condition)
        results[label] = run_condition(config, condition)
        curves[label] = summarise([r["scores"] for r in results[label]["repeats"]], counts)
    results["ConnComp"] = run_conncomp(config)
    curves["ConnComp"] = summarise([results["ConnComp"]["scores"]], counts)

    header = (f"# SPAIR transfer: train on {config.crop_size}x{config.crop_size} crops, test on "
              f"{config.image_size}x{config.image_size} images with n digits ({args.mode} mode)\n\n"
              f"Mean ± standard deviation over {config.repeats} repeat(s) (ConnComp: deterministic, one run, "
              f"τ = {results['ConnComp']['threshold']:.4g}). Published: figure only (SPAIR's transfer figure "
              "gives no numbers), so there is no published column.\n")
    header += cli.quick_header(args.mode, config, full)
    table = markdown_table(counts, curves, header)
    print(table)
    (out / "spair_transfer.md").write_text(table)
    figures.plot_transfer_curves(counts, curves, out / "spair_transfer.png",
                                 title=f"SPAIR transfer ({args.mode} mode): trained on crops, tested on "
                                       f"{config.image_size}x{config.image_size} images",
                                 spread_label=f"± one standard deviation over {config.repeats} training repeat(s), "
                                              "clipped to the metric's range (ConnComp: one deterministic run)")
    summary = {name: {metric: {"mean": mean, "spread": spread} for metric, (mean, spread) in curve.items()}
               for name, curve in curves.items()}
    record = cli.write_results(args, config, time.time() - start, results=results, summary=summary)
    logging.info("wrote %s", out)
    return record


if __name__ == "__main__":
    cli.entry(main)
