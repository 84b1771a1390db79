"""The engine benchmarks run and print every figure the issue names (tiny sizes, a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[3] / "bench"


def last_json(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, *args, "--json"], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_engine_bench_reports_throughput_latency_and_memory() -> None:
    r = last_json(str(BENCH / "engine.py"), "--commands", "5000", "--resting", "5000")
    for key in ("commands_per_s", "p50_us", "p99_us", "p999_us", "full_commands_per_s",
                "rss_mb_1m_resting"):  # fmt: skip
        value = r[key]
        assert isinstance(value, int | float)
        assert value > 0, key
    assert r["commands"] == 5000
    assert r["rss_resting_orders"] == 5000


def test_replay_bench_replays_every_journaled_command() -> None:
    r = last_json(str(BENCH / "replay.py"), "--commands", "5000")
    assert r["commands"] == 5000
    value = r["replay_commands_per_s"]
    assert isinstance(value, int)
    assert value > 0
