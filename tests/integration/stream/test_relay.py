"""The relay against a real NATS JetStream (a private server the tests stop and restart) on
SQLite and PostgreSQL outboxes: per-key order, no loss across a broker restart and a relay
SIGKILL, duplicates dropped by event id."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from backend.stream import outbox
from backend.stream.consume import BalanceBook
from backend.stream.publish import NatsPublisher, StreamOptions, stream_name
from backend.stream.relay import Relay, RelayConfig
from tests.integration.stream.conftest import (
    PrivateNats,
    add_events,
    assert_in_order_per_key,
    free_port,
    outbox_rows,
    read_all,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def metric(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    return 0.0 if value is None else value


def relay_of(factory: sessionmaker[Session], url: str, prefix: str, batch: int = 500) -> Relay:
    options = StreamOptions(prefix=prefix, ack_timeout_s=2.0)
    config = RelayConfig(batch_size=batch, poll_interval_s=0.02, backoff_max_s=0.5)
    return Relay(factory, NatsPublisher(url, options), config)


async def until(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_relay_delivers_every_event_in_order_per_key(
    nats_server: PrivateNats, factory: sessionmaker[Session], prefix: str
) -> None:
    add_events(factory, 0, 3000)

    async def run() -> list[dict]:
        relay = relay_of(factory, nats_server.url, prefix, batch=700)
        task = asyncio.create_task(relay.run())
        await until(lambda: outbox_rows(factory) == 0)
        relay.stop()
        await task
        return await read_all(nats_server.url, prefix, 3000)

    got = asyncio.run(run())
    assert len(got) == 3000  # one message per event: nothing re-sent
    assert_in_order_per_key(got, 3000)
    first = got[0]
    assert first["id"] == "ev-0"
    assert first["data"]["amount"] == str(10**30)


def test_broker_down_outbox_grows_then_everything_arrives_in_order(
    nats_server: PrivateNats, factory: sessionmaker[Session], prefix: str
) -> None:
    async def run() -> list[dict]:
        relay = relay_of(factory, nats_server.url, prefix)
        task = asyncio.create_task(relay.run())
        add_events(factory, 0, 500)
        await until(lambda: outbox_rows(factory) == 0)
        errors_before = metric("hybridex_stream_publish_errors_total")

        nats_server.stop()
        add_events(factory, 500, 1500)  # the exchange keeps writing while the broker is down
        await until(lambda: metric("hybridex_stream_publish_errors_total") > errors_before)
        await asyncio.sleep(1.2)  # the gauges are refreshed on each failure
        assert outbox_rows(factory) == 1500
        assert metric("hybridex_stream_outbox_rows") == 1500
        assert metric("hybridex_stream_outbox_oldest_seconds") > 0.5
        assert metric("hybridex_stream_broker_up") == 0

        nats_server.start()
        add_events(factory, 2000, 500)
        await until(lambda: outbox_rows(factory) == 0, timeout_s=60)
        relay.stop()
        await task
        assert metric("hybridex_stream_broker_up") == 1
        assert metric("hybridex_stream_outbox_rows") == 0
        return await read_all(nats_server.url, prefix, 2500)

    assert_in_order_per_key(asyncio.run(run()), 2500)


def test_resent_events_are_dropped_by_jetstream_and_by_the_consumer(
    nats_server: PrivateNats, sqlite_url: str, prefix: str
) -> None:
    from backend.db import make_engine, session_factory

    factory = session_factory(make_engine(sqlite_url))
    add_events(factory, 0, 300)
    with factory() as session:
        rows = outbox.pending(session, 1000)

    async def run() -> tuple[int, list[dict]]:
        import nats

        publisher = NatsPublisher(nats_server.url, StreamOptions(prefix=prefix))
        await publisher.start()
        await publisher.publish(rows)
        await publisher.publish(rows[100:])  # a relay that crashed before its delete
        await publisher.start()  # idempotent: the stream is kept, with its messages
        await publisher.close()
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().stream_info(stream_name(prefix))
        await nc.close()
        return info.state.messages, await read_all(nats_server.url, prefix, 300)

    stored, got = asyncio.run(run())
    assert stored == 300  # Nats-Msg-Id: the re-sends were not stored
    assert len(got) == 300
    # Past the duplicate window only the consumer can recognise a re-send: it does, by id.
    book = BalanceBook()
    assert [book.apply(e) for e in got[:3]] == [True, True, True]
    assert [book.apply(e) for e in got[:3]] == [False, False, False]
    assert book.events == 3
    assert book.duplicates == 3


def relay_process(
    db_url: str, nats_url: str, prefix: str, metrics_port: int | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HYBRIDEX_DATABASE_URL": db_url,
        "HYBRIDEX_STREAM_URL": nats_url,
        "HYBRIDEX_STREAM_SUBJECT_PREFIX": prefix,
        "HYBRIDEX_RELAY_BATCH_SIZE": "200",
        "HYBRIDEX_RELAY_POLL_INTERVAL_S": "0.02",
        "HYBRIDEX_LOG_LEVEL": "WARNING",
    }
    if metrics_port is not None:
        env["HYBRIDEX_RELAY_METRICS_PORT"] = str(metrics_port)
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli.main", "relay"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_no_loss_across_a_relay_sigkill(
    nats_server: PrivateNats, outbox_url: str, factory: sessionmaker[Session], prefix: str
) -> None:
    add_events(factory, 0, 6000, chunk=1000)
    process = relay_process(outbox_url, nats_server.url, prefix)
    try:
        deadline = time.monotonic() + 30
        while outbox_rows(factory) > 4000:  # killed in the middle of its work
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        left = outbox_rows(factory)
        assert 0 < left < 6000
        add_events(factory, 6000, 1000)

        port = free_port()
        process = relay_process(outbox_url, nats_server.url, prefix, metrics_port=port)
        deadline = time.monotonic() + 60
        while outbox_rows(factory) > 0:
            assert time.monotonic() < deadline, "outbox not drained"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        time.sleep(1.2)  # the lag gauges are refreshed at least once a second
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        published = re.search(r"^hybridex_stream_published_total (\S+)$", scraped, re.M)
        assert published, scraped
        assert float(published.group(1)) >= left + 1000  # the restarted relay's own count
        assert re.search(r"^hybridex_stream_outbox_rows 0\.0$", scraped, re.M), scraped
        assert re.search(r"^hybridex_stream_broker_up 1\.0$", scraped, re.M), scraped
        process.send_signal(signal.SIGTERM)  # graceful: finishes its batch, exits 0
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    got = asyncio.run(read_all(nats_server.url, prefix, 7000))
    assert_in_order_per_key(got, 7000)
    assert len({e["id"] for e in got}) == 7000


def test_events_carry_their_payload_unchanged(
    nats_server: PrivateNats, sqlite_url: str, prefix: str
) -> None:
    from backend.db import make_engine, session_factory, unit_of_work
    from backend.stream.outbox import StreamEvent

    factory = session_factory(make_engine(sqlite_url))
    payload = {"trader": "0x" + "ab" * 20, "token": "0x" + "01" * 20, "total": str(2**256 - 1)}
    with unit_of_work(factory) as session:
        outbox.add(session, [StreamEvent("b-1", "balance", payload["trader"], payload)])

    async def run() -> list[dict]:
        relay = relay_of(factory, nats_server.url, prefix)
        task = asyncio.create_task(relay.run())
        await until(lambda: outbox_rows(factory) == 0)
        relay.stop()
        await task
        return await read_all(nats_server.url, prefix, 1)

    (got,) = asyncio.run(run())
    assert got == {
        "id": "b-1",
        "type": "balance",
        "version": 1,
        "key": payload["trader"],
        "data": payload,
    }
    assert json.dumps(got["data"]["total"]) == f'"{2**256 - 1}"'


def test_a_batch_larger_than_the_async_pending_limit_is_published_whole(
    nats_server: PrivateNats, sqlite_url: str, prefix: str
) -> None:
    from backend.db import make_engine, session_factory

    factory = session_factory(make_engine(sqlite_url))
    add_events(factory, 0, 6000, chunk=2000)  # nats-py lets 4000 acks be outstanding
    with factory() as session:
        rows = outbox.pending(session, 10_000)

    async def run() -> list[dict]:
        publisher = NatsPublisher(nats_server.url, StreamOptions(prefix=prefix))
        await publisher.start()
        await publisher.publish(rows)
        await publisher.close()
        return await read_all(nats_server.url, prefix, 6000)

    got = asyncio.run(run())
    assert len(got) == 6000
    assert_in_order_per_key(got, 6000)


def test_a_broker_gone_mid_batch_is_a_publish_error_within_the_timeout(
    nats_server: PrivateNats, sqlite_url: str, prefix: str
) -> None:
    from backend.db import make_engine, session_factory
    from backend.stream.publish import PublishError

    factory = session_factory(make_engine(sqlite_url))
    add_events(factory, 0, 6000, chunk=2000)
    with factory() as session:
        rows = outbox.pending(session, 10_000)

    async def run() -> float:
        publisher = NatsPublisher(nats_server.url, StreamOptions(prefix=prefix, ack_timeout_s=2))
        await publisher.start()
        nats_server.stop()
        started = time.monotonic()
        with pytest.raises(PublishError):
            await publisher.publish(rows)
        took = time.monotonic() - started
        await publisher.close()
        return took

    assert asyncio.run(run()) < 5
