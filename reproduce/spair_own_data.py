"""SPAIR on images unlike Scattered MNIST: coloured squares on a grey background (docs/spair.md, "Your own data").

    python reproduce/spair_own_data.py                 # quick mode: the settings below, 2,000 steps each (CPU)
    python reproduce/spair_own_data.py --mode full     # 20,000 steps each on 20,000 images
    python reproduce/spair_own_data.py --set "variants=[\"grey_black\"]" --set train.steps=400

Each variant trains SPAIR on the same images and reports test AP, count accuracy and the mean number of objects
found, so a user sees what to expect from each setting before trying their own data:

    grey_black   the images as they are, SPAIR's default black background
    grey_learned the images as they are, a learned solid background colour (model.background = "learn_solid")
    subtracted   |image − background colour| per pixel (the grey removed before training), black background

Writes <out>/spair_own_data.md, results.json and one PNG of test images with boxes per variant.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)

from tfobj import cli, figures  # noqa: E402
from tfobj.experiments.spair import fit_spair  # noqa: E402
from tfobj.models.spair.spair_config import SPAIR_TRAINING, SPAIRConfig  # noqa: E402
from tfobj.ops.boxes import boxes_from_pixel_extent  # noqa: E402
from tfobj.training.evaluation import detection_scores  # noqa: E402
from tfobj.training.train_config import TrainConfig  # noqa: E402

Variant = Literal["grey_black", "grey_learned", "subtracted"]


@dataclass(frozen=True)
class OwnDataConfig:
    variants: tuple[Variant, ...] = ("grey_black", "grey_learned", "subtracted")
    image_size: int = 60  # 5 x 5 SPAIR cells
    squares: int = 2  # per image
    square_size: tuple[int, int] = (10, 18)  # side in pixels, uniform in [min, max]
    background: float = 0.5  # grey level
    num_train_images: int = 20000
    num_val_images: int = 100
    num_test_images: int = 300
    seed: int = 0
    model: SPAIRConfig = field(default_factory=SPAIRConfig)
    train: TrainConfig = field(default_factory=lambda: replace(SPAIR_TRAINING, steps=20000, eval_every=1000))


def squares_on_grey(config: OwnDataConfig, split: str, num: int) -> dict:
    """Images `[num, S, S, 3]` of `config.squares` squares, each of one random saturated colour, on grey; boxes of
    the squares (tfobj's convention, amodal), padded `[num, squares, 4]`; num_objects `[num]`."""
    rng = np.random.default_rng([config.seed, ("train", "val", "test").index(split)])
    size = config.image_size
    images = np.full((num, size, size, 3), config.background, np.float32)
    extents = np.zeros((num, config.squares, 4), np.int64)
    for i in range(num):
        for k in range(config.squares):
            side = rng.integers(config.square_size[0], config.square_size[1] + 1)
            top, left = rng.integers(0, size - side + 1, size=2)
            colour = np.eye(3)[rng.integers(3)] * rng.uniform(0.6, 1.0) + rng.uniform(0.0, 0.2, size=3)
            images[i, top:top + side, left:left + side] = np.clip(colour, 0, 1)
            extents[i, k] = (top, left, top + side - 1, left + side - 1)
    boxes = boxes_from_pixel_extent(*np.moveaxis(extents, -1, 0), size, size).astype(np.float32)
    return {"images": images, "boxes": boxes, "num_objects": np.full(num, config.squares, np.int32)}


def prepared(arrays: dict, variant: Variant, grey: float) -> dict:
    if variant == "subtracted":
        return dict(arrays, images=np.abs(arrays["images"] - grey))
    return arrays


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "spair_own_data", argv)
    config, full = cli.load(args, OwnDataConfig)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    splits = {split: squares_on_grey(config, split, getattr(config, f"num_{split}_images"))
              for split in ("train", "val", "test")}
    results = {}
    for variant in config.variants:
        data = {split: prepared(arrays, variant, config.background) for split, arrays in splits.items()}
        model = replace(config.model, background="learn_solid" if variant == "grey_learned" else "black")
        logging.info("=== %s ===", variant)
        fit = fit_spair(model, config.train, data["train"]["images"], data["val"])
        found = fit.model.predict_objects(data["test"]["images"])
        scores = detection_scores(found, data["test"]["boxes"], data["test"]["num_objects"])
        scores["mean_objects_found"] = float(np.mean([objects["num_objects"] for objects in found]))
        results[variant] = {"metrics": scores, "best_step": fit.best_step}
        figures.plot_objects(data["test"]["images"][:8], found[:8], args.out / f"{variant}.png",
                             true_boxes=data["test"]["boxes"][:8], title=f"SPAIR, {variant}, test")
    lines = [f"# SPAIR on coloured squares on grey ({args.mode} mode)\n", cli.quick_header(args.mode, config, full),
             "| variant | AP | count accuracy | objects found (true: "
             f"{config.squares}) | best step |", "|---|---|---|---|---|"]
    for variant, result in results.items():
        m = result["metrics"]
        lines.append(f"| {variant} | {m['ap']:.3f} | {m['count_accuracy']:.3f} | {m['mean_objects_found']:.2f} "
                     f"| {result['best_step']} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "spair_own_data.md").write_text(table)
    return cli.write_results(args, config, time.time() - start, results=results)


if __name__ == "__main__":
    cli.entry(main)
