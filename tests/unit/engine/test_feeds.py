"""Feeds: the memory store, and the publisher's channel messages and idempotent restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.service import EngineService
from tests.unit.engine.feedchecks import check_sequencing_resume_and_gap
from tests.unit.engine.helpers import MARKET, setup, trader, workload


def test_memory_store_sequencing_resume_and_gap() -> None:
    asyncio.run(check_sequencing_resume_and_gap(MemoryFeedStore(retention=50), retention=50))


def _book_from_feed(messages: list[dict[str, str]]) -> dict[tuple[str, int], int]:
    book: dict[tuple[str, int], int] = {}
    for d in messages:
        key = (d["side"], int(d["price"]))
        if d["amount"] == "0":
            book.pop(key, None)
        else:
            book[key] = int(d["amount"])
    return book


def test_book_deltas_rebuild_the_book_and_restart_does_not_republish(tmp_path: Path) -> None:
    feeds = MemoryFeedStore(retention=100_000)

    async def run(n: int, seed: int) -> None:
        service = await EngineService.open(journal_dir=tmp_path, feeds=feeds, group_max=64)
        if service.engine.last_seq == 0:
            for cmd, intake in setup(4):
                await service.submit(cmd, intake)
        await asyncio.gather(*(service.submit(c, i) for c, i in workload(n, 4, seed=seed)))
        await service.close(snapshot=False)

    asyncio.run(run(800, 1))
    # Lose the journal's tail from the feed's point of view: the store is ahead of nothing,
    # so a restart must not publish anything twice (engine seq recorded in the store).
    before = asyncio.run(feeds.load_state())

    async def reopen_and_check() -> None:
        service = await EngineService.open(journal_dir=tmp_path, feeds=feeds)
        book = service.book(MARKET, 1_000)
        got = await feeds.read_after(f"book:{MARKET}", 0, limit=100_000)
        assert got is not None
        assert [m.seq for m in got] == list(range(1, len(got) + 1))  # no gaps
        assert book.feed_seq == got[-1].seq
        expected = {("buy", p): a for p, a in book.bids} | {("sell", p): a for p, a in book.asks}
        assert _book_from_feed([m.data for m in got]) == expected
        balances = await feeds.read_after(f"balances:{trader(0)}", 0)
        assert balances
        assert balances[-1].data["available"]
        await service.close(snapshot=False)

    asyncio.run(reopen_and_check())
    assert asyncio.run(feeds.load_state()) == before
    asyncio.run(run(300, 2))
    after_seq, counters = asyncio.run(feeds.load_state())
    assert after_seq > before[0]
    assert counters[f"book:{MARKET}"] > before[1][f"book:{MARKET}"]
