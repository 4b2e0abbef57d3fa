"""Strict experiment configs: TOML files and `--set key=value` overrides into frozen dataclasses.

A config file holds only the keys that differ from the dataclass defaults (the defaults are the
papers' values). Unknown keys and wrong types are errors that name the key, what was given and
what is valid, so a typo can never be silently ignored.

A file may carry a `[quick]` table whose keys (dotted, as in `--set`) override the rest when
running in quick mode:

    [detection]
    num_test_images = 1000

    [quick]
    "detection.num_test_images" = 200
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _check_value(value: Any, tp: Any, key: str, default: Any = None) -> Any:
    """Returns `value` converted to type annotation `tp`, or raises ValueError naming `key`.

    A table for a nested dataclass is merged into `default` (that field's default instance), so a
    partial table changes only the keys it names.
    """
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"config key '{key}' must be a table of {tp.__name__} fields; got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.", base=default)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        tables = [option for option in options if _is_dataclass_type(option)]
        if tables and isinstance(value, Mapping):
            return _union_table(value, tables, key, default)
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, key)
            except ValueError:
                pass
        raise ValueError(f"config key '{key}': {value!r} matches none of {tp}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{key}' must be a list; got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], key) for v in value)
        if len(args) != len(value):
            raise ValueError(f"config key '{key}' must be a list of {len(args)} values; got {value!r}")
        return tuple(_check_value(v, a, key) for v, a in zip(value, args))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"config key '{key}' must be one of {typing.get_args(tp)}; got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key '{key}' must be a number; got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key '{key}' must be an integer; got {value!r}")
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise ValueError(f"config key '{key}' must be a {tp.__name__}; got {value!r}")
        return value
    return value


def check_choices(config, prefix: str = "") -> None:
    """Raises ValueError if a `Literal[...]` field of dataclass `config` holds a value outside its choices
    (for `__post_init__`, so a config built in Python is checked like one loaded from TOML)."""
    for name, hint in typing.get_type_hints(type(config)).items():
        if typing.get_origin(hint) is typing.Literal and getattr(config, name) not in typing.get_args(hint):
            raise ValueError(f"{prefix}{name} must be one of {typing.get_args(hint)}; got {getattr(config, name)!r}")


def _union_table(value: Mapping, tables: list[type], key: str, default: Any) -> Any:
    """A table for a field typed as a union of dataclasses (e.g. `scene: ScatteredMNISTVideoConfig |
    ScatteredShapesVideoConfig`): merged into the current value's type (the field's default) if its keys
    fit it, else built as the first other type whose fields take every key."""
    current = type(default) if isinstance(default, tuple(tables)) else None
    errors = []
    for option in ([current] if current else []) + [t for t in tables if t is not current]:
        try:
            return from_dict(option, value, prefix=f"{key}.", base=default if option is current else None)
        except ValueError as error:
            errors.append(f"{option.__name__}: {error}")
    raise ValueError(f"config key '{key}': the table fits none of its types; " + "; ".join(errors))


def from_dict(cls: type[T], values: Mapping[str, Any], prefix: str = "", base: T | None = None) -> T:
    """Builds dataclass `cls` from `values`, rejecting unknown keys and wrong types.

    Args:
        cls: a (frozen) dataclass type; nested dataclass fields take nested tables.
        values: mapping from field names to values (as read from TOML).
        prefix: dotted path of `values` inside the whole config, for error messages.
        base: the instance whose values are kept for keys not in `values` (default: `cls()`'s
            field defaults).

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys of {cls.__name__} are {list(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        default = getattr(base, name) if base is not None else _field_default(fields[name])
        kwargs[name] = _check_value(value, hints[name], prefix + name, default)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def to_dict(config) -> dict:
    """The config as plain nested dicts/lists (JSON-serialisable), for results files."""
    return dataclasses.asdict(config)


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def describe_changes(config, reference, only: Sequence[str] | None = None) -> list[str]:
    """Lines `key.path: reference value -> value` for every field where `config` differs from
    `reference` (e.g. what quick mode changes relative to full mode). Long lists are shown by length.

    Args:
        config, reference: instances of the same config dataclass.
        only: if given, top-level field names to compare (others are skipped).
    """
    def short(value):
        return f"{len(value)} values" if isinstance(value, (list, tuple)) and len(value) > 4 else str(value)

    changed, original = _flatten(to_dict(config)), _flatten(to_dict(reference))
    return [f"{key}: {short(original[key])} -> {short(value)}" for key, value in changed.items()
            if value != original[key] and (only is None or key.split(".")[0] in only)]


def _parse_override(text: str) -> tuple[str, Any]:
    """Parses `a.b=value`; the value is read as TOML (`3`, `0.5`, `true`, `[48, 48]`, `"s"`),
    else taken as a bare string."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key.path=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override '{key}': '{part}' is a value, not a table")
    node[parts[-1]] = value


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    mode: str = "full",
    overrides: Sequence[str] = (),
) -> T:
    """Loads `cls` from an optional TOML file, its `[quick]` table in quick mode, then overrides.

    Args:
        cls: the experiment's dataclass type.
        path: TOML file with the keys that differ from the defaults, or None for the defaults.
        mode: "full" (paper protocol) or "quick" (also applies the file's `[quick]` table).
        overrides: `key.path=value` strings, applied last (e.g. from `--set`).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: bad TOML, unknown key, wrong type, or unknown mode.
    """
    if mode not in ("full", "quick"):
        raise ValueError(f"mode must be 'full' or 'quick'; got {mode!r}")
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            tree = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from error
    quick = tree.pop("quick", {})
    if not isinstance(quick, dict):
        raise ValueError(f"[quick] in {path} must be a table of dotted keys")
    updates = list(quick.items()) if mode == "quick" else []
    updates += [_parse_override(text) for text in overrides]
    for key, value in updates:
        _set_dotted(tree, key, value)
    return from_dict(cls, tree)
