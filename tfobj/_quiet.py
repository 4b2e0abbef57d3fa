"""Drops TensorFlow's benign start-up lines from the process's stderr (standard library only).

TensorFlow 2.21 writes several lines at import and at first device use that no environment variable silences
(they come before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not apply to most of them): the
absl preamble, "oneDNN custom operations are on", "Could not find cuda drivers", the CPU feature guard and
"failed call to cuInit" on a machine without a GPU. The reproduce scripts set `TFOBJ_QUIET_STARTUP=1`, which
makes `import tfobj` route file descriptor 2 through `filter_stderr`: exactly these lines are dropped, and
everything else (warnings, errors, tracebacks) passes through unchanged, in order.
"""
from __future__ import annotations

import atexit
import os
import re
import threading

__all__ = ["BENIGN", "filter_stderr"]

BENIGN = tuple(re.compile(pattern) for pattern in (
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    rb"^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on",
    rb"^I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers",
    rb"^I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    rb"^To enable the following instructions: .*, in other operations, rebuild TensorFlow",
    rb"^E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit",
    rb"^E\d{4} [\d:. ]+\d+ util\.cc:\d+\] oneDNN supports DT_BOOL only on platforms with AVX-512",
))

_installed = False


def filter_stderr(patterns=BENIGN) -> None:
    """From now on, lines written to file descriptor 2 that match one of `patterns` are dropped; the others
    reach the original stderr. Installed once per process; undone (and flushed) at interpreter exit."""
    global _installed
    if _installed:
        return
    _installed = True
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            for chunk in iter(lambda: pipe.read(65536), b""):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = [line + b"\n" for line in lines if not any(p.search(line) for p in patterns)]
                if kept:
                    os.write(original, b"".join(kept))
        if pending:
            os.write(original, pending)

    thread = threading.Thread(target=pump, name="tfobj-stderr-filter", daemon=True)
    thread.start()

    def restore():
        import sys

        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer is gone: the pump reads to the end and stops
        thread.join(timeout=5)

    atexit.register(restore)
