"""What the publishers decide without a broker: URL schemes, subjects, Kafka records and
producer settings (no Kafka broker runs here: docs/deployment.md "Event stream")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from backend.stream.kafka import KafkaPublisher, bootstrap_servers, producer_options, record
from backend.stream.outbox import OutboxRow
from backend.stream.publish import (
    NatsPublisher,
    RedisPublisher,
    StreamOptions,
    publisher_for,
    stream_name,
    subject_token,
)

ROW = OutboxRow(7, "eng-3-1", "fill", 1, "0xAbC", '{"amount":"1"}', datetime.now(UTC))


def test_publisher_of_each_url_scheme() -> None:
    options = StreamOptions()
    assert isinstance(publisher_for("nats://127.0.0.1:4222", options), NatsPublisher)
    assert isinstance(publisher_for("redis://127.0.0.1:6379/0", options), RedisPublisher)
    assert isinstance(publisher_for("kafka://k1:9092,k2", options), KafkaPublisher)
    with pytest.raises(ValueError, match="unknown broker scheme 'amqp'"):
        publisher_for("amqp://x", options)


def test_subject_tokens_hold_no_separator_or_wildcard() -> None:
    assert subject_token("WETH-USDC") == "WETH-USDC"
    assert subject_token("risk.breaker") == "risk_breaker"
    assert subject_token("a*b>c d") == "a_b_c_d"
    assert subject_token("") == "_"
    assert stream_name("hybridex") == "HYBRIDEX"


def test_kafka_record_keys_by_partition_key_and_carries_the_id() -> None:
    assert record(ROW, "hx") == {
        "topic": "hx.fill",
        "key": b"0xAbC",
        "value": ROW.envelope(),
        "headers": [("id", b"eng-3-1"), ("type", b"fill")],
    }
    assert bootstrap_servers("kafka://k1:9092,k2,[::1]:9093") == [
        "k1:9092",
        "k2:9092",
        "[::1]:9093",
    ]
    with pytest.raises(ValueError, match="at least one host"):
        bootstrap_servers("kafka://")


def test_kafka_producer_is_idempotent_with_every_replica() -> None:
    options = producer_options("kafka://k1", StreamOptions(ack_timeout_s=5))
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["request_timeout_ms"] == 5000
    # The extra's producer accepts exactly these settings (made without connecting).
    from aiokafka import AIOKafkaProducer

    async def build() -> bool:
        producer = AIOKafkaProducer(**options)
        idempotent = producer._txn_manager is not None  # aiokafka's idempotent sequencing
        await producer.stop()
        return idempotent

    assert asyncio.run(build())


def test_kafka_publisher_without_a_broker_fails_to_start_as_a_publish_error() -> None:
    from backend.stream.publish import PublishError

    publisher = KafkaPublisher("kafka://127.0.0.1:1", StreamOptions(ack_timeout_s=1))

    async def run() -> None:
        with pytest.raises(PublishError, match="Kafka"):
            await publisher.start()
        await publisher.close()

    asyncio.run(run())
