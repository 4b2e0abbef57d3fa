"""What every `reproduce/` script shares: arguments, strict config loading, the quick-mode header, provenance.

A script is thin: it declares its config dataclass and default TOML file, calls `parse_args`, `load`, runs
its experiments through `tfobj.experiments`, and `write_results`. Every script takes

    --mode quick|full   quick (default): the config file's [quick] cuts, for a CPU; full: the papers' protocols
    --config PATH       TOML with the keys that differ from the dataclass defaults (the papers' values)
    --set KEY=VALUE     overrides, through the same strict loader (repeatable)
    --out DIR           output directory (default results/<script>/<mode>)
    --only NAME         rows to run, for scripts with rows (repeatable or comma-separated)
    --check             check the arguments and the config, print the resolved config, and stop

Run under `entry(main)`, a config error (unknown key, wrong type, invalid value) prints one line naming the
key and exits with status 2, before any data is generated or any model is built.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tfobj.config import describe_changes, load_config, to_dict

__all__ = ["ConfigError", "entry", "load", "parse_args", "provenance", "published", "quick_header",
           "rows_config", "write_results"]

ROOT = Path(__file__).resolve().parents[1]  # the checkout: configs/, reproduce/, results/
PACKAGES = ("tensorflow", "keras", "tensorflow-probability", "numpy", "scipy", "mlxtend")


class ConfigError(ValueError):
    """A config file or `--set` override that the strict loader rejects."""


def parse_args(description: str, name: str, argv: Sequence[str] | None = None, rows: Sequence[str] | None = None,
               config: str | Path | None = None, extra: Callable[[argparse.ArgumentParser], None] | None = None,
               output: bool = True):
    """Parses the shared arguments of script `name` (its default config is `configs/<name>.toml`).

    Args:
        description: the script's docstring (shown by --help).
        name: the script's name, for its default config and output directory.
        argv: the arguments (default sys.argv[1:]).
        rows: the script's row names, if it has rows (`--only` then selects among them).
        config: the default config file, if not `configs/<name>.toml`.
        extra: adds the script's own arguments to the parser.
        output: False for a script that writes elsewhere (no --out; e.g. train_spair.py's --run-dir).

    Returns:
        The argparse namespace; `args.out` is a `Path` (`args.out_given`: whether --out was passed), `args.only`
        a list of row names (all rows if none given).
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--config", default=str(config or ROOT / "configs" / f"{name}.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    if output:
        parser.add_argument("--out", default=None, help=f"output directory (default results/{name}/<mode>)")
    parser.add_argument("--check", action="store_true",
                        help="check the arguments and the config, print the resolved config, and stop")
    if rows is not None:
        parser.add_argument("--only", action="append", default=[], metavar="NAME",
                            help=f"run only these rows (repeatable or comma-separated): {', '.join(rows)}")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    _setup_logging()
    if output:
        args.out_given = args.out is not None
        args.out = Path(args.out) if args.out else ROOT / "results" / name / args.mode
    if rows is not None:
        args.only = [row for item in args.only for row in item.split(",") if row]
        unknown = sorted(set(args.only) - set(rows))
        if unknown:
            parser.error(f"unknown row(s) {unknown}; valid rows are {list(rows)}")
        args.only = args.only or list(rows)
    return args


def _setup_logging() -> None:
    """INFO lines with the time and the logger's name; TensorFlow's own logger at WARNING (under tf.distribute
    it logs an INFO line per collective op, i.e. per training step)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def load(args, cls: type):
    """The config for `args.mode` (file, its [quick] table in quick mode, then --set) and the full-mode config
    of the same file (for the quick-mode header). Raises `ConfigError` naming the key on any invalid value.
    With `--check`, prints the resolved config and raises `SystemExit(0)`."""
    try:
        config = load_config(cls, args.config, mode=args.mode, overrides=args.overrides)
        full = load_config(cls, args.config, mode="full")
    except (ValueError, FileNotFoundError, TypeError) as error:
        raise ConfigError(str(error)) from error
    if args.check:
        print(json.dumps(to_dict(config), indent=1, default=str))
        raise SystemExit(0)
    return config, full


def quick_header(mode: str, config, full, only: Sequence[str] | None = None) -> str:
    """For quick mode, the lines that say what it cuts (every key that differs from full mode); "" in full mode."""
    if mode != "quick":
        return ""
    cuts = describe_changes(config, full, only=only)
    return ("\nQuick mode: CPU, cut-down data and training — not comparable to the paper. It changes:\n"
            + "".join(f"- {cut}\n" for cut in cuts))


def published(table: str) -> dict:
    """The published numbers of `table` from reproduce/published.toml (each with its source)."""
    return tomllib.loads((ROOT / "reproduce" / "published.toml").read_text())[table]


def provenance(args, config, wall_time: float) -> dict:
    """The record every results.json starts with: command, mode, git commit, Python and package versions,
    wall time and the resolved config."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    packages = {}
    for package in PACKAGES:
        try:
            packages[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            packages[package] = None
    return {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "mode": args.mode,
        "git_commit": commit or "unknown",
        "python": platform.python_version(),
        "packages": packages,
        "wall_time_seconds": round(wall_time, 1),
        "config": to_dict(config),
    }


def write_results(args, config, wall_time: float, **results) -> dict:
    """Writes `<out>/results.json`: the provenance record plus `results`; returns the record."""
    record = provenance(args, config, wall_time)
    record.update(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=2, default=_json_default))
    return record


def _json_default(value):
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)


def rows_config(name: str, rows: Mapping[str, Callable[[], object]]) -> type:
    """A frozen dataclass with one field per row, each defaulting to its factory's experiment config, so a
    table's config file and `--set row.key=value` address each row's experiment."""
    fields = [(row, type(factory()), dataclasses.field(default_factory=factory)) for row, factory in rows.items()]
    return dataclasses.make_dataclass(name, fields, frozen=True)


RUN_FILES = ("backup", "workers", "tensorboard", "saved_model", "history.json", "best.json", "best.weights.h5",
             "results.json", "config.json")


def prepare_run_dir(run_dir: Path, config, restart: bool = False) -> None:
    """Makes `run_dir` ready for a training run of `config`, refusing to mix two runs.

    If it holds a run of the same config, the run resumes there (its backup, best weights and history are
    kept). If it holds a run of another config, that is a `ConfigError` naming the keys that differ, unless
    `restart`: then the earlier run's files are removed and this config trains from the start.
    """
    import shutil

    saved = run_dir / "config.json"
    if saved.exists():
        earlier = _flat(json.loads(saved.read_text()).get("config"))
        current = _flat(json.loads(json.dumps(to_dict(config))))  # as config.json holds it
        if earlier != current:
            if not restart:
                changed = sorted(key for key in earlier.keys() | current.keys() if earlier.get(key) != current.get(key))
                raise ConfigError(f"{run_dir} holds a run of another config (differing keys: {', '.join(changed)}); "
                                  "use another --run-dir, or --restart to train this config there from the start")
            for name in RUN_FILES:
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, Mapping):
        return {prefix.rstrip("."): tree}
    flat = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}{key}."))
    return flat


def entry(main: Callable[[], object]) -> None:
    """Runs a script's `main()`; a `ConfigError` prints one line and exits with status 2 (no traceback)."""
    try:
        main()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
