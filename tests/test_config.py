"""The strict config loader: defaults, TOML deltas, [quick] tables, --set overrides, errors."""
from dataclasses import dataclass, field

import pytest

from tfobj.config import describe_changes, from_dict, load_config, to_dict


@dataclass(frozen=True)
class Inner:
    steps: int = 100
    rate: float = 1e-4
    size: tuple[int, int] = (48, 48)
    gate: float | None = None
    name: str = "mnist"


@dataclass(frozen=True)
class Outer:
    train: Inner = field(default_factory=Inner)
    seed: int = 0


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    assert load_config(Outer) == Outer()


def test_file_overrides_only_given_keys(tmp_path):
    config = load_config(Outer, write(tmp_path, "seed = 3\n[train]\nsteps = 7\nsize = [96, 84]\n"))
    assert config == Outer(train=Inner(steps=7, size=(96, 84)), seed=3)


def test_quick_table_applies_only_in_quick_mode(tmp_path):
    path = write(tmp_path, '[train]\nsteps = 7\n[quick]\n"train.steps" = 2\n')
    assert load_config(Outer, path, mode="full").train.steps == 7
    assert load_config(Outer, path, mode="quick").train.steps == 2


def test_set_overrides_parse_toml_values_and_win(tmp_path):
    path = write(tmp_path, '[quick]\n"train.steps" = 2\n')
    config = load_config(Outer, path, mode="quick",
                         overrides=["train.steps=5", "train.rate=0.5", "train.gate=30", "train.name=shapes"])
    assert config.train == Inner(steps=5, rate=0.5, gate=30.0, name="shapes")


def test_int_accepted_for_float_and_optional():
    assert from_dict(Inner, {"rate": 1, "gate": None}) == Inner(rate=1.0, gate=None)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stpes=5"], r"unknown config key\(s\) \['train.stpes'\]; valid keys of Inner are \['steps'"),
        (["sed=1"], r"unknown config key\(s\) \['sed'\]"),
        (["train.steps=1.5"], r"'train.steps' must be an integer; got 1.5"),
        (["train.steps=true"], r"'train.steps' must be an integer; got True"),
        (["train.size=[1, 2, 3]"], r"'train.size' must be a list of 2 values"),
        (["train.rate=fast"], r"'train.rate' must be a number; got 'fast'"),
        (["train=3"], r"'train' must be a table of Inner fields"),
        (["seed"], r"must look like key.path=value"),
    ],
)
def test_bad_keys_and_types_name_what_was_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(Outer, overrides=overrides)


def test_bad_file_and_mode(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml does not exist"):
        load_config(Outer, tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_config(Outer, write(tmp_path, "seed = = 1"))
    with pytest.raises(ValueError, match="mode must be 'full' or 'quick'; got 'fast'"):
        load_config(Outer, mode="fast")


def test_to_dict_round_trips():
    config = Outer(train=Inner(steps=3, gate=2.0), seed=1)
    assert from_dict(Outer, to_dict(config)) == config


@dataclass(frozen=True)
class WithFactory:
    main: Inner = field(default_factory=Inner)
    other: Inner = field(default_factory=lambda: Inner(steps=9, name="shapes"))


def test_partial_table_keeps_the_fields_own_default(tmp_path):
    path = write(tmp_path, '[quick]\n"other.rate" = 0.5\n')
    config = load_config(WithFactory, path, mode="quick")
    assert config.other == Inner(steps=9, name="shapes", rate=0.5)
    assert config.main == Inner()


def test_describe_changes_lists_dotted_keys_that_differ():
    reference = WithFactory()
    config = WithFactory(main=Inner(steps=5, size=(96, 96)), other=Inner(steps=9, name="shapes", rate=0.5))
    assert describe_changes(config, reference) == [
        "main.steps: 100 -> 5", "main.size: (48, 48) -> (96, 96)", "other.rate: 0.0001 -> 0.5"]
    assert describe_changes(config, reference, only=["other"]) == ["other.rate: 0.0001 -> 0.5"]
    long = Outer(train=Inner(size=(1, 2)))
    assert describe_changes(config, config) == [] and describe_changes(long, long) == []
