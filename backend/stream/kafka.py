"""The Kafka publisher (HYBRIDEX_STREAM_URL=kafka://host:9092[,host2:9092]), with aiokafka, an
optional extra (`pip install hybridex[kafka]`) imported only here, so the other brokers need
none of it.

Topic `<prefix>.<type>`, record key = the event's partition key (each key's events of a type land
in one partition, in the order sent), header `id` = the event id (what consumers deduplicate
by). The producer is idempotent with acks=all: the broker drops a retried send of its own, and a
send is acknowledged only once every in-sync replica has it. Not exercised against a broker here
(docs/deployment.md "Event stream").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from backend.stream.outbox import OutboxRow
from backend.stream.publish import PublishError, StreamOptions


def bootstrap_servers(url: str) -> list[str]:
    """`kafka://a:9092,b:9092` → ["a:9092", "b:9092"] (port 9092 when none is given)."""
    netloc = urlsplit(url).netloc
    hosts = [h.strip() for h in netloc.split(",") if h.strip()]
    if not hosts:
        raise ValueError("HYBRIDEX_STREAM_URL: kafka:// needs at least one host")
    return [h if ":" in h.rsplit("]", 1)[-1] else f"{h}:9092" for h in hosts]


def topic(prefix: str, event_type: str) -> str:
    return f"{prefix}.{event_type}"


def record(row: OutboxRow, prefix: str) -> dict[str, Any]:
    """The keyword arguments of the row's `send`: where it goes, its key, value and headers."""
    return {
        "topic": topic(prefix, row.type),
        "key": row.key.encode(),
        "value": row.envelope(),
        "headers": [("id", row.event_id.encode()), ("type", row.type.encode())],
    }


def producer_options(url: str, options: StreamOptions) -> dict[str, Any]:
    """The AIOKafkaProducer's settings: idempotent, every in-sync replica, ordered retries."""
    return {
        "bootstrap_servers": bootstrap_servers(url),
        "client_id": "hybridex-relay",
        "acks": "all",
        "enable_idempotence": True,  # with acks=all, retries keep each partition's order
        "request_timeout_ms": int(options.ack_timeout_s * 1000),
        "linger_ms": 5,
    }


class KafkaPublisher:
    """Every row is sent without waiting (aiokafka batches them per partition), then all the
    delivery futures are awaited together."""

    def __init__(self, url: str, options: StreamOptions) -> None:
        try:
            import aiokafka  # noqa: F401
        except ImportError as exc:  # the optional extra is not installed
            raise ValueError(
                "HYBRIDEX_STREAM_URL=kafka://… needs aiokafka: pip install 'hybridex[kafka]'"
            ) from exc
        self.options = options
        self._settings = producer_options(url, options)
        self._producer: Any = None  # made in start(): aiokafka binds it to the running loop

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        if self._producer is not None:
            return
        producer = AIOKafkaProducer(**self._settings)
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise PublishError(f"Kafka: {type(exc).__name__}: {exc}") from exc
        self._producer = producer

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        from aiokafka.errors import KafkaError

        assert self._producer is not None, "start() first"
        try:
            futures = [await self._producer.send(**record(r, self.options.prefix)) for r in rows]
            await asyncio.wait_for(asyncio.gather(*futures), self.options.ack_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise PublishError(f"Kafka: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self._producer = None
