"""SPAIR throughput on this machine: training and inference images/second at 48x48 and 96x96 (batch 32), timing
the steps `fit` and `predict` run (the compiled model's `train_function` / `predict_function`),
with and without XLA (`jit_compile=True`), printed side by side with their ratios; then the renderer's time
as image size and object count grow (exact path and XLA windows bounded by SPAIR's 48-px anchor).

    python benchmarks/spair.py [--repeats 5]

`benchmarks/render_sprites.py` has more renderer sweeps (box size) and a dense reference renderer.
"""
import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.models.spair.spair import SPAIR  # noqa: E402
from tfobj.models.spair.spair_config import SPAIR_TRAINING  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402


def make_steps(model, images, jit):
    """One step of what `fit` and `predict` run, as zero-argument callables: Keras' own train function of the
    compiled model (SPAIR's optimizer) on an iterator over the batch, and its predict function on the batch."""
    model.compile(optimizer=build_optimizer(SPAIR_TRAINING), jit_compile=jit)
    model.make_train_function()
    model.make_predict_function()
    batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())
    return (lambda: model.train_function(batches)), (lambda: model.predict_function([{"images": images}]))


def images_per_second(step, batch_size, repeats):
    step()  # trace and compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, step())
        times.append(time.perf_counter() - start)
    return batch_size / float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, CPU threads: {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    print("| image | mode | train img/s | infer img/s | train XLA img/s | infer XLA img/s |\n|---|---|---|---|---|---|")
    baseline = {}
    for size in (48, 96):
        rng = np.random.default_rng(0)
        images = tf.constant(rng.random((args.batch, size, size, 3)), tf.float32)
        row = []
        for jit in (False, True):
            model = SPAIR(seed=0)
            model(images[:1])
            for step in make_steps(model, images, jit):
                try:
                    row.append(images_per_second(step, args.batch, args.repeats))
                except Exception as error:  # XLA cannot compile a dynamic-shape op
                    row.append(f"n/a ({type(error).__name__})")
        baseline.setdefault("train", row[0])
        baseline.setdefault("infer", row[1])
        cells = [f"{v:.1f}" if isinstance(v, float) else v for v in row]
        print(f"| {size}x{size} | batch {args.batch} | " + " | ".join(cells) + " |")
        xla = [f"{x / y:.2f}x no-XLA" if isinstance(x, float) else "" for x, y in zip(row[2:], row[:2])]
        print(f"| | ratio to 48x48; XLA / no XLA | {row[0] / baseline['train']:.2f} | {row[1] / baseline['infer']:.2f} | "
              + " | ".join(xla) + " |")
    renderer_sweeps(args.repeats)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def renderer_sweeps(repeats):
    """The renderer (forward + backward, batch 2, K boxes of 14 px) as the image and K grow."""
    from benchmarks.render_sprites import make_callables, sweep  # noqa: E402
    from tfobj.rendering import render_sprites  # noqa: E402

    bounded = lambda *a: render_sprites(*a, max_box_size=(48.0, 48.0))  # noqa: E731 - SPAIR's anchor
    methods = {"exact fwd+bwd": make_callables(render_sprites)[1], "xla fwd+bwd": make_callables(bounded, True)[1]}
    sweep("renderer: image size grows; K = 16", "image px", [(s, (s, 16, 14)) for s in (48, 96, 192)],
          methods, 2, repeats)
    sweep("renderer: number of objects grows; 96 x 96 image", "K", [(k, (96, k, 14)) for k in (4, 16, 64)],
          methods, 2, repeats)


if __name__ == "__main__":
    main()
