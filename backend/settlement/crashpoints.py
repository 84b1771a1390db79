"""Test-only crash points: SIGKILL the worker at a named step of sending.

Set `HYBRIDEX_TEST_CRASH_AT` to one of `CRASH_POINTS` in a worker's environment (never in
production): reaching that point kills the worker's whole process group (Celery's main
process and its pool), exactly like `kill -9`. `HYBRIDEX_TEST_CRASH_MARKER`, if set, is a file
created just before dying so the test knows the point was reached.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Final

CRASH_ENV: Final = "HYBRIDEX_TEST_CRASH_AT"
MARKER_ENV: Final = "HYBRIDEX_TEST_CRASH_MARKER"
CRASH_POINTS: Final = (
    "after_simulation",  # simulated, nothing signed or stored yet
    "after_store",  # signed and stored, not broadcast
    "after_broadcast",  # broadcast, result (status `broadcast`) not recorded
)


def crash_point(name: str) -> None:
    assert name in CRASH_POINTS, name
    if os.environ.get(CRASH_ENV) != name:
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(name)
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os.kill(os.getpid(), signal.SIGKILL)
