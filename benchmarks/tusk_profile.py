"""Where TUSK's training step spends its time: TensorFlow's profiler over the step `fit` runs.

    python benchmarks/tusk_profile.py [--preset tetrominoes] [--size 40] [--batch 8] [--kernel-size 15]
                                      [--steps 3] [--warmup 2] [--top 15] [--logdir DIR]

Defaults: table 1's quick Tetrominoes run (configs/table1.toml, `tusk_tetrominoes.*`: 40×40 input, NMS window 15,
batch 8 images = 16 warped images per step). `--preset mnist --size 80 --batch 4 --kernel-size 13` is
benchmarks/tusk.py's MNIST row. Builds `TUSK(preset, seed=0)` with the preset's optimizer, runs Keras' own
`train_function` (the step `fit` runs: `TUSK.train_step`) to warm up, times `--steps` unprofiled steps, then
profiles `--steps` more and reads the trace with benchmarks/spair_profile.py's reader, grouping op self times by
the part of the step their name scope belongs to, forward and backward apart. The step's plain functions
(`image_pairs`, the equivariance losses, the prototype step) carry no Keras layer scope, so this script wraps
them in name scopes (here only: the library is unchanged). The second encoder pass (the prototype step's
descriptors) shares the "encoder" scope with the first: it is counted in "encoder (fwd)". Also reports how
many times `train_step` was traced (1 expected), the unprofiled steps' CPU-seconds (this process' threads), the
step's convolution FLOPs counted from the architecture (`step_flops`), and the rate a lone 3×3 convolution of the
step's largest layer shape reaches on this CPU (`lone_conv_rate`): the step's FLOPs per CPU-second against it say
how far the step is from convolution-bound.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.spair_profile import analyse, part_of, print_report, profile_steps, time_steps, train_step  # noqa: E402

# (label, pattern on the op's name scope): the first that matches wins.
PARTS = (
    ("image pairs (TPS grids, warps)", r"image_pairs"),
    ("equivariance losses (pad, warp)", r"equivariance"),
    ("prototype step (SW, Adam)", r"prototype_step"),
    ("encoder U-Net", r"encoder[^/]*/unet"),
    ("encoder head, keypoints", r"encoder"),
    ("decoder U-Net", r"decoder[^/]*/unet"),
    ("optimizer (Adam)", r"(^|/)(adam|sgd)[^/]*/|AssignVariableOp|AssignAddVariableOp"),
    ("rest: splat, blend, losses, metrics", r"decoder|gaussian_splat|tusk"),
)
UNDIRECTED = ("optimizer (Adam)",)
# (label, test on the op's type, test on its name scope): the first that matches wins.
KINDS = (("convolutions (forward, backprop input, backprop filter)", "Conv2D", None),
         ("GroupNorm (moments, scale, their gradients)", None, "norm"),
         ("everything else", None, None))


def by_kind(by_op: dict) -> dict:
    """Op self time (ms/step) by kind of work, `KINDS`: the convolutions alone are what a faster graph cannot cut."""
    totals = {label: 0.0 for label, _, _ in KINDS}
    for name, ms in by_op.items():
        scope, _, op_type = name.rpartition(":")
        label = next(label for label, type_part, scope_part in KINDS
                     if (type_part is None or type_part in op_type) and (scope_part is None or scope_part in scope))
        totals[label] += ms
    return totals


def unet_flops(size: int, in_channels: int, out_channels: int, width: int) -> int:
    """FLOPs of one `tusk_layers.UNet` forward pass on one size×size map (a multiply-add = 2): its 3×3 convs
    (two per block; the expanding blocks' first reads the upsampled map and the skip) and the 1×1 output conv."""
    widths = [width * 2**level for level in range(4)]  # w, 2w, 4w, 8w at size / 2**level
    flops, channels = 0, in_channels
    for level, out in enumerate(widths):
        flops += 2 * 9 * (size // 2**level) ** 2 * (channels * out + out * out)
        channels = out
    for level in (2, 1, 0):
        out = widths[level]
        flops += 2 * 9 * (size // 2**level) ** 2 * ((channels + out) * out + out * out)
        channels = out
    return flops + 2 * size**2 * channels * out_channels


def step_flops(config, size: int, batch: int) -> dict:
    """The convolutions' FLOPs of one training step (`TUSK.train_step`), counted from the architecture: the
    encoder (U-Net and the heatmap head's two 3×3 convs) on the 2·batch warped images, forward once for the feature
    step and once more for the prototype step's descriptors (`prototype_descriptors="updated"`), backward once
    (input and filter gradients: 2× the forward; the first conv's input gradient, w.r.t. the images, is skipped by
    TensorFlow, ignored here); the decoder forward and backward on 2·batch·K keypoint maps (alpha blending) or
    2·batch summed splats. Returns GFLOP by part."""
    w, f = config.base_width, config.feature_channels
    images = 2 * batch
    encoder = unet_flops(size, 3, f, w) + 2 * 9 * size**2 * (f * f + f)
    decoder = unet_flops(size, f, 4 if config.alpha_blending else 3, w)
    maps = images * (config.num_keypoints if config.alpha_blending else 1)
    passes = 2 if config.prototype_descriptors == "updated" else 1
    return {"encoder": (passes + 2) * images * encoder / 1e9, "decoder": 3 * maps * decoder / 1e9}


def lone_conv_rate(batch: int, size: int, in_channels: int, out_channels: int, calls: int = 10) -> float:
    """GFLOP per CPU-second of one 3×3 "same" convolution alone (median of `calls`): what this CPU's convolution
    kernels reach at the step's largest layer shape, to compare the whole step with."""
    x = tf.random.normal([batch, size, size, in_channels])
    kernel = tf.random.normal([3, 3, in_channels, out_channels])
    conv = tf.function(lambda x, kernel: tf.nn.conv2d(x, kernel, 1, "SAME"))
    conv(x, kernel).numpy()
    seconds = []
    for _ in range(calls):
        start = time.process_time()
        conv(x, kernel).numpy()
        seconds.append(time.process_time() - start)
    return 2 * 9 * batch * size**2 * in_channels * out_channels / 1e9 / float(np.median(seconds))


def scoped(function, scope):
    """`function` run inside `tf.name_scope(scope)` (so the profile can attribute its ops)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with tf.name_scope(scope):
            return function(*args, **kwargs)
    return wrapper


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tetrominoes")
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--kernel-size", type=int, default=15, help="NMS / soft-argmax window (quick: 15)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--logdir", default=None)
    args = parser.parse_args(argv)

    from tfobj.models.tusk import tps, tusk
    from tfobj.models.tusk.tusk_config import TUSK_TRAINING, TUSKConfig
    from tfobj.training.optimizers import build_optimizer

    tusk.TUSK.image_pairs = scoped(tusk.TUSK.image_pairs, "image_pairs")
    tusk.equivariance_loss = scoped(tps.equivariance_loss, "equivariance")
    tusk.TUSK.prototype_step = scoped(tusk.TUSK.prototype_step, "prototype_step")
    traces = []
    original_train_step = tusk.TUSK.train_step

    def counting_train_step(self, data):
        traces.append(1)  # python side effect: runs once per trace
        return original_train_step(self, data)

    tusk.TUSK.train_step = counting_train_step

    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((args.batch, args.size, args.size, 3)), tf.float32)
    model = tusk.TUSK(TUSKConfig.preset(args.preset, kernel_size=args.kernel_size), seed=0)
    model(images[:1])
    model.compile(optimizer=build_optimizer(TUSK_TRAINING[args.preset]))
    model.make_train_function()
    batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
    step = train_step(model, batches)
    start = time.perf_counter()
    step()  # the first call traces the step
    trace_seconds = time.perf_counter() - start
    cpu_start = time.process_time()
    seconds = time_steps(step, args.warmup, args.steps)
    cpu = (time.process_time() - cpu_start) / (args.warmup + args.steps)  # CPU-s/step, this process' threads
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; TUSK "
          f"{args.preset}, batch {args.batch}, {args.size}x{args.size}, kernel {args.kernel_size}")
    print(f"unprofiled: {1e3 * seconds:.1f} ms/step, {args.batch / seconds:.2f} img/s, {cpu:.2f} CPU-s/step; "
          f"train_step traced {len(traces)} time(s), the first call took {trace_seconds:.1f} s")
    flops = step_flops(model.config, args.size, args.batch)
    maps = 2 * args.batch * (model.config.num_keypoints if model.config.alpha_blending else 1)
    width = model.config.base_width
    lone = lone_conv_rate(maps, args.size, 3 * width, width)  # the expanding path's last block, full size
    print(f"convolutions: {sum(flops.values()):.1f} GFLOP/step (encoder {flops['encoder']:.1f}, decoder "
          f"{flops['decoder']:.1f}), i.e. {sum(flops.values()) / cpu:.0f} GFLOP per CPU-s over the whole step; "
          f"a lone 3x3 conv [{maps}, {args.size}, {args.size}, {3 * width}] -> {width}: {lone:.0f} GFLOP per CPU-s")
    logdir = args.logdir or tempfile.mkdtemp(prefix="tusk_profile_")
    partial = functools.partial(part_of, parts=PARTS, undirected=UNDIRECTED)
    result = analyse(profile_steps(step, args.steps, logdir), args.steps, part_of=partial)
    print_report(result, args.top, optimizer=UNDIRECTED[0])
    kinds = by_kind(result["by_op"])
    print("\n| kind of op | ms/step | % of op time |\n|---|---|---|")
    for label, ms in kinds.items():
        print(f"| {label} | {ms:.1f} | {100 * ms / sum(kinds.values()):.1f} |")
    print(f"train_step traced {len(traces)} time(s) in all")


if __name__ == "__main__":
    main()
