"""SILOT throughput on this machine: training and tracking frames/second of the paper's model (supplement Tables 1
and 2) as the number of objects and the frame size grow, with the cost ratios.

    python benchmarks/silot.py [--repeats 3] [--batch 2] [--frames 2] [--sizes 48 96] [--slots 4 16]
                               [--objects 1 8]

The paper's claim (section 3): SILOT's cost grows with the image's area, not sequentially with the number of
objects: discovery is one convolutional pass over the frame's 12-pixel cells, and the K propagated objects are
updated in parallel (one batched `PropagationCell` call per frame, not one call per object). Three sweeps show it:

  (a) objects in the video, at a fixed frame size and K: the same model on videos of 1 and of 8 moving squares
      (the compute is the same; only the renderer's work depends on the boxes, which are the model's own);
  (b) K, the propagated slots (the most objects tracked at once), at a fixed frame size;
  (c) the frame size at a fixed K: the cells, so discovery's work, grow with the area (48×48: 16 cells;
      96×96: 64).

Training times the step `fit` runs (the compiled model's `train_function`, SILOT's optimizer, an unrolled graph of
`--frames` frames); tracking times the "serve" endpoint as the SavedModel runs it (`tf.function` with the exported
signature: unknown batch, frames and size, so the frames are a `tf.while_loop`), in the posterior mode.
frames/second counts batch × frames. All models are built first and their steps timed in alternation (repeat r of
each before repeat r + 1 of any), so a change in the machine's load hits them alike.
"""
import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.models.silot.silot import SILOT  # noqa: E402
from tfobj.models.silot.silot_config import SILOT_TRAINING, SILOTConfig  # noqa: E402
from tfobj.training.optimizers import build_optimizer  # noqa: E402
from benchmarks.timing import footer, header, run_once  # noqa: E402



def moving_squares(batch, frames, size, objects, side=10, seed=0):
    """float32 `[B, T, size, size, 3]`: `objects` coloured squares per video, moving 2 px per frame, bouncing."""
    rng = np.random.default_rng(seed)
    videos = np.zeros((batch, frames, size, size, 3), np.float32)
    for video in videos:
        position = rng.uniform(0, size - side, (objects, 2))
        velocity = rng.choice([-2.0, 2.0], (objects, 2))
        colour = rng.uniform(0.3, 1.0, (objects, 3))
        for frame in video:
            for (row, col), rgb in zip(position.astype(int), colour):
                frame[row:row + side, col:col + side] = rgb
            position += velocity
            bounce = (position < 0) | (position > size - side)
            velocity[bounce] *= -1
            position = np.clip(position, 0, size - side)
    return videos


def build(size, slots, args):
    """The paper's SILOT with K = `slots`, its train and serve steps on a batch of videos of `size`."""
    # curriculum_start_frames: every timed training step runs on all `--frames` frames (the curriculum would clip
    # the first 40,000 steps to 2 frames, while the rates count batch × frames).
    model = SILOT(dataclasses.replace(SILOTConfig(), num_objects=slots, curriculum_start_frames=args.frames), seed=0)
    videos = {n: tf.constant(moving_squares(args.batch, args.frames, size, n)) for n in args.objects}
    first = videos[args.objects[0]]
    model(first[:1, :2])
    model.compile(optimizer=build_optimizer(SILOT_TRAINING))
    model.make_train_function()
    function, signature = model.serving_endpoints()["serve"]
    serve = tf.function(function, input_signature=signature)
    steps = {}
    for n, batch in videos.items():
        batches = iter(tf.data.Dataset.from_tensors({"videos": batch}).repeat())
        steps[("train", n)] = lambda batches=batches: model.train_function(batches)
        steps[("track", n)] = lambda batch=batch: serve(batch)
    return steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="videos per step (the paper: 16)")
    parser.add_argument("--frames", type=int, default=2,
                        help="frames per video (the paper: 8; its curriculum starts at 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96], help="frame sizes, multiples of 12")
    parser.add_argument("--slots", type=int, nargs="+", default=[4, 16], help="K values at the first size")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 8], help="squares per video")
    args = parser.parse_args()
    print(header(f"SILOTConfig() (Tables 1, 2), batch {args.batch} videos of {args.frames} frames; "
          f"median of {args.repeats} alternated repeats"))
    k = SILOTConfig().num_objects
    models = [(args.sizes[0], slots) for slots in args.slots if slots != k] + [(size, k) for size in args.sizes]
    steps = {}
    for size, slots in models:
        start = time.perf_counter()
        for (kind, n), step in build(size, slots, args).items():
            steps[(size, slots, kind, n)] = step
        for key in [key for key in steps if key[:2] == (size, slots)]:
            run_once(steps[key])  # trace
        print(f"built and traced {size}×{size}, K = {slots} in {time.perf_counter() - start:.0f} s", flush=True)
    times = {key: [] for key in steps}
    for key in steps:
        run_once(steps[key])
    for _ in range(args.repeats):
        for key, step in steps.items():
            times[key].append(run_once(step))
    rate = {key: args.batch * args.frames / float(np.median(t)) for key, t in times.items()}
    base = (args.sizes[0], k)

    def row(label, key, reference):
        train, track = rate[key[:2] + ("train", key[2])], rate[key[:2] + ("track", key[2])]
        train0, track0 = rate[reference[:2] + ("train", reference[2])], rate[reference[:2] + ("track", reference[2])]
        print(f"| {label} | {train:.2f} | {track:.1f} | {train / train0:.2f}× | {track / track0:.2f}× |")

    columns = "| {} | train frames/s | track frames/s | train, ratio | track, ratio |\n|---|---|---|---|---|"
    many = args.objects[-1]
    print(f"\n### (a) objects in the video: {base[0]}×{base[0]}, K = {k}\n\n" + columns.format("objects"))
    for n in args.objects:
        row(str(n), base + (n,), base + (args.objects[0],))
    print(f"\n### (b) propagated slots K: {base[0]}×{base[0]}, {many} objects\n\n" + columns.format("K"))
    for slots in sorted(set(args.slots) | {k}):
        row(str(slots), (base[0], slots, many), (base[0], min(set(args.slots) | {k}), many))
    print(f"\n### (c) frame size: K = {k}, {many} objects\n\n" + columns.format("frame (cells)"))
    for size in args.sizes:
        row(f"{size}×{size} ({(size // 12) ** 2})", (size, k, many), base + (many,))
    print(footer())


if __name__ == "__main__":
    main()
