"""TUSK throughput on this machine: training and inference images/second for Table 10's MNIST model (80×80,
MNIST-Hard's size) and its Tetrominoes model (alpha blending, K = 3, M = 114, at the experiment's 112×112 input),
and the sliced Wasserstein loss's cost as the descriptors and the projections grow.

    python benchmarks/tusk.py [--repeats 3] [--batch 4] [--configs mnist@80 tetrominoes@112] [--sweep-repeats 7]
                              [--no-sweeps | --sweeps-only]

Training times the step `fit` runs (the compiled model's `train_function`: TUSK's own `train_step`, i.e. the
image pairs, the feature step on 2·batch warped images, and `inner_prototype_steps` prototype updates on the
updated encoder's descriptors); images/second counts the batch's images (each enters the step as a pair, as in
the paper's batch). Inference times the "serve" endpoint as the SavedModel runs it (`tf.function` with the
exported input signature: unknown batch and size). All configurations are built first and timed in alternation
(repeat r of each before repeat r + 1 of any), so a change in the machine's load hits them alike.

The sweeps time `tfobj.models.tusk.sliced_wasserstein.sliced_wasserstein` alone, forward + backward (the gradient
w.r.t. the GMM samples, as the prototype step takes it), D = 32: two [P, D]·[D, N] products and two sorts of
[P, N] per call, so O(P·N·(D + log N)); each the fastest of `--sweep-repeats` alternated calls (on a shared
machine the minimum is the call least disturbed by other load).
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.models.tusk.sliced_wasserstein import random_projections, sliced_wasserstein  # noqa: E402
from tfobj.models.tusk.tusk import TUSK  # noqa: E402
from tfobj.models.tusk.tusk_config import TUSK_PRESETS, TUSK_TRAINING  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402
from benchmarks.timing import add_sweep_options, alternate, footer, header  # noqa: E402




def model_table(args):
    print(f"\n### Training and inference (batch {args.batch} images = {2 * args.batch} warped images per training "
          f"step; median of {args.repeats} alternated repeats)\n")
    print("| preset | image | train img/s | serve img/s | train, ratio | serve, ratio |\n|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    steps = {}
    for name in args.configs:
        preset, size = name.split("@")
        size = int(size)
        images = tf.constant(rng.random((args.batch, size, size, 3)), tf.float32)
        model = TUSK(TUSK_PRESETS[preset], seed=0)
        model(images[:1])
        model.compile(optimizer=build_optimizer(TUSK_TRAINING[preset]))
        model.make_train_function()
        batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
        function, signature = model.serving_endpoints()["serve"]
        serve = tf.function(function, input_signature=signature)
        steps[(name, "train")] = lambda model=model, batches=batches: model.train_function(batches)
        steps[(name, "serve")] = lambda serve=serve, images=images: serve(images)
    seconds = alternate(steps, args.repeats)
    base = args.configs[0]
    for name in args.configs:
        preset, size = name.split("@")
        train, serve = (args.batch / seconds[(name, kind)] for kind in ("train", "serve"))
        train0, serve0 = (args.batch / seconds[(base, kind)] for kind in ("train", "serve"))
        print(f"| {preset} | {size}×{size} | {train:.2f} | {serve:.1f} | {train / train0:.2f}× {base} | "
              f"{serve / serve0:.2f}× {base} |", flush=True)


def sliced_wasserstein_sweeps(args):
    @tf.function
    def loss_and_gradient(samples, points, projections):
        with tf.GradientTape() as tape:
            tape.watch(samples)
            loss = sliced_wasserstein(samples, points, projections)
        return loss, tape.gradient(loss, samples)

    def table(title, column, settings):
        print(f"\n### {title}\n")
        print(f"| {column} | ms per call | µs per point | ratio |\n|---|---|---|---|")
        rng = np.random.default_rng(0)
        steps = {}
        for value, (n, p) in settings:
            samples = tf.math.l2_normalize(tf.constant(rng.normal(size=(n, 32)), tf.float32), axis=1)
            points = tf.math.l2_normalize(tf.constant(rng.normal(size=(n, 32)), tf.float32), axis=1)
            projections = random_projections(p, 32, 0)
            steps[value] = lambda a=(samples, points, projections): loss_and_gradient(*a)
        seconds = alternate(steps, args.sweep_repeats, np.min)
        first = settings[0][0]
        for value, (n, _) in settings:
            print(f"| {value} | {1e3 * seconds[value]:.2f} | {1e6 * seconds[value] / n:.2f} | "
                  f"{seconds[value] / seconds[first]:.2f}× |", flush=True)

    print("\nSliced Wasserstein loss alone, forward + backward, D = 32 (MNIST's batch of 40 pairs: N = 2·40·9 = 720 "
          "descriptors):")
    table("descriptors N grow; P = 100 projections", "N", [(n, (n, 100)) for n in (180, 720, 2880, 11520)])
    table("projections P grow; N = 720", "P", [(p, (720, p)) for p in (25, 100, 400, 1600)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="images per step (Table 10: 40 MNIST, 76 Tetrominoes)")
    parser.add_argument("--configs", nargs="+", default=["mnist@80", "tetrominoes@112"],
                        help="PRESET@SIZE (presets: " + ", ".join(TUSK_PRESETS) + "); the first is the baseline")
    add_sweep_options(parser, "sliced Wasserstein sweeps")
    args = parser.parse_args()
    print(header("TUSK_PRESETS (Table 10)"))
    if not args.sweeps_only:
        model_table(args)
    if not args.no_sweeps:
        sliced_wasserstein_sweeps(args)
    print(footer())


if __name__ == "__main__":
    main()
