"""Load a script of the repository (a benchmark, an example) as a module, by its path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while the class is built
    spec.loader.exec_module(module)
    return module


def bench_api() -> ModuleType:
    """bench/api.py: the load generator, its signed orders and its stack set-up."""
    return load_file("bench_api", ROOT / "bench" / "api.py")
