"""Helpers of the end-to-end tests: load a script of examples/ as a module (examples/ is not a
package: each script stands alone, as a user would copy it), wait for REST to catch up."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def until(probe: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Waits for `probe`: REST reads what the persister wrote, which follows the engine's
    answer closely but not at once."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)
