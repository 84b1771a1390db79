"""The event stream of `hybridex dev`: HYBRIDEX_STREAM_URL if given (empty: none), else the
embedded default found on this machine: NATS JetStream on 127.0.0.1:4222 if it answers, else
Redis Streams on HYBRIDEX_REDIS_URL if it answers, else none (no events are written)."""

from __future__ import annotations

import os
import socket

DEV_NATS_URL = "nats://127.0.0.1:4222"


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.3).close()
    except OSError:
        return False
    return True


def _redis_answers(url: str) -> bool:
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def dev_stream_url(redis_url: str, nats_url: str = DEV_NATS_URL) -> str | None:
    if "HYBRIDEX_STREAM_URL" in os.environ:
        return os.environ["HYBRIDEX_STREAM_URL"] or None
    host, _, port = nats_url.removeprefix("nats://").partition(":")
    if _answers(host, int(port or 4222)):
        return nats_url
    if _redis_answers(redis_url):
        return redis_url
    return None
