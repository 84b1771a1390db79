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


def test_a_write_stores_each_channel_run_as_one_entry(redis_prefix: tuple[str, str]) -> None:
    """One entry per run of consecutive messages of a channel in a write; readers get every
    message with its own seq, from any point inside a run, and one-message entries (the
    settlement worker's, or an earlier version's) read as before."""
    import redis

    from backend.engine.feeds import FeedMessage

    url, prefix = redis_prefix
    raw = redis.Redis.from_url(url)
    key = f"{prefix}feed:book:R"

    def m(seq: int) -> FeedMessage:
        return FeedMessage("book:R", seq, {"n": str(seq)})

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix, retention=100)
        try:
            raw.xadd(key, {"d": b'{"n":"1"}'}, id="1-0")  # a one-message entry
            raw.hset(f"{prefix}feed-state", "book:R", 1)
            await store.append(1, [m(2), m(3), m(4), FeedMessage("trades:R", 1, {"t": 1})])
            await store.append(2, [m(5), m(7), m(8)])  # a break in the run: two entries
            assert [e[0] for e in raw.xrange(key)] == [b"1-0", b"4-0", b"5-0", b"8-0"]
            stored = (1, 2, 3, 4, 5, 7, 8)
            for after in range(0, 9):
                got = await store.read_after("book:R", after)
                if after == 5:  # 6 is missing: a gap, never served as if it were not
                    assert got is None
                    continue
                assert got is not None
                assert [(x.seq, x.data) for x in got] == [
                    (s, {"n": str(s)}) for s in stored if s > after
                ]
            assert await store.read_after("book:R", 1, limit=2) == [m(2), m(3)]
            woke = await store.wait({"book:R": 3, "trades:R": 0}, timeout=1)
            assert sorted((x.channel, x.seq) for x in woke) == [
                ("book:R", 4),
                ("book:R", 5),
                ("book:R", 7),
                ("book:R", 8),
                ("trades:R", 1),
            ]
            assert await store.load_state() == (2, {"book:R": 8, "trades:R": 1})
        finally:
            await store.close()
            raw.close()

    asyncio.run(main())


def test_retention_counts_messages_not_entries(redis_prefix: tuple[str, str]) -> None:
    """Entries of many messages are trimmed by seq (`MINID`): what is kept reaches back about
    `retention` messages, and a resume from before that is a detectable gap."""
    from backend.engine.feeds import FeedMessage

    url, prefix = redis_prefix

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix, retention=50)
        try:
            for start in range(1, 201, 40):  # five entries of 40 messages
                batch = [FeedMessage("book:T", s, {"n": s}) for s in range(start, start + 40)]
                await store.append(start, batch)
            assert await store.read_after("book:T", 100) is None  # 101… left the window
            kept = await store.read_after("book:T", 150)
            assert kept is not None
            assert [x.seq for x in kept] == list(range(151, 201))
        finally:
            await store.close()

    asyncio.run(main())


def test_a_write_to_more_channels_than_one_counter_call_takes(
    redis_prefix: tuple[str, str],
) -> None:
    """The script sets channel counters in chunks: a write to 1,500 channels records all."""
    from backend.engine.feeds import FeedMessage

    url, prefix = redis_prefix

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix)
        try:
            channels = [f"orders:T{i}" for i in range(1_500)]
            await store.append(9, [FeedMessage(c, 1, {"i": i}) for i, c in enumerate(channels)])
            engine_seq, counters = await store.load_state()
            assert engine_seq == 9
            assert counters == dict.fromkeys(channels, 1)
            got = await store.read_after(channels[-1], 0)
            assert got is not None
            assert [(x.seq, x.data) for x in got] == [(1, {"i": 1_499})]
        finally:
            await store.close()

    asyncio.run(main())


def test_a_write_repeated_after_a_lost_reply_changes_nothing(
    redis_prefix: tuple[str, str],
) -> None:
    """The engine retries a write whose reply it never got; if Redis had applied it, the
    repeat is a no-op rather than an error that would stall the feeds."""
    from backend.engine.feeds import FeedMessage

    url, prefix = redis_prefix

    async def main() -> None:
        store = RedisFeedStore(url, prefix=prefix)
        try:
            batch = [FeedMessage("book:Z", s, {"n": s}) for s in (1, 2, 3)]
            await store.append(4, batch)
            await store.append(4, batch)
            got = await store.read_after("book:Z", 0)
            assert got is not None
            assert [x.seq for x in got] == [1, 2, 3]
            await store.append(5, [FeedMessage("book:Z", 4, {"n": 4})])
            assert await store.load_state() == (5, {"book:Z": 4})
        finally:
            await store.close()

    asyncio.run(main())
