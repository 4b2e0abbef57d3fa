"""TUSK's training step in this tree against another tree's (a baseline): same losses and gradients, then speed.

    git archive <commit> | tar -x -C /tmp/tusk_old      # the baseline tree, e.g. the commit before a change
    python benchmarks/tusk_versions.py /tmp/tusk_old [--configs tetrominoes@40/9/8 mnist@80/13/4] [--repeats 7]

A configuration is PRESET@SIZE/KERNEL/BATCH: `TUSKConfig.preset(PRESET, kernel_size=KERNEL)` on SIZE×SIZE images,
BATCH images per step (the defaults: table 1's quick Tetrominoes run, configs/table1.toml, and benchmarks/tusk.py's
MNIST row). The baseline's `tfobj/models/tusk` package is copied to a temporary folder under another name (its
`tfobj.models.tusk.` imports rewritten; the rest of `tfobj` is this tree's), so both versions run in one process.

1. Equality: both models get the same weights; on the same images and seed, the image pairs, the feature step's
   four loss terms and total, and its gradients (every encoder and decoder variable) are compared; then one
   `train_function` step each (the step `fit` runs: feature step, prototype steps), and the metrics it returns and
   the weights and the outputs after it are compared. Printed: the largest relative difference |a − b| / max|b|
   over the tensors; the conv biases that a one-channel-per-group GroupNorm cancels (gradient 0 up to float
   noise, which Adam turns into ± learning-rate steps) are compared apart (`cancelled_biases`).
2. Speed: the two versions' `train_function` steps timed in alternation (benchmarks/timing.py: two warm-up calls
   each, then `--repeats` rounds), the median seconds per step and the ratio baseline / this tree.
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import alternate, footer, header  # noqa: E402
from tfobj.models.tusk.tusk import TUSK  # noqa: E402
from tfobj.models.tusk.tusk_config import TUSK_TRAINING, TUSKConfig  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402

BASELINE_PACKAGE = "tusk_baseline"


def import_baseline(tree: str):
    """The baseline tree's `tfobj.models.tusk.tusk` module, imported as `tusk_baseline.tusk`."""
    source = Path(tree) / "tfobj" / "models" / "tusk"
    if not (source / "tusk.py").is_file():
        raise SystemExit(f"tusk_versions: no tfobj/models/tusk/tusk.py under {tree}")
    folder = Path(tempfile.mkdtemp(prefix="tusk_baseline_"))
    package = folder / BASELINE_PACKAGE
    package.mkdir()
    for path in source.glob("*.py"):
        text = re.sub(r"\btfobj\.models\.tusk\.", f"{BASELINE_PACKAGE}.", path.read_text())
        (package / path.name).write_text(text)
    sys.path.insert(0, str(folder))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # kept until then: autograph reads the sources
    return importlib.import_module(f"{BASELINE_PACKAGE}.tusk")


def build(model_class, config: TUSKConfig, preset: str, images):
    model = model_class(dataclasses.asdict(config), seed=0)
    model(images[:1])
    model.compile(optimizer=build_optimizer(TUSK_TRAINING[preset]))
    model.make_train_function()
    return model


