"""The Redis feed store on a real Redis (keys only under the test's prefix)."""

from __future__ import annotations

import asyncio

import pytest

from backend.engine.feed_redis import RedisFeedStore
from tests.unit.engine.feedchecks import check_sequencing_resume_and_gap

pytestmark = pytest.mark.integration


def test_redis_store_sequencing_resume_and_gap(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix, retention=50)
        try:
            await check_sequencing_resume_and_gap(store, retention=50)
        finally:
            await store.close()
        # Counters survive a new store instance (the engine restarting).
        again = RedisFeedStore(url, prefix=prefix, retention=50)
        engine_seq, counters = await again.load_state()
        assert engine_seq == 7
        assert counters["trades:X"] == 1
        await again.close()

    asyncio.run(main())
