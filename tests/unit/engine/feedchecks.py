"""Behaviour every feed store shares (memory here, Redis in tests/integration/engine)."""

from __future__ import annotations

import asyncio

from backend.engine.feeds import FeedMessage, FeedStore


def msgs(channel: str, start: int, n: int) -> list[FeedMessage]:
    return [FeedMessage(channel, s, {"n": str(s)}) for s in range(start, start + n)]


async def check_sequencing_resume_and_gap(store: FeedStore, retention: int) -> None:
    assert await store.load_state() == (0, {})
    assert await store.read_after("book:X", 0) == []
    await store.append(5, msgs("book:X", 1, 3) + msgs("trades:X", 1, 1))
    assert await store.load_state() == (5, {"book:X": 3, "trades:X": 1})
    got = await store.read_after("book:X", 1)
    assert got is not None
    assert [(m.seq, m.data) for m in got] == [(2, {"n": "2"}), (3, {"n": "3"})]
    assert await store.latest_seq("book:X") == 3
    assert await store.read_after("book:X", 3) == []
    # A subscriber waiting on the channel is woken by the next append.
    waiter = asyncio.create_task(store.wait({"book:X": 3, "trades:X": 1}, timeout=5))
    await asyncio.sleep(0.05)
    await store.append(6, msgs("book:X", 4, 1))
    woke = await waiter
    assert [(m.channel, m.seq) for m in woke] == [("book:X", 4)]
    assert await store.wait({"book:X": 4}, timeout=0.05) == []
    # Far more than the retention window: resuming from an old seq is a detectable gap.
    await store.append(7, msgs("book:X", 5, retention * 3))
    assert await store.read_after("book:X", 1) is None
    latest = await store.latest_seq("book:X")
    tail = await store.read_after("book:X", latest - 2)
    assert tail is not None
    assert [m.seq for m in tail] == [latest - 1, latest]
