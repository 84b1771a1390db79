"""The Redis Streams publisher on the real Redis: one stream per event type, in relay order,
each entry carrying the event id that consumers deduplicate by."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis

from backend.db import make_engine, session_factory
from backend.stream import outbox
from backend.stream.publish import RedisPublisher, StreamOptions, publisher_for
from backend.stream.relay import Relay, RelayConfig
from tests.integration.stream.conftest import add_events, assert_in_order_per_key, outbox_rows

pytestmark = pytest.mark.integration


def test_relay_to_redis_streams_in_order(redis_prefix: tuple[str, str], sqlite_url: str) -> None:
    url, key_prefix = redis_prefix
    prefix = key_prefix + uuid.uuid4().hex[:6]  # every key under the fixture's prefix
    factory = session_factory(make_engine(sqlite_url))
    add_events(factory, 0, 2000)
    publisher = publisher_for(url, StreamOptions(prefix=prefix))
    assert isinstance(publisher, RedisPublisher)

    async def run() -> None:
        relay = Relay(factory, publisher, RelayConfig(batch_size=300, poll_interval_s=0.02))
        task = asyncio.create_task(relay.run())
        while outbox_rows(factory) > 0:
            await asyncio.sleep(0.05)
        relay.stop()
        await task

    asyncio.run(run())
    client = redis.Redis.from_url(url)
    try:
        assert sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*")) == [
            f"{prefix}:risk",
            f"{prefix}:trade",
        ]
        envelopes = []
        for event_type in ("trade", "risk"):
            entries = client.xrange(f"{prefix}:{event_type}")
            for _, fields in entries:
                envelope = json.loads(fields[b"event"])
                assert fields[b"id"].decode() == envelope["id"]
                assert fields[b"type"].decode() == event_type == envelope["type"]
                envelopes.append(envelope)
            # Each stream is in relay order, so each key's events of that type are in order.
            assert_in_order_per_key([json.loads(f[b"event"]) for _, f in entries], len(entries))
        assert len({e["id"] for e in envelopes}) == 2000
    finally:
        client.close()


def test_redis_down_is_a_publish_error(sqlite_url: str) -> None:
    from backend.stream.publish import PublishError

    factory = session_factory(make_engine(sqlite_url))
    add_events(factory, 0, 10)
    with factory() as session:
        rows = outbox.pending(session, 10)
    publisher = RedisPublisher("redis://127.0.0.1:1/0", StreamOptions(ack_timeout_s=1.0))

    async def run() -> None:
        with pytest.raises(PublishError):
            await publisher.start()
        with pytest.raises(PublishError):
            await publisher.publish(rows)
        await publisher.close()

    asyncio.run(run())
