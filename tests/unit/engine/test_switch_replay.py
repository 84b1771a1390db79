"""A restart keeps a scheduled cancel: the ScheduleCancel is in the journal, the replayed
engine holds the switch and its sweep fires it (SPEC §5)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.domain.types import Side, TimeInForce
from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from backend.matching import commands as c

pytestmark = pytest.mark.unit

BASE, QUOTE, TRADER, MARKET = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "a1" * 20, "B-Q"


def test_a_restart_keeps_a_scheduled_cancel_and_the_sweep_fires_it(tmp_path: Path) -> None:
    clock = [1_000_000.0]

    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path, clock=lambda: clock[0])
        client = InProcessEngineClient(service)
        spec = c.MarketSpec(MARKET, BASE, QUOTE, 10**12, 10**6, 10**6)
        for cmd in (c.AddMarket(0, 0, spec), c.Credit(0, 0, TRADER, QUOTE, 10**30)):
            await client.submit(cmd, timeout=5)
        place = c.PlaceOrder(0, 0, b"\x01" * 32, TRADER, MARKET, Side.BUY, 10**18, 10**6,
                             TimeInForce.GTC, 1, 0)  # fmt: skip
        await client.submit(place, timeout=5)
        await client.submit(c.ScheduleCancel(0, 0, TRADER, 1_000_030, 1), timeout=5)
        hash_before = service.engine.state_hash()
        await client.close()  # a clean stop snapshots; the replay below reads both ways

        for path in (tmp_path / "snapshots").glob("*"):
            path.unlink()  # replay from the journal alone
        feeds = MemoryFeedStore()
        service = await EngineService.open(
            journal_dir=tmp_path, clock=lambda: clock[0], sweep_interval=0.05, feeds=feeds
        )
        assert service.engine.state_hash() == hash_before
        assert service.engine.next_expiry() == 1_000_030
        clock[0] = 1_000_031.0
        for _ in range(100):
            if service.engine.open_order_count() == 0:
                break
            await asyncio.sleep(0.05)
        assert service.engine.open_order_count() == 0
        assert service.engine.next_expiry() is None
        await InProcessEngineClient(service).close()

    asyncio.run(main())


def test_a_replayed_schedule_nonce_is_still_refused(tmp_path: Path) -> None:
    async def main() -> str:
        service = await EngineService.open(journal_dir=tmp_path, clock=lambda: 1_000_000.0)
        client = InProcessEngineClient(service)
        await client.submit(c.ScheduleCancel(0, 0, TRADER, 1_000_100, 5), timeout=5)
        await client.close()
        service = await EngineService.open(journal_dir=tmp_path, clock=lambda: 1_000_000.0)
        client = InProcessEngineClient(service)
        out = await client.submit(c.ScheduleCancel(0, 0, TRADER, 0, 5), timeout=5)
        await client.close()
        return type(out.events[0]).__name__

    assert asyncio.run(main()) == "CommandRejected"
