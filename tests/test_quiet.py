"""The scripts' stderr filter drops TensorFlow's benign start-up lines and nothing else."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import warnings
import tensorflow as tf
import tfobj
print(float(tf.reduce_sum(tf.constant([1.0, 2.0]))))
warnings.warn("a real warning")
raise RuntimeError("a real error")
"""


def run(quiet: bool) -> str:
    env = {**os.environ, "TFOBJ_QUIET_STARTUP": "1" if quiet else "0"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run([sys.executable, "-c", PROGRAM.replace("import tensorflow as tf\nimport tfobj",
                                                                    "import tfobj\nimport tensorflow as tf")],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout.strip() == "3.0"
    return result.stderr


@pytest.mark.slow
def test_benign_startup_lines_are_dropped_and_real_output_kept():
    quiet, loud = run(True), run(False)
    for text in (quiet, loud):
        assert "UserWarning: a real warning" in text
        assert "Traceback" in text and "RuntimeError: a real error" in text
    benign = "Could not find cuda drivers"
    if benign in loud:  # this TensorFlow build prints it here (no GPU driver)
        assert benign not in quiet
    assert "All log messages before absl::InitializeLog" not in quiet
    assert len(quiet.splitlines()) < len(loud.splitlines())
