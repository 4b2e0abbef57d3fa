"""Where SPAIR's training step spends its time and memory: TensorFlow's profiler over the step `fit` runs.

    python benchmarks/spair_profile.py [--batch 32] [--size 48] [--steps 5] [--renderer auto|pairs|dense]
                                       [--jit] [--inter-op N] [--intra-op N] [--top 15] [--logdir DIR]
                                       [--no-profile]

Builds `SPAIR(seed=0)` with SPAIR's optimizer, runs Keras' own `train_function` (the step `fit` runs) a few
times to warm up, times `--steps` steps without the profiler, then records `--steps` more with
`tf.profiler.experimental` and reads the trace (the XSpace protobuf the profiler writes) with the protobuf
classes TensorFlow itself ships (`tensorflow.tsl.profiler.protobuf.xplane_pb2`): no TensorBoard, xprof or other
package is needed. It prints, per step:

* every op's self time, grouped by the part of the model its name scope belongs to (backbone, the cells'
  MLPs, the object encoder, the rest of the cell loop (glimpse gathers, boxes, lateral context), object decoder,
  renderer, loss (NLL, Normal KLs, count prior), optimizer (Adam, clipping)), forward and backward apart;
* the executor's own overhead (time in `ExecutorState::Process` outside any op) and the idle time: the
  inter-op threads x the step's wall time, minus the time they spent in the executor;
* the largest single ops, and memory: the allocator's peak bytes in use during the profiled steps (with the
  op and shape allocating at that moment), the bytes each part allocates per step, and the process' peak RSS.

Op times are wall times on the thread that ran the op; an op that fans out to the intra-op (Eigen) threads
counts once, with its wall time. The numbers are for this machine and its load: compare runs made one
after the other (e.g. `--renderer pairs` and `--renderer dense`), not against another machine.

`--renderer` selects `render_sprites`' method inside SPAIR (the library default is "auto"); `--jit` compiles
the step with XLA (`compile(jit_compile=True)`), whose fused clusters the grouping reports under "XLA
cluster"; `--inter-op`/`--intra-op` set TensorFlow's thread pools before anything runs.
"""
from __future__ import annotations

import argparse
import collections
import functools
import glob
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# (label, pattern on the op's name scope): the first that matches wins. Names look like
# "StatefulPartitionedCall/gradient_tape/spair_1/cell_encoder_1/box_net_3/dense_1_1/MatMul".
PARTS = (
    ("renderer", r"render_sprites"),
    ("backbone", r"backbone"),
    ("cells: box/depth/pres MLPs", r"cell_encoder[^/]*/(box_net|depth_net|pres_net)"),
    ("cells: object encoder MLP", r"cell_encoder[^/]*/object_encoder"),
    ("cells: glimpse, boxes, context", r"cell_encoder"),
    ("object decoder", r"object_decoder"),
    ("gradient sums (top-level AddN)", r"^StatefulPartitionedCall/AddN(_\d+)?$"),
    ("optimizer (Adam, clipping)", r"(^|/)(adam|sgd|rmsprop|clip_by_global_norm|global_norm)[^/]*/|AssignVariableOp"),
    ("loss (NLL, KLs, count prior)", r"KullbackLeibler|PartitionedCall|^StatefulPartitionedCall/[^/]+$|Log|clip_by_value"),
    ("XLA cluster", r"cluster|_XlaRun|XlaLaunch"),
)
NOT_OPS = ("ExecutorState::", "ThreadpoolListener::", "Memory", "ParallelFor", "EagerLocalExecute", "Iterator::")


OPTIMIZER = "optimizer (Adam, clipping)"
UNDIRECTED = (OPTIMIZER, "XLA cluster", "gradient sums (top-level AddN)")  # parts not split into fwd / bwd


def part_of(op_name: str, parts=PARTS, undirected=UNDIRECTED) -> str:
    """The part an op belongs to: the label of the first of `parts` whose pattern matches its name scope
    ("other" if none), with " (fwd)" or " (bwd)" appended unless the label is one of `undirected`."""
    scope = op_name.split(":")[0]
    backward = "gradient_tape/" in scope or "/gradients/" in scope or scope.endswith("_grad")
    label = next((name for name, pattern in parts if re.search(pattern, scope)), "other")
    if label in undirected:
        return label
    return f"{label} ({'bwd' if backward else 'fwd'})"


