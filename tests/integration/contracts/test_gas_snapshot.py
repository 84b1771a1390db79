"""Settlement gas per fill against the committed snapshot: fails on a > 2% regression."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOT = ROOT / "tests" / "fixtures" / "gas_snapshot.json"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gas", ROOT / "bench" / "gas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_gas_per_fill_has_not_regressed() -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    tolerance = snapshot["tolerance"]
    bench = _bench()
    result = bench.run(bench.SIZES, find_max=False)
    regressions = []
    for scenario in bench.SCENARIOS:
        for size, committed in snapshot[scenario].items():
            now = result[scenario][size]
            if now > committed * (1 + tolerance):
                regressions.append(f"{scenario}@{size}: {committed} -> {now}")
    assert not regressions, "gas regressions over 2%: " + ", ".join(regressions)
    # The targets at 200 fills.
    assert result["steady"]["200"] <= bench.TARGETS["steady"]
    assert result["fresh"]["200"] <= bench.TARGETS["fresh"]
