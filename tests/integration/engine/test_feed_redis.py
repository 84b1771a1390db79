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


@pytest.mark.parametrize("script_cached", [True, False])
def test_pipelined_writes_load_the_script_when_redis_lacks_it(
    redis_prefix: tuple[str, str], monkeypatch: pytest.MonkeyPatch, script_cached: bool
) -> None:
    """Group writes go through `PipelinedRedis` (EVALSHA); a Redis without the script (a
    restart, a SCRIPT FLUSH) answers NOSCRIPT and the same call is made with EVAL."""
    import backend.engine.feed_redis as feed_redis
    from backend.engine.feeds import FeedMessage

    url, prefix = redis_prefix
    if not script_cached:  # a script id Redis cannot know: NOSCRIPT, without touching others
        monkeypatch.setattr(feed_redis, "_APPEND_SHA", "0" * 40)

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix)
        try:
            await store.append(3, [FeedMessage("trades:Y", 1, {"n": 1})])
            await store.append(4, [FeedMessage("trades:Y", 2, {"n": 2})])
            got = await store.read_after("trades:Y", 0)
            assert got is not None
            assert [(m.seq, m.data) for m in got] == [(1, {"n": 1}), (2, {"n": 2})]
            assert await store.load_state() == (4, {"trades:Y": 2})
        finally:
            await store.close()

    asyncio.run(main())
