"""Where a SPAIR training step inside `fit` spends time beyond the bare train function: the same compiled
`train_function`, timed per step in alternated chunks of steps,

- "bare, random batch": on one repeated batch of random pixels (what `benchmarks/spair.py` times);
- "bare, Scattered MNIST batch": on one repeated batch of table 1's training images;
- "bare, training stream": on `fit_model`'s training stream (`tfobj.training.fit.training_dataset`);
- "fit": `model.fit` on that stream for the chunk's steps, with `fit_model`'s per-step callback (`StopOnNaN`),
  timed from the epoch's start to its end (so `fit`'s own set-up per call is left out);
- "fit, no per-step callback": the same without `StopOnNaN`;
- with `--weights best.weights.h5` (e.g. a run dir's, `fit_model`), also "bare, Scattered MNIST batch, trained
  weights": a second SPAIR with those weights, to see whether a trained model's step costs what a new one's does.

    python benchmarks/spair_fit.py [--chunk 20] [--repeats 5] [--batch 32] [--steps-per-execution 1]
                                   [--weights PATH]

Prints ms per step (median over the repeats) and the ratio to the first setting.
"""
import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import footer, header  # noqa: E402
from tfobj.data.experiment_data import ImageData  # noqa: E402
from tfobj.models.spair.spair import SPAIR  # noqa: E402
from tfobj.models.spair.spair_config import SPAIR_TRAINING  # noqa: E402
from tfobj.training.callbacks import StopOnNaN  # noqa: E402
from tfobj.training.fit import training_dataset  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    """Seconds from `fit`'s epoch start to its end (no per-step hook, so it adds no per-step work)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunk", type=int, default=20, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--weights", help="a trained SPAIR's weights (.weights.h5) for one more setting")
    args = parser.parse_args()
    print(header(f"SPAIR 48x48, batch {args.batch}, chunks of {args.chunk} steps, median of {args.repeats}"))

    images = ImageData(num_train_images=2000).load("train")["images"]
    config = dataclasses.replace(SPAIR_TRAINING, batch_size=args.batch)

    def compiled(weights=None):
        model = SPAIR(seed=0)
        model(images[:1])
        if weights:
            model.load_weights(weights)
        model.compile(optimizer=build_optimizer(config), steps_per_execution=args.steps_per_execution)
        model.make_train_function()
        return model

    model = compiled()
    random = tf.constant((np.random.default_rng(0).random((args.batch, 48, 48, 3)) > 0.9).astype(np.float32))
    iterators = {
        "bare, random batch": iter(tf.data.Dataset.from_tensors({"images": random}).repeat()),
        "bare, Scattered MNIST batch": iter(tf.data.Dataset.from_tensors({"images": images[:args.batch]}).repeat()),
        "bare, training stream": iter(training_dataset({"images": images}, config)),
    }
    stream = training_dataset({"images": images}, config)

    def bare(iterator, model=model):
        def chunk():
            start = time.perf_counter()
            for _ in range(args.chunk // args.steps_per_execution):
                logs = model.train_function(iterator)
            float(logs["loss"])
            return time.perf_counter() - start
        return chunk

    def fit(callbacks):
        def chunk():
            clock = EpochClock()
            model.fit(stream, steps_per_epoch=args.chunk, epochs=1, verbose=0, shuffle=False,
                      callbacks=callbacks + [clock])
            return clock.seconds
        return chunk

    settings = {name: bare(iterator) for name, iterator in iterators.items()}
    settings["fit"] = fit([StopOnNaN()])
    settings["fit, no per-step callback"] = fit([])
    if args.weights:
        batch = iter(tf.data.Dataset.from_tensors({"images": images[:args.batch]}).repeat())
        settings["bare, Scattered MNIST batch, trained weights"] = bare(batch, compiled(args.weights))
    for chunk in settings.values():
        chunk()  # warm-up (tracing; fit's first call builds its own iterator)
    seconds = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name, chunk in settings.items():
            seconds[name].append(chunk() / args.chunk)
    base = None
    print("| setting | ms/step | ratio |\n|---|---|---|")
    for name, values in seconds.items():
        ms = 1000 * float(np.median(values))
        base = base or ms
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")
    print(footer())


if __name__ == "__main__":
    main()
