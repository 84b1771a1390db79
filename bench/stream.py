"""The event stream end to end: outbox rows in PostgreSQL → `hybridex relay`'s code → NATS
JetStream → an acknowledging durable consumer, against the broker alone.

- `events_per_s`: N events already in the outbox (a backlog, e.g. after a broker outage)
  drained by the relay until the consumer has acknowledged the last one.
- `floor_events_per_s`: the same N envelopes published with the same client and batch size
  (nats-py `publish_async`, all acks awaited per batch) and consumed by the same consumer, no
  database: what no relay can beat on this broker.
- `lag_p50_ms` / `lag_p99_ms`: with a writer adding events at a steady `--rate` meanwhile, the
  time from an event's commit to the outbox (`created_at`) to its arrival at the consumer.

    .venv/bin/python bench/stream.py            # 100k events
    .venv/bin/python bench/stream.py --quick    # 5k events (smoke)
    .venv/bin/python bench/stream.py --json     # table, then one JSON object last

Needs PostgreSQL (HYBRIDEX_BENCH_PG_ADMIN_URL) and NATS JetStream (HYBRIDEX_BENCH_NATS_URL,
default nats://127.0.0.1:4222); its database and its streams are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _db import fresh_database
from _machine import machine, print_machine
from sqlalchemy.orm import Session, sessionmaker

from backend.db.session import make_engine, session_factory, unit_of_work
from backend.stream import outbox
from backend.stream.consume import JetStreamReader
from backend.stream.outbox import OutboxRow, StreamEvent
from backend.stream.publish import NatsPublisher, StreamOptions, stream_name
from backend.stream.relay import Relay, RelayConfig

NATS_URL = os.environ.get("HYBRIDEX_BENCH_NATS_URL", "nats://127.0.0.1:4222")
BATCH = 1000
TRADERS = ["0x" + f"{i:040x}" for i in range(1, 201)]


def event(n: int) -> StreamEvent:
    """A fill-sized event (what the stream carries most), keyed by one of 200 traders."""
    trader = TRADERS[n % len(TRADERS)]
    return StreamEvent(
        f"bench-{n}",
        "fill",
        trader,
        {
            "fill_id": f"{n}-0",
            "market": "WETH-USDC",
            "trader": trader,
            "side": "buy",
            "price": "3150250000000000000000",
            "amount": str(10**17 + n),
            "fee": "94507500000000000",
            "state": "matched",
            "seq": n,
        },
    )


def insert(factory: sessionmaker[Session], start: int, count: int) -> None:
    for base in range(start, start + count, BATCH):
        with unit_of_work(factory) as session:
            outbox.add(session, [event(n) for n in range(base, min(base + BATCH, start + count))])


async def consume(reader: JetStreamReader, count: int, arrivals: dict[str, float]) -> None:
    """Fetch and acknowledge until `count` distinct events arrived; arrival time per id."""
    while len(arrivals) < count:
        messages = await reader.fetch(BATCH, timeout=2.0)
        now = time.time()
        for msg in messages:
            arrivals.setdefault(json.loads(msg.data)["id"], now)
        await reader.ack(messages)


async def floor(rows: list[OutboxRow], prefix: str) -> float:
    publisher = NatsPublisher(NATS_URL, StreamOptions(prefix=prefix))
    await publisher.start()
    reader = JetStreamReader(NATS_URL, prefix, "bench")
    await reader.start()
    arrivals: dict[str, float] = {}
    started = time.time()
    consuming = asyncio.create_task(consume(reader, len(rows), arrivals))
    for i in range(0, len(rows), BATCH):
        await publisher.publish(rows[i : i + BATCH])
    await consuming
    took = max(arrivals.values()) - started
    await reader.close()
    await publisher.close()
    return len(rows) / took


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def delete_streams(prefixes: list[str]) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for p in prefixes:
        with contextlib.suppress(Exception):  # never created (a failed run)
            await js.delete_stream(stream_name(p))
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2_000, help="Steady load for the lag.")
    parser.add_argument("--quick", action="store_true", help="5k events (smoke)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    count = 5_000 if args.quick else args.events
    lag_events = min(count, args.rate * (2 if args.quick else 10))
    print_machine()
    run = uuid.uuid4().hex[:8]
    prefixes = [f"benchfloor{run}", f"bench{run}"]
    try:
        with fresh_database("stream") as url:
            engine = make_engine(url)
            factory = session_factory(engine)
            t0 = time.perf_counter()
            insert(factory, 0, count)
            with factory() as session:
                rows = outbox.pending(session, count)
            print(f"    setup: {count:,} outbox rows in {time.perf_counter() - t0:.1f} s")
            floor_rate = asyncio.run(floor(rows, prefixes[0]))
            rate, lags = asyncio.run(lagged(factory, count, prefixes[1], args.rate, lag_events))
            engine.dispose()
    finally:
        asyncio.run(delete_streams(prefixes))
    result = {
        "benchmark": "stream",
        **machine(),
        "broker": "nats-jetstream",
        "events": count,
        "batch": BATCH,
        "events_per_s": round(rate),
        "floor_events_per_s": round(floor_rate),
        "ratio_to_floor": round(rate / floor_rate, 3),
        "lag_rate_per_s": args.rate,
        "lag_events": lag_events,
        "lag_p50_ms": round(percentile(lags, 0.50), 1),
        "lag_p99_ms": round(percentile(lags, 0.99), 1),
    }
    print(f"    relay: {result['events_per_s']:,} events/s outbox → consumer (backlog drain)")
    print(f"    floor: {result['floor_events_per_s']:,} events/s publish → consumer, no database")
    print(f"    ratio: {result['ratio_to_floor']}× the floor (target ≥ 0.5×)")
    print(
        f"    lag:   p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms at "
        f"{args.rate:,} events/s steady load"
    )
    if args.json:
        print(json.dumps(result))


async def lagged(
    factory: sessionmaker[Session], count: int, prefix: str, rate: int, lag_events: int
) -> tuple[float, list[float]]:
    """(events/s draining the backlog of `count`, lag in ms of each of `lag_events` events
    written at `rate` per second meanwhile: its arrival − its commit to the outbox)."""
    commits: dict[str, float] = {}
    arrivals: dict[str, float] = {}
    publisher = NatsPublisher(NATS_URL, StreamOptions(prefix=prefix))
    await publisher.start()  # the stream, before the consumer subscribes to it
    relay = Relay(factory, publisher, RelayConfig(batch_size=BATCH, poll_interval_s=0.005))
    reader = JetStreamReader(NATS_URL, prefix, "bench")
    await reader.start()
    started = time.time()
    relaying = asyncio.create_task(relay.run())
    await consume(reader, count, arrivals)
    drain_rate = count / (max(arrivals.values()) - started)

    def writer() -> None:
        chunk = max(1, rate // 200)
        t0 = time.perf_counter()
        for i, base in enumerate(range(count, count + lag_events, chunk)):
            events = [event(n) for n in range(base, min(base + chunk, count + lag_events))]
            with unit_of_work(factory) as session:
                outbox.add(session, events)
            committed = time.time()  # the events exist for the relay from here on
            for e in events:
                commits[e.event_id] = committed
            delay = t0 + (i + 1) * chunk / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    thread = threading.Thread(target=writer)
    thread.start()
    await consume(reader, count + lag_events, arrivals)
    await asyncio.to_thread(thread.join)
    relay.stop()
    await relaying
    await reader.close()
    with factory() as session:
        left = outbox.lag(session)[0]
    if left:
        raise SystemExit(f"the relay left {left} rows in the outbox")
    lags = [(arrivals[i] - commits[i]) * 1000 for i in commits]
    return drain_rate, lags


if __name__ == "__main__":
    main()
