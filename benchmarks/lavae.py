"""LAVAE throughput on this machine: training and inference images/second (the paper's multi-MNIST model, appendix
B), the importance-weighted NLL bound's cost per image and per importance sample, and the sprite placement's cost
as the canvas and the number of objects grow.

    python benchmarks/lavae.py [--repeats 3] [--batch 16] [--sizes 32 64] [--samples 1 10 50]
                               [--sweep-repeats 7] [--no-sweeps | --sweeps-only]

Training times the step `fit` runs (the compiled model's `train_function`: LAVAE's own `train_step` with its
three Adamax optimizers, during the warm-up, so the auxiliary VAE runs too); inference the "serve" endpoint as
the SavedModel runs it (`tf.function` with the exported input signature: unknown batch and size), in the
posterior mode. The NLL bound times `importance_log_weights` through one `tf.function`, as
`tfobj.experiments.lavae.likelihood_bound` calls it (the inference nets run once per image, the sprite decoder
and the placement once per sample). Its untrained location net is biased so that about 3 pixels per image pass
f_count's threshold (an untrained net finds none, and n = 0 would decode nothing). All configurations of a table
are built first and timed in alternation (repeat r of each before repeat r + 1 of any), so a change in the
machine's load hits them alike; the ratios are within this run.

The sweeps time eq. 4's placement alone, forward + backward: `place_sprites` (hard locations: a scatter of the
B·M·s² sprite pixels, inference and the NLL bound) and `place_sprites_soft` (the Gumbel-softmax relaxation that
training uses: a dense depthwise convolution, B·M·H·W·s² multiply-adds), each the fastest of `--sweep-repeats`
alternated calls (on a shared machine the minimum is the call least disturbed by other load).
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.models.lavae.lavae import LAVAE  # noqa: E402
from tfobj.models.lavae.lavae_config import LAVAEConfig  # noqa: E402
from tfobj.models.lavae.lavae_math import logit_scale, place_sprites, place_sprites_soft  # noqa: E402
from benchmarks.timing import add_sweep_options, alternate, footer, header  # noqa: E402




def images_with_objects(batch, size, rng, count=3, side=9):
    """Binary `[B, size, size, 1]` images of `count` filled squares each."""
    images = np.zeros((batch, size, size, 1), np.float32)
    for image in images:
        for row, col in rng.integers(0, size - side, (count, 2)):
            image[row:row + side, col:col + side] = 1.0
    return images


def build(size, images):
    """The paper's model (appendix B, multi-MNIST) on a size × size canvas (γ by the log D rule), compiled as `fit`
    compiles it, its location net biased to find objects (module docstring)."""
    model = LAVAE(LAVAEConfig(image_size=(size, size), gamma=logit_scale(size * size)), seed=0)
    model(images[:1])
    conv = model.location_net.logits_conv
    raw = model(images)["location_logits"].numpy() / model.config.gamma - conv.bias.numpy()[0]
    conv.bias.assign([4.0 - np.percentile(raw, 100 - 100 * 3 / (size * size))])  # ≈ 3 pixels above 4γ
    model.compile()
    model.make_train_function()
    return model


def model_table(args):
    print(f"\n### Training and inference (batch {args.batch}, median of {args.repeats} alternated repeats)\n")
    print("| canvas | n̂ (mean) | train img/s | serve img/s | train, ratio | serve, ratio |\n|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    steps, counts, models = {}, {}, {}
    for size in args.sizes:
        images = tf.constant(images_with_objects(args.batch, size, rng))
        model = build(size, images)
        batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
        function, signature = model.serving_endpoints()["serve"]
        serve = tf.function(function, input_signature=signature)
        steps[(size, "train")] = lambda model=model, batches=batches: model.train_function(batches)
        steps[(size, "serve")] = lambda serve=serve, images=images: serve(images)
        counts[size] = float(np.mean(serve(images)["num_objects"]))
        models[size] = (model, images)
    seconds = alternate(steps, args.repeats)
    base = args.sizes[0]
    for size in args.sizes:
        train, serve = (args.batch / seconds[(size, kind)] for kind in ("train", "serve"))
        train0, serve0 = (args.batch / seconds[(base, kind)] for kind in ("train", "serve"))
        print(f"| {size}×{size} | {counts[size]:.1f} | {train:.1f} | {serve:.1f} | {train / train0:.2f}× {base} | "
              f"{serve / serve0:.2f}× {base} |", flush=True)
    return models


def nll_table(models, args):
    size = args.sizes[-1]
    model, images = models[size]
    images = images[:args.nll_batch]
    weights = tf.function(model.importance_log_weights)
    print(f"\n### NLL bound: `importance_log_weights` on {size}×{size}, {args.nll_batch} images per call\n")
    print("| samples S | ms per call | ms per image | ms per image-sample | marginal ms per image-sample |\n"
          "|---|---|---|---|---|")
    seconds = alternate({s: (lambda s=s: weights(images, s)) for s in args.samples}, args.repeats)
    previous = None
    for s in args.samples:
        per_image = 1e3 * seconds[s] / args.nll_batch
        marginal = ("" if previous is None else
                    f"{1e3 * (seconds[s] - seconds[previous]) / (s - previous) / args.nll_batch:.2f}")
        print(f"| {s} | {1e3 * seconds[s]:.0f} | {per_image:.1f} | {per_image / s:.2f} | {marginal} |", flush=True)
        previous = s
    s = args.samples[-1]
    print(f"\nTable 1's bound (S = 100) on the 10,000 test images at S = {s}'s rate: "
          f"≈ {1e4 * seconds[s] / args.nll_batch * 100 / s / 60:.0f} min on this machine.")


def placement_inputs(batch, size, objects, sprite=17, seed=0):
    rng = np.random.default_rng(seed)
    sprites = tf.constant(rng.random((batch, objects, sprite, sprite, 1)), tf.float32)
    locations = tf.constant(rng.integers(0, size, (batch, objects, 2)), tf.int32)
    soft = tf.nn.softmax(tf.constant(rng.normal(size=(batch, objects, size * size)) * 5, tf.float32), axis=-1)
    return sprites, locations, soft, tf.fill([batch], objects)


def placement_sweep(args):
    @tf.function
    def hard(sprites, locations, n, size):
        with tf.GradientTape() as tape:
            tape.watch(sprites)
            loss = tf.reduce_sum(tf.square(place_sprites(sprites, locations, n, size, size)))
        return tape.gradient(loss, sprites)

    @tf.function
    def relaxed(sprites, soft, n, size):
        with tf.GradientTape() as tape:
            tape.watch([sprites, soft])
            loss = tf.reduce_sum(tf.square(place_sprites_soft(sprites, soft, n, size, size)))
        return tape.gradient(loss, [sprites, soft])

    def table(title, column, settings):
        print(f"\n### {title}\n")
        print(f"| {column} | hard (scatter) ms | soft (dense conv) ms | hard, ratio | soft, ratio | soft / hard |\n"
              "|---|---|---|---|---|---|")
        steps = {}
        for value, (size, objects) in settings:
            sprites, locations, soft, n = placement_inputs(args.sweep_batch, size, objects)
            steps[(value, "hard")] = lambda a=(sprites, locations, n, size): hard(*a)
            steps[(value, "soft")] = lambda a=(sprites, soft, n, size): relaxed(*a)
        seconds = alternate(steps, args.sweep_repeats, np.min)
        first = settings[0][0]
        for value, _ in settings:
            h, s = 1e3 * seconds[(value, "hard")], 1e3 * seconds[(value, "soft")]
            h0, s0 = 1e3 * seconds[(first, "hard")], 1e3 * seconds[(first, "soft")]
            print(f"| {value} | {h:.2f} | {s:.1f} | {h / h0:.2f}× | {s / s0:.2f}× | {s / h:.0f}× |", flush=True)

    print(f"\nSprite placement alone (eq. 4), forward + backward, batch {args.sweep_batch}, 17×17 sprites:")
    table("canvas grows; M = 10 objects", "canvas", [(f"{s}×{s}", (s, 10)) for s in (32, 64, 128)])
    table("objects grow; 64×64 canvas", "M", [(m, (64, m)) for m in (1, 3, 10, 30)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="training/inference batch (the paper trains with 64)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="canvas sizes (the paper: 64)")
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 10, 50], help="importance samples per call")
    parser.add_argument("--nll-batch", type=int, default=4, help="images per importance_log_weights call")
    parser.add_argument("--sweep-batch", type=int, default=16)
    add_sweep_options(parser, "placement sweeps")
    args = parser.parse_args()
    print(header("LAVAEConfig() (appendix B, multi-MNIST: F = 46, M = 10, 17×17 sprites)"))
    if not args.sweeps_only:
        nll_table(model_table(args), args)
    if not args.no_sweeps:
        placement_sweep(args)
    print(footer())


if __name__ == "__main__":
    main()
