"""Benchmark: tfobj's sparse sprite renderer vs a naive dense one (every object x every pixel).

    python benchmarks/render_sprites.py [--batch 2] [--repeats 15] [--stat median|min] [--xla] [--spair]

Three sweeps, each printing the median time per call (after warm-up) of the forward pass and of
forward + backward, for the sparse renderer (`tfobj.rendering.render_sprites`) and for the dense
reference below, with each column's ratio to the sweep's first row and the dense/sparse speed-up:

  (a) image size 48..384 px at K = 16 boxes of 14 x 14 px: the sparse renderer's pair work is
      constant; only zero-filling its accumulators and copying the background grow with H*W. The
      dense one grows with H*W.
  (b) K = 4..256 objects at 96 x 96 px, 14 px boxes: both grow with K, the dense one K*H*W.
  (c) box size 7..56 px at 192 x 192 px, K = 16: the sparse renderer grows with the box area (the
      box grown by half a texel, box/28 px, per side); the dense one is constant (it already pays
      for every pixel).

`--spair` runs only (d): SPAIR's scale (batch 32, 48 x 48 px, K = 16, box size 8..40 px), the renderer's two
methods, "pairs" (the ragged list above) and "dense" (every object at every pixel, two matrix products per
object; the default where `max_box_size`'s window covers the image), forward + backward, with their ratio.

`--xla` adds the renderer under `tf.function(jit_compile=True)`, where it switches to static pair
windows (`max_box_size`, here 56 px, the largest box of the sweeps): every object pays for its window
of min(floor(56 * 15/14) + 2, H)^2 = 62^2 pairs whatever its box, but one XLA program serves every box
configuration (the exact ragged pair list has a data-dependent size that XLA cannot compile).
Both renderers are `tf.function`s; the dense one computes the same Algorithm 1 (checked at start-up).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfobj.rendering import render_sprites  # noqa: E402

SPRITE = 14  # texels per side, as SPAIR's 14 x 14 object glimpses


def dense_render_sprites(background, appearance, alpha, boxes, z_pres, z_depth):
    """Algorithm 1 evaluated for every object at every pixel ([B, K, H, W] work), float32, with the
    same edge convention (CONTAINS: -1 < u < h, -1 < v < w; out-of-grid taps read 0 for alpha and the
    background for colour)."""
    batch, height, width, channels = (tf.shape(background)[i] for i in range(4))
    sprite_h, sprite_w = tf.shape(appearance)[2], tf.shape(appearance)[3]
    hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    top, left = boxes[..., 0] * hf, boxes[..., 1] * wf  # [B, K]
    box_h, box_w = boxes[..., 2] * hf - top, boxes[..., 3] * wf - left
    yc = tf.cast(tf.range(height), tf.float32) + 0.5  # [H]
    xc = tf.cast(tf.range(width), tf.float32) + 0.5  # [W]
    safe_h = tf.where(box_h > 0, box_h, 1.0)
    safe_w = tf.where(box_w > 0, box_w, 1.0)
    shf, swf = tf.cast(sprite_h, tf.float32), tf.cast(sprite_w, tf.float32)
    u = (yc - top[..., None]) / safe_h[..., None] * shf - 0.5  # [B, K, H]
    v = (xc - left[..., None]) / safe_w[..., None] * swf - 0.5  # [B, K, W]
    inside_y = (u > -1) & (u < shf) & (box_h > 0)[..., None]
    inside_x = (v > -1) & (v < swf) & (box_w > 0)[..., None]
    mask = tf.cast(inside_y[..., :, None] & inside_x[..., None, :], tf.float32)[..., None]  # [B, K, H, W, 1]
    u0f, v0f = tf.floor(u), tf.floor(v)
    du, dv = u - u0f, v - v0f
    u0, v0 = tf.cast(u0f, tf.int32), tf.cast(v0f, tf.int32)

    def axis_taps(i0, frac, size):  # clamped indices and weights with out-of-grid taps zeroed
        i1 = i0 + 1
        w0 = tf.where((i0 >= 0) & (i0 < size), 1 - frac, 0.0)
        w1 = tf.where((i1 >= 0) & (i1 < size), frac, 0.0)
        return tf.clip_by_value(i0, 0, size - 1), tf.clip_by_value(i1, 0, size - 1), w0, w1

    u0, u1, wu0, wu1 = axis_taps(u0, du, sprite_h)
    v0, v1, wv0, wv1 = axis_taps(v0, dv, sprite_w)
    wu0, wu1 = wu0[..., :, None, None], wu1[..., :, None, None]
    wv0, wv1 = wv0[..., None, :, None], wv1[..., None, :, None]
    texels = tf.reshape(tf.concat([appearance, alpha], -1), tf.stack([batch, -1, sprite_h * sprite_w, channels + 1]))

    def tap(ui, vi):  # [B, K, H, W, C + 1]
        index = ui[..., :, None] * sprite_w + vi[..., None, :]
        return tf.reshape(tf.gather(texels, tf.reshape(index, tf.stack([batch, -1, height * width])), batch_dims=2),
                          tf.stack([batch, -1, height, width, channels + 1]))

    sample = (tap(u0, v0) * wv0 + tap(u0, v1) * wv1) * wu0 + (tap(u1, v0) * wv0 + tap(u1, v1) * wv1) * wu1
    coverage = (wu0 + wu1) * (wv0 + wv1)
    colour = sample[..., :-1] + (1 - coverage) * background[:, None]  # background padding
    a = sample[..., -1:] * z_pres[..., None, None, None] * mask
    g = a * tf.sigmoid(-z_depth)[..., None, None, None]
    mixed = a * colour + (1 - a) * background[:, None]
    weighted_sum = tf.reduce_sum(g * mixed, axis=1)
    normalizer = tf.reduce_sum(g, axis=1)
    written = normalizer != 0
    return tf.where(written, weighted_sum / tf.where(written, normalizer, 1.0), background)


def sparse_pair_count(boxes, size):
    """Number of (object, pixel) pairs the sparse renderer enumerates: per axis the pixels with
    -1 < u < SPRITE, i.e. centres strictly within the box grown by half a texel, clipped to the image."""
    px = boxes.numpy().astype(np.float64) * size
    total = 0
    for lo_px, hi_px in ((px[..., 0], px[..., 2]), (px[..., 1], px[..., 3])):
        half = (hi_px - lo_px) / (2 * SPRITE)
        first = np.clip(np.floor(lo_px - half - 0.5) + 1, 0, size)
        last = np.clip(np.ceil(hi_px + half - 0.5), 0, size)
        count = np.maximum(last - first, 0)
        total = count if isinstance(total, int) else total * count
    return int(total.sum())


def make_inputs(batch, size, num_objects, box_px, seed=0):
    rng = np.random.default_rng(seed)
    background = rng.random((batch, size, size, 3), np.float32)
    appearance = rng.random((batch, num_objects, SPRITE, SPRITE, 3), np.float32)
    alpha = rng.random((batch, num_objects, SPRITE, SPRITE, 1), np.float32)
    lo = rng.uniform(0, size - box_px, (batch, num_objects, 2))
    boxes = np.concatenate([lo, lo + box_px], -1) / size
    z_pres = rng.uniform(0.5, 1, (batch, num_objects))
    z_depth = rng.normal(size=(batch, num_objects))
    return [tf.constant(a, tf.float32) for a in (background, appearance, alpha, boxes, z_pres, z_depth)]


def make_callables(renderer, jit_compile=False):
    forward = tf.function(renderer, jit_compile=jit_compile)

    def _grad(*args):
        with tf.GradientTape() as tape:
            tape.watch(args)
            loss = tf.reduce_sum(tf.square(renderer(*args)))
        return tape.gradient(loss, args)

    return forward, tf.function(_grad, jit_compile=jit_compile)


STAT = statistics.median


def time_call(fn, args, repeats, warmup=4, budget_s=4.0):
    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else None, fn(*args))
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else None, fn(*args))
        times.append(time.perf_counter() - t0)
    return STAT(times) * 1e3  # ms


def sweep(title, param_name, settings, methods, batch, repeats):
    names = list(methods)
    print(f"\n{title}")
    header = f"{param_name:>12} {'pairs(sparse)':>13} {'pairs(dense)':>12} | " + " | ".join(f"{n:>22}" for n in names)
    dense = "dense fwd" in methods
    header += " | dense/sparse fwd  fwd+bwd" if dense else ""
    print(header)
    print("-" * len(header))
    first = {}
    for value, (size, k, box) in settings:
        args = make_inputs(batch, size, k, box)
        row = {}
        for name, fn in methods.items():
            row[name] = time_call(fn, args, repeats)
            first.setdefault(name, row[name])
        cells = " | ".join(f"{row[n]:9.2f} ms (x{row[n] / first[n]:5.2f})" for n in names)
        sparse_pairs = sparse_pair_count(args[3], size)  # boxes grown by half a texel per side
        dense_pairs = batch * k * size * size
        speedup = (f" | {row['dense fwd'] / row['sparse fwd']:14.1f}x {row['dense fwd+bwd'] / row['sparse fwd+bwd']:7.1f}x"
                   if dense else "")
        print(f"{value:>12} {sparse_pairs:>13,} {dense_pairs:>12,} | {cells}{speedup}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--xla", action="store_true", help="also time the renderer under jit_compile=True (static pair windows)")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="statistic over the timed calls (min is more robust on a loaded machine)")
    parser.add_argument("--spair", action="store_true", help="only sweep (d): pairs vs dense path at SPAIR's scale")
    args = parser.parse_args()
    global STAT
    STAT = statistics.median if args.stat == "median" else min

    if args.spair:
        print(f"tf {tf.__version__}, {os.cpu_count()} CPU threads, load average {os.getloadavg()[0]:.1f}; "
              f"{args.stat} of 3 alternated rounds")
        spair_scale(args.repeats)
        return
    sparse_fwd, sparse_grad = make_callables(render_sprites)
    dense_fwd, dense_grad = make_callables(dense_render_sprites)
    methods = {"sparse fwd": sparse_fwd, "sparse fwd+bwd": sparse_grad, "dense fwd": dense_fwd, "dense fwd+bwd": dense_grad}

    check = make_inputs(2, 40, 6, 13.3, seed=1)
    diff = np.abs(sparse_fwd(*check).numpy() - dense_fwd(*check).numpy()).max()
    print(f"tf {tf.__version__}, {os.cpu_count()} CPU threads, batch {args.batch}, sprites {SPRITE}x{SPRITE}, C = 3; "
          f"{args.stat} of <= {args.repeats} calls after warm-up. max |sparse - dense| on a check input: {diff:.1e}")
    print("cells: time per call (ratio to the sweep's first row)")

    if args.xla:
        bounded = lambda *a: render_sprites(*a, max_box_size=(56.0, 56.0))  # noqa: E731
        methods["xla fwd"], methods["xla fwd+bwd"] = make_callables(bounded, jit_compile=True)
        diff = np.abs(methods["xla fwd"](*check).numpy() - sparse_fwd(*check).numpy()).max()
        print(f"max |xla - sparse| on the check input: {diff:.1e}")

    sweep("(a) image size grows; K = 16 boxes of 14 x 14 px", "image px",
          [(s, (s, 16, 14)) for s in (48, 96, 192, 384)], methods, args.batch, args.repeats)
    sweep("(b) number of objects grows; 96 x 96 image, 14 x 14 px boxes", "K",
          [(k, (96, k, 14)) for k in (4, 16, 64, 256)], methods, args.batch, args.repeats)
    sweep("(c) box size grows; 192 x 192 image, K = 16", "box px",
          [(b, (192, 16, b)) for b in (7, 14, 28, 56)], methods, args.batch, args.repeats)


def spair_scale(repeats, batch=32):
    """(d) The pair and dense paths at SPAIR's scale, forward + backward, alternated per box size."""
    paths = {method: make_callables(lambda *a, m=method: render_sprites(*a, method=m))[1] for method in ("pairs", "dense")}
    print(f"\n(d) SPAIR's scale: batch {batch}, 48 x 48 image, K = 16, forward + backward")
    print(f"{'box px':>7} {'pairs':>9} {'B*K*H*W':>9} | {'pairs path':>10} | {'dense path':>10} | pairs / dense")
    for box in (8, 16, 24, 32, 40):
        args = make_inputs(batch, 48, 16, box)
        times = {m: [] for m in paths}
        for _ in range(3):  # alternate, so a change in load hits both
            for method, fn in paths.items():
                times[method].append(time_call(fn, args, max(repeats // 3, 1), warmup=1))
        pairs, dense = (STAT(times[m]) for m in ("pairs", "dense"))
        print(f"{box:>7} {sparse_pair_count(args[3], 48):>9,} {batch * 16 * 48 * 48:>9,} | {pairs:7.1f} ms | "
              f"{dense:7.1f} ms | {pairs / dense:5.2f}x")


if __name__ == "__main__":
    main()
