"""SPAIR throughput on this machine: training and inference images/second at 48x48 and 96x96 (batch 32), timing
the steps `fit` and `predict` run (the compiled model's `train_function` / `predict_function`), for the
renderer's pair path ("pairs") and "auto" (the default, which picks the
dense path where a box may cover the whole image: SPAIR at 48x48), with and without XLA (`jit_compile=True`),
printed side by side with their ratios; then the renderer's time as image size and object count grow.

    python benchmarks/spair.py [--repeats 5] [--sizes 48 96] [--configs pairs auto pairs+xla auto+xla]
                               [--inter-op N] [--intra-op N] [--no-sweeps] [--json]

All configurations are built first and then timed in alternation (repeat r of every configuration before
repeat r + 1 of any), so a change in the machine's load hits them alike; the ratios are within this run.
`benchmarks/spair_profile.py` breaks one configuration's step down by part; `benchmarks/render_sprites.py` has
more renderer sweeps and a dense reference renderer.
"""
import argparse
import functools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.models.spair import spair as spair_module  # noqa: E402
from tfobj.models.spair.spair_config import SPAIR_TRAINING  # noqa: E402
from tfobj.rendering.render_sprites import render_sprites  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402
from benchmarks.timing import peak_rss_mib, run_once  # noqa: E402

CONFIGS = ("pairs", "auto", "pairs+xla", "auto+xla")  # renderer method [+ XLA]; the first is the baseline


def make_steps(model, images, jit):
    """One step of what `fit` and `predict` run, as zero-argument callables: Keras' own train function of the
    compiled model (SPAIR's optimizer) on an iterator over the batch, and its predict function on the batch."""
    model.compile(optimizer=build_optimizer(SPAIR_TRAINING), jit_compile=jit)
    model.make_train_function()
    model.make_predict_function()
    batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
    return (lambda: model.train_function(batches)), (lambda: model.predict_function([{"images": images}]))



def build(config, images):
    """SPAIR with the renderer method of `config`, its train and predict steps traced (and compiled) now,
    while that method is the one SPAIR calls."""
    method, _, xla = config.partition("+")
    spair_module.render_sprites = functools.partial(render_sprites, method=method)
    try:
        model = spair_module.SPAIR(seed=0)
        model(images[:1])
        steps = make_steps(model, images, jit=bool(xla))
        for step in steps:
            run_once(step)  # trace and compile
            run_once(step)
        return steps
    finally:
        spair_module.render_sprites = render_sprites


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--no-sweeps", action="store_true", help="skip the renderer sweeps")
    parser.add_argument("--inter-op", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--intra-op", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line per configuration (train_img_s, "
                        "infer_img_s, peak_rss_mib of the process), what benchmarks/spair_peers.py reads")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; batch "
          f"{args.batch}; median of {args.repeats} alternated repeats")
    print("| image | renderer | train img/s | infer img/s | train, ratio | infer, ratio |\n|---|---|---|---|---|---|")
    records = []
    for size in args.sizes:
        rng = np.random.default_rng(0)
        images = tf.constant((rng.random((args.batch, size, size, 3)) > 0.9).astype(np.float32))
        steps, times = {}, {}
        for config in args.configs:
            try:
                steps[config] = build(config, images)
            except Exception as error:  # noqa: BLE001 - e.g. XLA cannot compile a dynamic-shape op
                print(f"| {size}x{size} | {config} | n/a ({type(error).__name__}) | | | |")
        for _ in range(args.repeats):
            for config, (train, infer) in steps.items():
                times.setdefault(config, ([], []))
                times[config][0].append(run_once(train))
                times[config][1].append(run_once(infer))
        rates = {config: [args.batch / float(np.median(t)) for t in pair] for config, pair in times.items()}
        base = rates.get(args.configs[0])
        for config, (train, infer) in rates.items():
            ratio = (f"{train / base[0]:.2f}x {args.configs[0]} | {infer / base[1]:.2f}x {args.configs[0]}"
                     if base else " | ")
            print(f"| {size}x{size} | {config} | {train:.1f} | {infer:.1f} | {ratio} |", flush=True)
            records.append(dict(config=config, image=size, batch=args.batch, train_img_s=train, infer_img_s=infer))
    if not args.no_sweeps:
        renderer_sweeps(args.repeats)
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB (the whole process, "
          f"every configuration; per configuration: benchmarks/spair_profile.py)")
    if args.json:  # the process' peak: one configuration per process gives that configuration's memory
        for record in records:
            print(json.dumps(dict(record, peak_rss_mib=peak_rss_mib(), tensorflow=tf.__version__)))


def renderer_sweeps(repeats):
    """The renderer (forward + backward, batch 2, K boxes of 14 px) as the image and K grow: the pair path, the
    dense path, and XLA (`max_box_size` = SPAIR's anchor: the dense path where its window covers the image, else
    static windows)."""
    from benchmarks.render_sprites import make_callables, sweep  # noqa: E402

    bounded = lambda *a: render_sprites(*a, max_box_size=(48.0, 48.0))  # noqa: E731 - SPAIR's anchor
    dense = functools.partial(render_sprites, method="dense")
    methods = {"pairs fwd+bwd": make_callables(render_sprites)[1], "dense fwd+bwd": make_callables(dense)[1],
               "xla fwd+bwd": make_callables(bounded, True)[1]}
    sweep("renderer: image size grows; K = 16", "image px", [(s, (s, 16, 14)) for s in (48, 96, 192)],
          methods, 2, repeats)
    sweep("renderer: number of objects grows; 96 x 96 image", "K", [(k, (96, k, 14)) for k in (4, 16, 64)],
          methods, 2, repeats)


if __name__ == "__main__":
    main()
