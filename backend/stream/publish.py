"""Publishers of the event stream: one interface, a broker behind each URL scheme.

`publish(rows)` sends the outbox rows in the order given (id order) and returns once the broker
has acknowledged every one of them, or raises `PublishError`: the relay deletes the rows only
after it returned, so a row is published at least once. Each message carries the event id (the
JetStream `Nats-Msg-Id` header, the Redis entry's `id` field, the Kafka record's `id` header),
which is how a re-sent event is recognised: JetStream drops it within its duplicate window, a
consumer drops it by id in every case.

- `nats://` NATS JetStream (the tested default): subject `<prefix>.<type>.<key token>` in one
  stream `<PREFIX>` on `<prefix>.>`, so one subscription sees every event in the order the relay
  published them (and so each key's events in order).
- `redis://` / `rediss://` Redis Streams: `XADD <prefix>:<type>`, one stream per event type; each
  stream keeps the relay's order, so each key's events of a type are in order. No broker-side
  deduplication: consumers deduplicate by id.
- `kafka://` Kafka (backend/stream/kafka.py, `pip install hybridex[kafka]`): topic
  `<prefix>.<type>`, record key = partition key, so each key's events of a type are in one
  partition, in order.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from backend.stream.outbox import OutboxRow

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js.api import PubAck
    from nats.js.client import JetStreamContext

# What a NATS subject token may hold ('.' separates tokens, '*' and '>' are wildcards).
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


class PublishError(Exception):
    """The broker did not acknowledge every row (down, refused, timed out): publish them again."""


class Publisher(Protocol):
    """What the relay publishes through; one instance per relay, used from one task."""

    async def start(self) -> None:
        """Connect, and create or update what the broker needs (idempotent)."""

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        """Send `rows` in order; return once all are acknowledged, else raise PublishError."""

    async def close(self) -> None: ...


def subject_token(value: str) -> str:
    """`value` as one NATS subject token (filtering only: the key itself is in the message)."""
    return _TOKEN_UNSAFE.sub("_", value) or "_"


def stream_name(prefix: str) -> str:
    """The JetStream stream of a subject prefix: `hybridex` → `HYBRIDEX`."""
    return subject_token(prefix).upper()


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Broker settings beyond the URL (HYBRIDEX_STREAM_*; docs/configuration.md)."""

    prefix: str = "hybridex"
    ack_timeout_s: float = 10.0
    replicas: int = 1
    duplicate_window_s: float = 120.0


def publisher_for(url: str, options: StreamOptions) -> Publisher:
    """The publisher of a broker URL (`nats://`, `redis://`, `rediss://`, `kafka://`)."""
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        return NatsPublisher(url, options)
    if scheme in ("redis", "rediss"):
        return RedisPublisher(url, options)
    if scheme == "kafka":
        from backend.stream.kafka import KafkaPublisher

        return KafkaPublisher(url, options)
    raise ValueError(f"HYBRIDEX_STREAM_URL: unknown broker scheme {scheme!r} (nats, redis, kafka)")


class NatsPublisher:
    """NATS JetStream: every row is sent without waiting (`publish_async`, one connection, so
    the server stores them in the order sent), then all the acks are awaited together."""

    def __init__(self, url: str, options: StreamOptions) -> None:
        self.url = url
        self.options = options
        self.stream = stream_name(options.prefix)
        self._nc: NatsClient | None = None
        self._jsc: JetStreamContext | None = None  # one: each has its own ack subscription

    async def start(self) -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        if self._nc is None:
            # Reconnect forever: a broker restart must not end the relay; a publish while
            # disconnected fails (PublishError) and the relay retries it.
            self._nc = await nats.connect(
                self.url,
                name="hybridex-relay",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=self.options.ack_timeout_s,
            )
        js = self._js()
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.options.prefix}.>"],
            storage=StorageType.FILE,
            num_replicas=self.options.replicas,
            duplicate_window=self.options.duplicate_window_s,
        )
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(config)
        else:
            # Only what the relay owns; retention limits set by the operator stay as they are.
            await js.update_stream(config)

    def _js(self) -> JetStreamContext:
        assert self._nc is not None, "start() first"
        if self._jsc is None:
            self._jsc = self._nc.jetstream(timeout=self.options.ack_timeout_s)
        return self._jsc

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        from nats.errors import Error as NatsError

        js = self._js()
        prefix = self.options.prefix
        futures: list[asyncio.Future[PubAck]] = []
        try:
            # One bound for the batch: sending (past 4000 unacknowledged, publish_async waits
            # for acks to come back) and every ack.
            async with asyncio.timeout(self.options.ack_timeout_s):
                for row in rows:
                    futures.append(
                        await js.publish_async(
                            f"{prefix}.{row.type}.{subject_token(row.key)}",
                            row.envelope(),
                            wait_stall=None,
                            headers={"Nats-Msg-Id": row.event_id},
                        )
                    )
                await asyncio.gather(*futures)
        except (NatsError, TimeoutError, OSError) as exc:
            for future in futures:
                future.cancel()
            raise PublishError(f"NATS JetStream: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
        self._nc = None
        self._jsc = None


class RedisPublisher:
    """Redis Streams: one pipeline of XADDs per call (one round trip, executed in order)."""

    def __init__(self, url: str, options: StreamOptions) -> None:
        import redis.asyncio as aioredis

        self.options = options
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=options.ack_timeout_s, socket_connect_timeout=options.ack_timeout_s
        )

    def key(self, event_type: str) -> str:
        return f"{self.options.prefix}:{event_type}"

    async def start(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise PublishError(f"Redis: {type(exc).__name__}: {exc}") from exc

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        from redis.exceptions import RedisError

        pipe = self._redis.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(
                self.key(row.type),
                {
                    "id": row.event_id,
                    "type": row.type,
                    "version": row.version,
                    "key": row.key,
                    "event": row.envelope(),
                },
            )
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PublishError(f"Redis: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
