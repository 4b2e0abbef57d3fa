"""What every benchmark script times with: one call to completion, callables timed in alternation (so that a
change in the machine's load hits every setting alike), and the process's peak memory."""
import os
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


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, for the record (a shared machine slows every rate)."""
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def header(what: str) -> str:
    """The first line a benchmark prints: TensorFlow, CPUs, load, and what it runs."""
    return f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {load_average()} at start; {what}"


def footer() -> str:
    """The last line a benchmark prints: peak memory and load."""
    return f"\npeak RSS {peak_rss_mib():.0f} MiB (the whole process); load average {load_average()} at the end"


def add_sweep_options(parser, what: str) -> None:
    """`--no-sweeps`, `--sweep-repeats`, `--sweeps-only` for a benchmark with a model table and sweeps."""
    parser.add_argument("--no-sweeps", action="store_true", help=f"skip the {what}")
    parser.add_argument("--sweep-repeats", type=int, default=7, help="the sweeps report the fastest of these "
                        "(the call least disturbed by other load on a shared machine)")
    parser.add_argument("--sweeps-only", action="store_true", help="only the sweeps")
