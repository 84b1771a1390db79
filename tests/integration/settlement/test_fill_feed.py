"""`fills:{address}` on Redis: several workers publish; the API's reader sees one gapless
sequence per channel."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.engine.feed_redis import RedisFeedStore
from backend.settlement.fill_feed import RedisFillFeed

pytestmark = pytest.mark.integration

CHANNEL = "fills:0x00000000000000000000000000000000000000A1"


def test_concurrent_publishers_give_one_gapless_sequence(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    feeds = [RedisFillFeed(url, prefix=prefix, retention=1000) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            seqs = list(
                pool.map(lambda i: feeds[i % 4].publish(CHANNEL, {"fillId": i}), range(200))
            )
    finally:
        for feed in feeds:
            feed.close()
    assert sorted(seqs) == list(range(1, 201))

    async def read() -> tuple[int, list[int], list[int]]:
        store = RedisFeedStore(url, prefix=prefix)
        try:
            messages = await store.read_after(CHANNEL, 0, limit=500) or []
            return (
                await store.latest_seq(CHANNEL),
                [m.seq for m in messages],
                sorted(m.data["fillId"] for m in messages),
            )
        finally:
            await store.close()

    latest, seqs_read, fill_ids = asyncio.run(read())
    assert latest == 200
    assert seqs_read == list(range(1, 201))
    assert fill_ids == list(range(200))
