"""SPAIR's throughput and memory beside other implementations: benchmark processes run in alternation, one
configuration per process, in one run.

    python benchmarks/spair_peers.py [--rounds 3] [--repeats 5] [--stat median|max] [--background-load N]
                                     [--inter-op-variants] [--peer NAME=COMMAND ...]

Every round starts each entry's process once, in the same order, and reads the JSON line it prints last
(`train_img_s`, `infer_img_s`, `peak_rss_mib`); the table shows the median over rounds (`--stat max`: each
entry's best round, the rate least disturbed by other work on the machine, as `timeit` takes the fastest run) and
the ratios to the best peer (the peer with the highest training rate), so a change in the machine's load hits
every entry alike.
Peak RSS is the process' `ru_maxrss` (everything the process touched: the framework's libraries, graphs and
allocator caches, not only live tensors), the largest over rounds.

Entries: tfobj's SPAIR as `fit` and `predict` run it (`benchmarks/spair.py --configs auto --sizes 48
--no-sweeps --json`, batch 32, 48x48, float32, no XLA); with `--inter-op-variants` also the same with one
inter-op thread and with one inter-op and one intra-op thread; and one entry per `--peer NAME=COMMAND`, a
command that times another implementation at the same batch and image size and prints the same JSON line.
Peers' code is not part of tfobj: fetch and run it outside this repository (docs/spair.md, Speed, names the
implementations, commits and commands measured).

`--background-load N` runs N busy-looping processes for the whole run: the "concurrent CPU load" case.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def tfobj_command(repeats: int, inter_op: int = 0, intra_op: int = 0) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "spair.py"), "--configs", "auto", "--sizes", "48",
            "--no-sweeps", "--json", "--repeats", str(repeats), "--inter-op", str(inter_op), "--intra-op",
            str(intra_op)]


def last_json(output: str) -> dict:
    """The last line of `output` that parses as a JSON object."""
    for line in reversed(output.strip().splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    raise ValueError(f"no JSON line in the output:\n{output[-2000:]}")


def busy_loop():
    while True:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats inside each tfobj process")
    parser.add_argument("--stat", choices=("median", "max"), default="median",
                        help="statistic over the rounds of each entry's rates (max: its best round)")
    parser.add_argument("--background-load", type=int, default=0, help="busy-looping processes during the run")
    parser.add_argument("--inter-op-variants", action="store_true",
                        help="also tfobj with 1 inter-op thread, and with 1 inter-op and 1 intra-op thread")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=COMMAND",
                        help="a command printing {train_img_s, infer_img_s, peak_rss_mib} as its last JSON line")
    args = parser.parse_args(argv)
    entries = {"tfobj SPAIR": tfobj_command(args.repeats)}
    if args.inter_op_variants:
        entries["tfobj SPAIR, inter-op 1"] = tfobj_command(args.repeats, inter_op=1)
        entries["tfobj SPAIR, inter-op 1, intra-op 1"] = tfobj_command(args.repeats, inter_op=1, intra_op=1)
    peers = []
    for spec in args.peer:
        name, sep, command = spec.partition("=")
        if not sep or not name or not command:
            parser.error(f"--peer takes NAME=COMMAND; got {spec!r}")
        entries[name] = shlex.split(command)
        peers.append(name)

    load = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.background_load)]
    for process in load:
        process.start()
    records = {name: [] for name in entries}
    try:
        for round_ in range(args.rounds):
            for name, command in entries.items():
                done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
                if done.returncode:
                    raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
                records[name].append(last_json(done.stdout))
                print(f"round {round_ + 1}: {name}: {records[name][-1]}", file=sys.stderr, flush=True)
    finally:
        for process in load:
            process.terminate()

    stat = np.median if args.stat == "median" else np.max
    rows = {name: dict(train=float(stat([r["train_img_s"] for r in runs])),
                       infer=float(stat([r["infer_img_s"] for r in runs])),
                       rss=max(r["peak_rss_mib"] for r in runs)) for name, runs in records.items()}
    best = max(peers, key=lambda name: rows[name]["train"]) if peers else None
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, {args.background_load} busy "
          f"background processes; batch 32, 48x48; {'median' if args.stat == 'median' else 'best'} of {args.rounds} "
          "alternated rounds"
          + (f"; ratios to the fastest-training peer, {best}" if best else ""))
    print("| implementation | train img/s | infer img/s | peak RSS MiB |" + (" train | infer | memory |" if best else ""))
    print("|---|---|---|---|" + ("---|---|---|" if best else ""))
    for name, row in rows.items():
        line = f"| {name} | {row['train']:.1f} | {row['infer']:.1f} | {row['rss']:.0f} |"
        if best:
            ref = rows[best]
            line += (f" {row['train'] / ref['train']:.2f}x | {row['infer'] / ref['infer']:.2f}x | "
                     f"{row['rss'] / ref['rss']:.2f}x |")
        print(line, flush=True)


if __name__ == "__main__":
    main()
