"""Shared pytest options: `--run-slow` enables tests marked `slow`; tests marked `tfa`
skip when tensorflow-addons does not import, unless TFOBJ_REQUIRE_TFA=1 (CI's TF 2.15 leg),
where a missing tfa is an error instead of a silent skip."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def _tfa_available() -> bool:
    try:
        import tensorflow_addons  # noqa: F401
    except Exception:  # ImportError, or tfa's own error on TF >= 2.16
        return False
    return True


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow")
    require_tfa = os.environ.get("TFOBJ_REQUIRE_TFA") == "1"
    has_tfa = _tfa_available() if any("tfa" in item.keywords for item in items) else False
    if require_tfa and not has_tfa and any("tfa" in item.keywords for item in items):
        raise pytest.UsageError("TFOBJ_REQUIRE_TFA=1 but tensorflow_addons does not import")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: pass --run-slow"))
        if "tfa" in item.keywords and not has_tfa:
            item.add_marker(pytest.mark.skip(reason="tensorflow-addons not importable (TF >= 2.16)"))


@pytest.fixture(scope="session")
def load_script():
    """`load_script("table1")` imports reproduce/table1.py as module `table1`, registered in
    sys.modules (dataclass type hints are resolved through it), as a user running it would."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, ROOT / "reproduce" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _seeded_initialisers():
    """Every test starts from the same global seed, so that weights Keras initialises without an
    explicit seed are the same whatever ran before (a test's outcome must not depend on the order)."""
    import keras

    keras.utils.set_random_seed(20261123)
