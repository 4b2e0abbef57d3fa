"""Benchmark: tfobj's native connected_components vs scipy.ndimage.label and tfa's C++ kernel.

Run from the repo root on either stack (tfa is timed only where it imports, i.e. TF <= 2.15):

    python benchmarks/connected_components.py [--batch 64] [--size 128] [--repeats 7]

Cases, each a `[batch, size, size]` int32 batch: random binary images at 45% fill, a
1-pixel-wide vertical serpentine spanning each image (the worst case for label propagation) and
a checkerboard (every pixel its own component). Times are the median wall time of `--repeats`
calls after a warm-up, the implementations taking turns: native is a `tf.function` called
eagerly, tfa its own `tf.function`, scipy a Python loop of `ndimage.label` over the batch
(4-connectivity, no relabelling). Peak RSS is the process's high-water mark after each case.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy import ndimage  # noqa: E402

from tfobj.ops.connected_components import connected_components, tfa_available  # noqa: E402


def make_cases(batch: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Benchmark inputs: name -> int32 `[batch, size, size]`."""
    random = (np.random.default_rng(seed).random((batch, size, size)) < 0.45).astype(np.int32)
    serpentine = np.zeros((size, size), np.int32)
    serpentine[:, ::2] = 1  # columns joined alternately at the bottom and the top
    serpentine[-1, 1::4] = 1
    serpentine[0, 3::4] = 1
    rows, cols = np.indices((size, size))
    checkerboard = ((rows + cols) % 2 == 0).astype(np.int32)
    return {
        "random 45%": random,
        "serpentine": np.repeat(serpentine[None], batch, axis=0),
        "checkerboard": np.repeat(checkerboard[None], batch, axis=0),
    }


def median_ms(fns: dict, repeats: int) -> dict:
    """Median wall time in milliseconds of each `fn()`, after one warm-up call each.

    The functions take turns within every repeat, so that load from other processes on the
    machine affects all of them alike.
    """
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_case(images: np.ndarray, native, tfa, repeats: int) -> dict:
    """Median milliseconds of each implementation on one `[N, H, W]` batch (tfa may be None)."""
    tensor = tf.constant(images)
    fns = {"native": lambda: native(tensor).numpy(), "scipy": lambda: [ndimage.label(image) for image in images]}
    if tfa is not None:
        # Same labels, or the timing comparison is meaningless.
        assert np.array_equal(native(tensor).numpy(), tfa.image.connected_components(tensor).numpy())
        fns["tfa"] = lambda: tfa.image.connected_components(tensor).numpy()
    return median_ms(fns, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    native = tf.function(connected_components)
    tfa = None
    if tfa_available():  # Imports tfa with its warnings silenced; the import below is then quiet.
        import tensorflow_addons as tfa

    print(f"tensorflow {tf.__version__}, tfa {'available' if tfa else 'not importable'}, {os.cpu_count()} CPUs; "
          f"batch {args.batch}x{args.size}x{args.size}, median of {args.repeats}; RSS {peak_rss_mb():.0f} MiB")
    header = (f"{'case':<13} {'native ms':>9} {'scipy ms':>9} {'tfa ms':>8} "
              f"{'native/scipy':>12} {'native/tfa':>10} {'tfa/scipy':>9} {'peak RSS MiB':>12}")
    print(header)
    print("-" * len(header))
    for name, images in make_cases(args.batch, args.size).items():
        times = time_case(images, native, tfa, args.repeats)

        def ratio(a, b):
            return f"{times[a] / times[b]:.2f}" if a in times and b in times else "-"

        tfa_ms = f"{times['tfa']:.1f}" if "tfa" in times else "-"
        print(f"{name:<13} {times['native']:>9.1f} {times['scipy']:>9.1f} {tfa_ms:>8} "
              f"{ratio('native', 'scipy'):>12} {ratio('native', 'tfa'):>10} {ratio('tfa', 'scipy'):>9} "
              f"{peak_rss_mb():>12.0f}")


if __name__ == "__main__":
    main()
