"""`TickerCache`: one computation per market and interval, however many readers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from backend.api.tickers import Ticker, TickerCache


def test_concurrent_readers_share_one_computation_and_stale_entries_are_recomputed() -> None:
    async def main() -> None:
        cache = TickerCache(max_age_s=0.2)
        calls: list[str] = []

        def computer(market: str) -> Callable[[], Awaitable[Ticker]]:
            async def compute() -> Ticker:
                calls.append(market)
                await asyncio.sleep(0.02)  # readers arrive while it runs
                return {"market": market, "n": len(calls)}

            return compute

        first = await asyncio.gather(*(cache.get("A", computer("A")) for _ in range(20)))
        assert calls == ["A"]
        assert all(t == {"market": "A", "n": 1} for t in first)
        assert await cache.get("B", computer("B")) == {"market": "B", "n": 2}
        assert await cache.get("A", computer("A")) == {"market": "A", "n": 1}
        await asyncio.sleep(0.25)
        assert await cache.get("A", computer("A")) == {"market": "A", "n": 3}
        assert calls == ["A", "B", "A"]

    asyncio.run(main())
