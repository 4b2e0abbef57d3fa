"""TUSK on MNIST-Hard: detection accuracy (20×20 boxes at the 9 keypoints, IoU > 0.5) and unsupervised
classification accuracy (each prototype mapped to its majority digit), as TUSK's evaluate_mnist.py.

    python reproduce/tusk_mnist_hard.py                 # quick mode (CPU; configs/tusk_mnist_hard.toml)
    python reproduce/tusk_mnist_hard.py --mode full     # Table 10's settings: batch 40, 250k steps (GPU)
    python reproduce/tusk_mnist_hard.py --set train.steps=400 --set data.num_train_images=4000

MNIST-Hard is tfobj's procedural re-creation (tfobj.data.mnist_hard; the original's pre-generated zip is not
used). Writes <out>/tusk_mnist_hard.md, results.json and a PNG of test images with the true digit boxes and
20×20 boxes at the keypoints. Published numbers: reproduce/published.toml [tusk_mnist_hard.*].
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
from tfobj.experiments.tusk import TUSKMNISTHardExperiment, run_tusk_mnist_hard  # noqa: E402


def main(argv=None) -> dict:
    args = cli.parse_args(__doc__, "tusk_mnist_hard", argv)
    config, full = cli.load(args, TUSKMNISTHardExperiment)
    published = cli.published("tusk_mnist_hard")["mnist_hard"]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    result = run_tusk_mnist_hard(config)
    examples = result.pop("examples")
    figures.plot_detections(examples["images"], examples["true_boxes"], examples["pred_boxes"],
                            args.out / "tusk_mnist_hard.png", title=f"TUSK MNIST-Hard ({result['setting']}), test")
    figures.plot_tusk_figures(examples, args.out, "tusk_mnist_hard", f"TUSK MNIST-Hard ({result['setting']}), test")
    lines = ["| metric | ours | published | gap | source |", "|---|---|---|---|---|"]
    for metric, ours in result["metrics"].items():
        value = published["metrics"][metric]
        shown, gap = ("not published", "n/a") if math.isnan(value) else (f"{value:.3f}", f"{ours - value:+.3f}")
        lines.append(f"| {metric} | {ours:.3f} | {shown} | {gap} | {published['source']} |")
    header = (f"# TUSK MNIST-Hard ({args.mode} mode; {result['setting']})\n"
              + cli.quick_header(args.mode, config, full))
    table = header + "\n" + "\n".join(lines) + "\n"
    print(table)
    (args.out / "tusk_mnist_hard.md").write_text(table)
    record = cli.write_results(args, config, time.time() - start, **result)
    logging.info("wrote %s", args.out)
    return record


if __name__ == "__main__":
    cli.entry(main)