def load_xspace(logdir: str):
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:  # pragma: no cover - depends on the TensorFlow build
        raise SystemExit(f"spair_profile: this TensorFlow ({tf.__version__}) does not ship "
                         f"tensorflow.tsl.profiler.protobuf.xplane_pb2 ({error}); cannot read the trace.") from error
    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise SystemExit(f"spair_profile: no *.xplane.pb under {logdir}/plugins/profile")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(sorted(paths)[-1]).read_bytes())
    return space


def profile_steps(step, steps: int, logdir: str):
    """Runs `step()` `steps` times under `tf.profiler.experimental`, each in a "train" trace event (what
    `analyse` measures the step's wall time by), writing to `logdir`; returns the trace's XSpace."""
    tf.profiler.experimental.start(logdir)
    for index in range(steps):
        with tf.profiler.experimental.Trace("train", step_num=index, _r=1):
            step()
    tf.profiler.experimental.stop()
    return load_xspace(logdir)


def _stat_value(stat, stat_metadata):
    for field in ("int64_value", "uint64_value", "double_value", "str_value"):
        if stat.HasField(field):
            return getattr(stat, field)
    if stat.HasField("ref_value"):
        return stat_metadata[stat.ref_value].name
    return None


def analyse(space, steps: int, part_of=part_of) -> dict:
    """Per-step totals from the host plane: op self times by part (`part_of(op name) -> label`), executor time,
    thread time, memory."""
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    meta, stat_meta = plane.event_metadata, plane.stat_metadata
    by_part, by_op, count = collections.Counter(), collections.Counter(), collections.Counter()
    alloc_by_part = collections.Counter()
    executor_ps, compute_threads, step_ps = 0, 0, 0
    peak = (0, "", "")
    for line in plane.lines:
        if line.name.startswith("python") or line.display_name.startswith("python"):
            step_ps += sum(e.duration_ps for e in line.events if meta[e.metadata_id].name == "train")
        if "Eigen" in line.name or "iterator" in line.name:
            continue  # intra-op workers (their regions carry no durations) and tf.data
        events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
        stack = []  # (end_ps, key or None) of the enclosing op events, for self times
        has_ops = False
        for event in events:
            name = meta[event.metadata_id].name
            if name.startswith("ExecutorState::Process"):
                executor_ps += event.duration_ps
                continue
            if name.startswith("MemoryAllocation"):
                stats = {stat_meta[s.metadata_id].name: _stat_value(s, stat_meta) for s in event.stats}
                alloc_by_part[part_of(str(stats.get("tf_op", "")))] += int(stats.get("allocation_bytes") or 0)
                in_use = int(stats.get("bytes_allocated") or 0)
                if in_use > peak[0]:
                    peak = (in_use, str(stats.get("tf_op", "")), str(stats.get("shape", "")))
                continue
            if ":" not in name or name.startswith(NOT_OPS) or "::" in name:
                continue
            has_ops = True
            start, end = event.offset_ps, event.offset_ps + event.duration_ps
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack:  # nested in another op (e.g. a function call op): not its parent's self time
                by_op[stack[-1][1]] -= event.duration_ps
                by_part[part_of(stack[-1][1])] -= event.duration_ps
            by_op[name] += event.duration_ps
            by_part[part_of(name)] += event.duration_ps
            count[part_of(name)] += 1
            stack.append((end, name))
        compute_threads += line.name.startswith("tf_Compute") or (has_ops and not line.name.startswith("python"))
    ms = 1e-9 / steps
    return {"by_part": {k: v * ms for k, v in by_part.items()}, "ops_per_step": {k: v / steps for k, v in count.items()},
            "by_op": {k: v * ms for k, v in by_op.items()}, "executor": executor_ps * ms, "step": step_ps * ms,
            "threads": compute_threads, "peak": peak, "alloc_by_part": {k: v / steps for k, v in alloc_by_part.items()}}


