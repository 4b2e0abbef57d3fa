"""What every benchmark script times with: one call to completion, callables timed in alternation (so that a
change in the machine's load hits every setting alike), and the process's peak memory."""
import resource
import time

import numpy as np
import tensorflow as tf


def run_once(step) -> float:
    """Seconds for one call of `step()`, its outputs copied to numpy (so that the work has finished)."""
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, step())
    return time.perf_counter() - start


def alternate(steps: dict, repeats: int, stat=np.median) -> dict:
    """`stat` (median, or min for the sweeps) of the seconds per call of every callable, timed in alternation
    after two warm-up calls each."""
    for step in steps.values():
        run_once(step)
        run_once(step)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(run_once(step))
    return {name: float(stat(t)) for name, t in times.items()}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