def feature_step(model, images, seed):
    """The pairs, the feature step's loss terms (and weighted total) and gradients, no update."""
    pairs = model.image_pairs(images, seed)
    variables = model.feature_variables()
    with tf.GradientTape() as tape:
        terms = model.loss_terms(pairs, model(pairs["images"], training=True))
        terms["loss"] = model.weighted_loss(terms)
    gradients = tape.gradient(terms["loss"], variables)
    return pairs, terms, gradients


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def compare(name, baseline, current, images) -> None:
    current.set_weights(baseline.get_weights())
    seed = tf.constant([3, 4], tf.int64)
    old_pairs, old_terms, old_grads = tf.function(feature_step)(baseline, images, seed)
    new_pairs, new_terms, new_grads = tf.function(feature_step)(current, images, seed)
    print(f"\n{name}: largest relative difference, this tree vs the baseline (same weights, images, seed)")
    print(f"  pairs: images {relative(new_pairs['images'], old_pairs['images']):.1e}, grid "
          f"{relative(new_pairs['grid'], old_pairs['grid']):.1e}")
    print("  loss terms: " + ", ".join(f"{k} {relative(new_terms[k], v):.1e} ({float(v):.6g})"
                                       for k, v in old_terms.items()))
    # A conv bias followed by a GroupNorm with one channel per group is cancelled by the normalisation, so its
    # gradient is 0 up to float noise and its relative difference means nothing: those are compared apart.
    cancelled = cancelled_biases(current)
    names = [v.path for v in current.feature_variables()]  # the same variables, in the same order
    scale = max(float(np.max(np.abs(g))) for g in old_grads)
    differences = {name: relative(new, old) for name, new, old in zip(names, new_grads, old_grads)
                   if name not in cancelled}
    worst = max(differences, key=differences.get)
    noise = max(float(np.max(np.abs(g))) for name, g in zip(names, old_grads + new_grads) if name in cancelled)
    print(f"  gradients of {len(differences)} variables: largest {differences[worst]:.1e} ({worst}); the "
          f"{len(cancelled)} cancelled biases' gradients are <= {noise / scale:.1e} of the largest |g|")
    batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
    old_metrics = baseline.train_function(batches)
    new_metrics = current.train_function(batches)
    print("  one train_function step, metrics: " + ", ".join(
        f"{k} {relative(new_metrics[k], v):.1e}" for k, v in old_metrics.items()))
    # Adam turns the cancelled biases' noise into steps of ± the learning rate: left out here, and harmless, as
    # the outputs after the step show.
    after = max(relative(n.numpy(), o.numpy()) for n, o in zip(current.weights, baseline.weights)
                if n.path not in cancelled)
    old_out, new_out = baseline(old_pairs["images"]), current(old_pairs["images"])
    outputs = ", ".join(f"{key} {relative(new_out[key], old_out[key]):.1e}"
                        for key in ("keypoints", "descriptors", "heatmap", "reconstruction"))
    print(f"  after the step: weights (all but the cancelled biases) {after:.1e}; outputs {outputs}")


def cancelled_biases(model) -> set:
    """Paths of the conv biases that a GroupNorm with one channel per group cancels exactly (each channel's mean
    over H × W is subtracted): a `UNet` block's `*_conv_i` before `*_norm_i`, the encoder's `head_conv_1` before
    `head_norm_1` and `head_conv_2` before `heatmap_norm` (tusk_layers.py's layer names)."""
    layers = {layer.path: layer for layer in model._flatten_layers()}
    paths = set()
    for path, layer in layers.items():
        if isinstance(layer, keras.layers.GroupNormalization):
            conv_path = path.replace("_norm_", "_conv_").replace("head_norm_1", "head_conv_1")
            conv_path = conv_path.replace("heatmap_norm", "head_conv_2")
            conv = layers[conv_path]
            if conv.filters == layer.groups:
                paths.add(conv.bias.path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="a tree holding tfobj/models/tusk (e.g. git archive HEAD | tar -x -C DIR)")
    parser.add_argument("--configs", nargs="+", default=["tetrominoes@40/9/8", "mnist@80/13/4"],
                        help="PRESET@SIZE/KERNEL/BATCH")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(header(f"TUSK, this tree vs the baseline {args.baseline}"))
    baseline_module = import_baseline(args.baseline)
    rng = np.random.default_rng(0)
    steps = {}
    for name in args.configs:
        preset, rest = name.split("@")
        size, kernel, batch = (int(v) for v in rest.split("/"))
        images = tf.constant(rng.random((batch, size, size, 3)), tf.float32)
        config = TUSKConfig.preset(preset, kernel_size=kernel)
        models = {"baseline": build(baseline_module.TUSK, config, preset, images),
                  "this tree": build(TUSK, config, preset, images)}
        compare(name, models["baseline"], models["this tree"], images)
        for version, model in models.items():
            batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
            steps[(name, version)] = lambda model=model, batches=batches: model.train_function(batches)
    start = time.perf_counter()
    seconds = alternate(steps, args.repeats)
    elapsed = time.perf_counter() - start
    print(f"\n### train_function steps, median of {args.repeats} alternated repeats ({elapsed:.0f} s)"
          f"\n\n| config | baseline s/step | this tree s/step | speed-up |\n|---|---|---|---|")
    for name in args.configs:
        old, new = seconds[(name, "baseline")], seconds[(name, "this tree")]
        print(f"| {name} | {old:.3f} | {new:.3f} | {old / new:.3f}× |")
    print(footer())


if __name__ == "__main__":
    main()
