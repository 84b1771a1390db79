"""The engine benchmarks run and print every figure the issue names (tiny sizes, a few seconds)."""

from __future__ import annotations

import importlib.util
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
                "rss_mb_1m_resting", "floor_commands_per_s", "python_commands_per_s",
                "floor_p99_us", "rss_bytes_per_resting_order"):  # fmt: skip
        value = r[key]
        assert isinstance(value, int | float)
        assert value > 0, key
    assert r["commands"] == 5000
    assert r["rss_resting_orders"] == 5000
    ratios = r["ratios"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {
        "engine_vs_floor", "engine_vs_python", "p99_vs_floor_p99", "full_vs_engine",
        "rss_bytes_per_resting_order",
    }  # fmt: skip
    assert ratios["engine_vs_floor"]["value"] == round(
        r["commands_per_s"] / r["floor_commands_per_s"],
        3,  # type: ignore[operator]
    )


def test_replay_bench_replays_every_journaled_command() -> None:
    r = last_json(str(BENCH / "replay.py"), "--commands", "5000")
    assert r["commands"] == 5000
    for key in ("replay_commands_per_s", "engine_commands_per_s"):
        value = r[key]
        assert isinstance(value, int)
        assert value > 0, key
    assert isinstance(r["replay_vs_engine"], float)


def test_the_floor_book_really_matches() -> None:
    """The engine benchmark's floor (`SkeletonBook`) does price-time matching, not less: on the
    benchmark's workload it never crosses and ends with the engine's best bid and ask."""
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH / "engine.py")
    assert spec is not None
    assert spec.loader is not None
    bench_engine = importlib.util.module_from_spec(spec)
    sys.modules["bench_engine"] = bench_engine  # dataclasses resolve their module while built
    spec.loader.exec_module(bench_engine)
    commands = bench_engine.generate(3_000, seed=11)
    floor, engine = bench_engine.SkeletonBook(), bench_engine.Engine()  # the native engine
    for cmd in commands:
        floor.apply(cmd)
        engine.apply(cmd)
        if floor.bids and floor.asks:
            assert -floor.bids.peekitem(0)[0] < floor.asks.peekitem(0)[0]
    market = bench_engine.MARKET
    assert -floor.bids.peekitem(0)[0] == engine.depth(market, bench_engine.Side.BUY, 1)[0][0]
    assert floor.asks.peekitem(0)[0] == engine.depth(market, bench_engine.Side.SELL, 1)[0][0]
