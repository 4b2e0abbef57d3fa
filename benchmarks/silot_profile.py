"""Where SILOT's training step spends its time and memory: TensorFlow's profiler over the step `fit` runs.

    python benchmarks/silot_profile.py [--batch 16] [--frames 4] [--steps 5] [--warmup 3]
                                       [--renderer pairs|auto|dense] [--jit] [--top 20] [--logdir DIR]
                                       [--no-profile]

Builds SILOT with table 1's quick settings (configs/table1.toml's `silot.*` keys, loaded as reproduce/table1.py
loads them: half-width networks, K = 8, learned_prior false, renderer "original", ...), with
`curriculum_start_frames = --frames` so the curriculum's first stage already uses every frame, compiles it with
SILOT's optimizer (`build_optimizer` on the experiment's train config, XLA as that config says unless `--jit`),
and runs Keras' own `train_function` on `--batch` of the experiment's validation videos cut to `--frames`
frames: `--warmup` steps, `--steps` timed steps without the profiler, then `--steps` more under
`tf.profiler.experimental`. The trace is read and grouped with benchmarks/spair_profile.py's functions
(`profile_steps`, `analyse`, `print_report`); only the grouping of ops into SILOT's parts is SILOT's own.

Parts (`PARTS`, first match wins), from the op's name scope: the layers' Keras scopes (`discovery/backbone`,
`discovery/attention`, `discovery/fuse`, `discovery/cells/{box,what,depth,pres}_net`,
`discovery/cells/object_encoder`, `propagation/...`, `object_decoder`, `render_sprites`); the rest of a layer's
scope (glimpse extraction, boxes, the attention's Gaussian weights) under "... other ops". Selection
(`select_objects` and the gathers of `_frame`) and the loss have no scope of their own: they are the ops directly
in the model's scope and the ops of the training step outside it: selection is told apart by op type (TopKV2,
Sort, Cumsum, GatherV2, SelectV2, ... in the model's scope), the count prior by its nested function call, and
the rest is "loss, noise, checks, frame glue" — so these three are approximate.

The numbers are for this machine and its load: compare runs made one after the other, not against another
machine; the shares are what to read on a loaded machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "reproduce"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import spair_profile  # noqa: E402

OPTIMIZER = "optimizer (Adam, clipping)"
SELECTION = "selection (top-K, gathers, ids)"
# Ops in the model's own scope (not in a sub-layer) that belong to selection: `select_objects` and `_frame`'s
# gathers / identity bookkeeping. Op names end in ":<type>" in the trace; scopes look like
# "StatefulPartitionedCall/gradient_tape/silot_1/discovery_1/backbone_1/conv2d_0_1/Conv2D".
_SELECT_TYPES = r"(TopKV2|Sort|Cumsum|GatherV2|ResourceGather|Equal|Any|All|SelectV2|Select|LogicalAnd|LogicalNot|" \
                r"UnsortedSegmentSum|ScatterNd|TensorScatterAdd|TensorScatterUpdate|Range|Cast|GreaterEqual|Greater)"
_D = r"discovery[^/]*/"
_P = r"(?<!prior_)propagation[^/]*/"
PARTS = (
    ("renderer", r"render_sprites"),
    ("discovery: backbone", _D + r"backbone"),
    ("discovery: attention (spatial_attention)", _D + r"attention"),
    ("discovery: fuse MLP", _D + r"fuse"),
    ("discovery: heads (box/what/depth/pres MLPs)", _D + r"cells[^/]*/(box_net|what_net|depth_net|pres_net)"),
    ("discovery: glimpse encoder MLP", _D + r"cells[^/]*/object_encoder"),
    ("discovery: other ops (glimpses, boxes, noise)", _D),
    ("propagation: attention MLP", _P + r"attention"),
    ("propagation: glimpse encoder MLPs", _P + r"(first|second)_glimpse_encoder"),
    ("propagation: head MLPs", _P + r"(glimpse_where_net|where_net|what_net|what_input_net|depth_net|pres_net)"),
    ("propagation: GRU", _P + r"rnn"),
    ("propagation: other ops (glimpses, updates)", _P),
    ("prior propagation", r"prior_propagation"),
    ("object decoder", r"object_decoder"),
    ("gradient sums (top-level AddN)", r"^StatefulPartitionedCall/AddN(_\d+)?$"),
    (OPTIMIZER, r"(^|/)(adam|sgd|rmsprop|clip_by_global_norm|global_norm)[^/]*/|AssignVariableOp"),
    ("XLA cluster", r"cluster|_XlaRun|XlaLaunch"),
)
UNDIRECTED = (OPTIMIZER, "XLA cluster", "gradient sums (top-level AddN)")


def silot_part_of(op_name: str) -> str:
    """`spair_profile.part_of` with SILOT's parts; ops outside every layer's scope are split into the count
    prior (its `tf.function`, a nested PartitionedCall), selection (op types of `select_objects` and `_frame`'s
    gathers, in the model's scope) and the rest: the loss (NLL, KLs), noise, input checks, concats, slices and
    stacks of the frame loop."""
    part = spair_profile.part_of(op_name, PARTS, UNDIRECTED)
    if not part.startswith("other ("):
        return part
    scope, _, op_type = op_name.partition(":")
    direction = part[len("other "):]
    if re.search(r"PartitionedCall[^/]*/PartitionedCall", scope) or "count_prior" in scope:
        return f"count prior KL {direction}"
    in_model = re.search(r"(^|/)silot[^/]*/", scope) and not re.search(r"assert|VerifyFinite|clip_by_value|random",
                                                                        scope)
    if in_model and re.fullmatch(_SELECT_TYPES + r"(Grad)?", op_type):
        return f"{SELECTION} {direction}"
    return f"loss, noise, checks, frame glue {direction}"


def build(args):
    from tfobj import cli
    import table1
    from tfobj.models.silot import silot as silot_module
    from tfobj.rendering.render_sprites import render_sprites
    from tfobj.training.optimizers import build_optimizer
    from tfobj.training.precision import jit_compile

    cli_args = cli.parse_args(table1.__doc__, "table1", ["--only", "silot"], rows=list(table1.ROWS))
    config, _ = cli.load(cli_args, table1.Table1Config)
    exp = config.silot
    # render_sprites serves SILOT's renderer="original" option (the seed's softmax renderer has one method)
    silot_module.render_sprites = functools.partial(render_sprites, method=args.renderer)
    videos = exp.data.load("val")["videos"]
    videos = np.resize(videos, (args.batch,) + videos.shape[1:])[:, :args.frames].astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model_config = dataclasses.replace(exp.model, curriculum_start_frames=args.frames)
    model = silot_module.SILOT(model_config, seed=0)
    model(tf.constant(videos[:1]))
    xla = "on" if args.jit else exp.train.xla
    model.compile(optimizer=build_optimizer(dataclasses.replace(exp.train, xla=xla)), jit_compile=jit_compile(xla))
    model.make_train_function()
    return exp, model, videos, xla


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--renderer", choices=["pairs", "auto", "dense"], default="auto",
                        help="render_sprites' method for SILOT's renderer='original' option (the library default: "
                             "auto)")
    parser.add_argument("--jit", action="store_true", help="compile(jit_compile=True)")
    parser.add_argument("--top", type=int, default=20, help="how many of the largest ops to list")
    parser.add_argument("--logdir", default=None, help="where the profiler writes (default: a temporary folder)")
    parser.add_argument("--no-profile", action="store_true", help="only time the unprofiled steps")
    args = parser.parse_args(argv)

    exp, model, videos, xla = build(args)
    batches = iter(tf.data.Dataset.from_tensors({"videos": tf.constant(videos)}).repeat())

    step = spair_profile.train_step(model, batches)
    seconds = spair_profile.time_steps(step, args.warmup, args.steps)
    m = exp.model
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; SILOT "
          f"table-1 quick (K = {m.num_objects}, A = {m.num_what}, S = {m.hidden_size}, renderer {m.renderer!r}, "
          f"learned_prior {m.learned_prior}); batch {args.batch}, {args.frames} frames {videos.shape[2]}x"
          f"{videos.shape[3]}, render method {args.renderer}, XLA {xla}")
    print(f"unprofiled: {1e3 * seconds:.1f} ms/step, {args.batch / seconds:.1f} videos/s")
    if args.no_profile:
        return
    logdir = args.logdir or tempfile.mkdtemp(prefix="silot_profile_")
    space = spair_profile.profile_steps(step, args.steps, logdir)
    spair_profile.print_report(spair_profile.analyse(space, args.steps, silot_part_of), args.top, OPTIMIZER)
    print(f"\ntrace: {logdir} (TensorBoard's profile plugin can open it)")


if __name__ == "__main__":
    main()