def print_report(result: dict, top: int, optimizer: str = OPTIMIZER) -> None:
    """Prints `analyse`'s result; `optimizer` is the label of the optimizer's part."""
    parts, busy = result["by_part"], sum(result["by_part"].values())
    thread_time = result["threads"] * result["step"]
    overhead = max(result["executor"] - busy, 0.0)
    idle = max(thread_time - result["executor"], 0.0)
    print(f"\nstep wall time {result['step']:.1f} ms (profiled); {result['threads']} executor threads -> "
          f"{thread_time:.1f} ms thread time; ops busy {busy:.1f} ms")
    print("\n| part | ms/step | % of op time | ops/step |\n|---|---|---|---|")
    for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {value:.1f} | {100 * value / busy:.1f} | {result['ops_per_step'].get(name, 0):.0f} |")
    groups = collections.Counter()
    for name, value in parts.items():
        groups[name.rsplit(" (", 1)[0]] += value
    print("\n| part, fwd + bwd | ms/step | % of op time |\n|---|---|---|")
    for name, value in groups.most_common():
        print(f"| {name} | {value:.1f} | {100 * value / busy:.1f} |")
    forward = sum(v for k, v in parts.items() if k.endswith("(fwd)"))
    backward = sum(v for k, v in parts.items() if k.endswith("(bwd)"))
    print(f"\nforward {forward:.1f} ms, backward {backward:.1f} ms, optimizer "
          f"{parts.get(optimizer, 0.0):.1f} ms per step")
    print(f"thread time: ops {100 * busy / thread_time:.0f}%, executor overhead {100 * overhead / thread_time:.0f}%, "
          f"idle {100 * idle / thread_time:.0f}%")
    print("\nlargest ops (ms/step):")
    for name, value in sorted(result["by_op"].items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {value:7.2f}  {name[:150]}")
    in_use, op, shape = result["peak"]
    print(f"\nmemory: allocator peak {in_use / 2**20:.0f} MiB in use (while {op or '?'} allocated {shape or '?'}); "
          f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("allocated per step (MiB), by part: " + ", ".join(
        f"{name} {value / 2**20:.0f}" for name, value in sorted(result["alloc_by_part"].items(), key=lambda kv: -kv[1])
        if value >= 2**20))


def train_step(model, batches):
    """One call of Keras' own `train_function` (the step `fit` runs) on the next of `batches` (an iterator),
    waiting for its loss, so that timing it times the step."""
    return lambda: float(model.train_function(batches)["loss"])


def time_steps(step, warmup: int, steps: int) -> float:
    """Seconds per call of `step()` over `steps` calls, after `warmup` calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=48, help="image height and width (multiple of 12)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--renderer", choices=["auto", "pairs", "dense"], default="auto")
    parser.add_argument("--jit", action="store_true", help="compile(jit_compile=True)")
    parser.add_argument("--inter-op", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--intra-op", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--top", type=int, default=15, help="how many of the largest ops to list")
    parser.add_argument("--logdir", default=None, help="where the profiler writes (default: a temporary folder)")
    parser.add_argument("--no-profile", action="store_true", help="only time the unprofiled steps")
    args = parser.parse_args(argv)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    from tfobj.models.spair import spair as spair_module
    from tfobj.models.spair.spair_config import SPAIR_TRAINING
    from tfobj.rendering.render_sprites import render_sprites
    from tfobj.training.optimizers import build_optimizer

    spair_module.render_sprites = functools.partial(render_sprites, method=args.renderer)
    rng = np.random.default_rng(0)
    images = tf.constant((rng.random((args.batch, args.size, args.size, 3)) > 0.9).astype(np.float32))
    model = spair_module.SPAIR(seed=0)
    model(images[:1])
    model.compile(optimizer=build_optimizer(SPAIR_TRAINING), jit_compile=args.jit)
    model.make_train_function()
    batches = iter(tf.data.Dataset.from_tensors({"images": images}).repeat())

    step = train_step(model, batches)
    seconds = time_steps(step, args.warmup, args.steps)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; batch "
          f"{args.batch}, {args.size}x{args.size}, renderer {args.renderer}, XLA {args.jit}, threads inter "
          f"{args.inter_op or 'default'} / intra {args.intra_op or 'default'}")
    print(f"unprofiled: {1e3 * seconds:.1f} ms/step, {args.batch / seconds:.1f} img/s")

    if args.no_profile:
        return
    logdir = args.logdir or tempfile.mkdtemp(prefix="spair_profile_")
    print_report(analyse(profile_steps(step, args.steps, logdir), args.steps), args.top)
    print(f"\ntrace: {logdir} (TensorBoard's profile plugin can open it)")


if __name__ == "__main__":
    main()
