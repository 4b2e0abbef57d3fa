"""Generation speed of the procedural datasets (no cache): images or videos per second.

    python benchmarks/data_generation.py [--num-images 64000] [--num-videos 1000]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfobj import data  # noqa: E402


def timed(label, make, count):
    start = time.perf_counter()
    arrays = make()
    seconds = time.perf_counter() - start
    nbytes = sum(a.nbytes for a in arrays.values())
    print(f"| {label} | {count} | {seconds:.1f} | {count / seconds:,.0f} | {nbytes / 2**30:.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-images", type=int, default=64000)
    parser.add_argument("--num-videos", type=int, default=1000)
    args = parser.parse_args()
    digits = data.load_mnist()
    print(f"digits: {digits.source}\n")
    print("| dataset | count | seconds | per second | GiB |\n|---|---|---|---|---|")
    timed("Scattered MNIST 48x48, 1-5 digits", lambda: data.scattered_mnist(
        None, "train", args.num_images, cache_dir=None, digits=digits), args.num_images)
    timed("Scattered Shapes 48x48, 1-5 shapes", lambda: data.scattered_shapes(
        None, "train", args.num_images, cache_dir=None), args.num_images)
    timed("Scattered MNIST videos 48x48, 8 frames, 1-6", lambda: data.scattered_mnist_videos(
        None, "train", args.num_videos, cache_dir=None, digits=digits), args.num_videos)
    timed("Scattered Shapes videos 96x96, 8 frames, 1-10", lambda: data.scattered_shapes_videos(
        data.ScatteredShapesVideoConfig(image_size=(96, 96), max_shapes=10), "train", args.num_videos,
        cache_dir=None), args.num_videos)


if __name__ == "__main__":
    main()
