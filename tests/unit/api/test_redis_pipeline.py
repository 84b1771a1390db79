"""`PipelinedRedis` against a fake RESP server: replies in order, split anywhere, errors, a lost
connection, and the rate limiter's EVALSHA → EVAL fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from backend.api.ratelimit import RateRule, RedisRateLimiter
from backend.redis_pipeline import (
    PipelinedRedis,
    RedisReplyError,
    _IncompleteError,
    encode_command,
    parse_reply,
)

REPLIES = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$4\r\n0.75\r\n*0\r\n-NOSCRIPT no\r\n"


def test_encode_command() -> None:
    assert encode_command((b"EVALSHA", "ab", 1, 2.5)) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\n2.5\r\n"
    )


def test_parse_reply_every_type_and_every_cut() -> None:
    pos, out = 0, []
    while pos < len(REPLIES):
        reply, pos = parse_reply(REPLIES, pos)
        out.append(reply)
    assert out[:6] == [b"OK", 42, b"abc", None, [1, b"0.75"], []]
    assert isinstance(out[6], RedisReplyError)
    assert str(out[6]) == "NOSCRIPT no"
    for cut in range(len(REPLIES)):  # a prefix parses as far as it is complete, never wrong
        buf, pos, got = REPLIES[:cut], 0, 0
        try:
            while pos < len(buf):
                _, pos = parse_reply(buf, pos)
                got += 1
        except _IncompleteError:
            pass
        assert got <= 7


Handler = Callable[[list[bytes]], bytes]


async def fake_redis(handler: Handler) -> tuple[asyncio.Server, int, list[list[bytes]]]:
    """A RESP server answering each command with `handler(args)`; records what it was sent."""
    seen: list[list[bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readline()
                if not head:
                    break
                args = []
                for _ in range(int(head[1:])):
                    n = int((await reader.readline())[1:])
                    args.append((await reader.readexactly(n + 2))[:-2])
                seen.append(args)
                answer = handler(args)
                if answer == b"":
                    writer.close()
                    return
                writer.write(answer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1]), seen


def test_concurrent_calls_are_pipelined_and_answered_in_order() -> None:
    async def main() -> None:
        def echo(args: list[bytes]) -> bytes:
            return b":" + args[1] + b"\r\n" if args[0] == b"ECHOINT" else b"+OK\r\n"

        server, port, seen = await fake_redis(echo)
        redis = PipelinedRedis.from_url(f"redis://127.0.0.1:{port}/3")
        try:
            got = await asyncio.gather(*(redis.call(b"ECHOINT", i) for i in range(500)))
            assert got == list(range(500))
            assert seen[0] == [b"SELECT", b"3"]  # before any command
            assert [a[1] for a in seen[1:]] == [str(i).encode() for i in range(500)]
        finally:
            await redis.aclose()
            server.close()

    asyncio.run(main())


def test_error_reply_fails_one_call_and_a_lost_connection_is_reopened() -> None:
    async def main() -> None:
        def handler(args: list[bytes]) -> bytes:
            if args[0] == b"BAD":
                return b"-ERR bad\r\n"
            if args[0] == b"HANGUP":
                return b""
            return b"+PONG\r\n"

        server, port, _ = await fake_redis(handler)
        redis = PipelinedRedis("127.0.0.1", port)
        try:
            with pytest.raises(RedisReplyError, match="ERR bad"):
                await redis.call(b"BAD")
            assert await redis.call(b"PING") == b"PONG"
            with pytest.raises(ConnectionError):
                await redis.call(b"HANGUP")
            assert await redis.call(b"PING") == b"PONG"  # a fresh connection
        finally:
            await redis.aclose()
            server.close()
        with pytest.raises(ConnectionRefusedError):  # nothing listens: the caller learns it
            await PipelinedRedis("127.0.0.1", port).call(b"PING")

    asyncio.run(main())


def test_rate_limiter_loads_its_script_when_redis_does_not_know_it() -> None:
    async def main() -> None:
        known: set[bytes] = set()

        def handler(args: list[bytes]) -> bytes:
            if args[0] == b"EVALSHA" and args[1] not in known:
                return b"-NOSCRIPT No matching script.\r\n"
            if args[0] == b"EVAL":
                import hashlib

                known.add(hashlib.sha1(args[1], usedforsecurity=False).hexdigest().encode())
            return b"*2\r\n:1\r\n$3\r\n4.5\r\n"

        server, port, seen = await fake_redis(handler)
        limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{port}", "p:")
        rule = RateRule("trader", per_s=1.0, burst=10)
        try:
            first: Any = await limiter.hit("0xabc", rule)
            second: Any = await limiter.hit("0xabc", rule)
        finally:
            await limiter.close()
            server.close()
        assert [a[0] for a in seen] == [b"EVALSHA", b"EVAL", b"EVALSHA"]
        # burst, rate, then need and want: a block of one token (no lease without lease_tokens)
        assert seen[0][2:] == [b"1", b"p:rl:trader:0xabc", b"10", b"1.0", b"1", b"1"]
        assert first == second
        assert (first.allowed, first.remaining, first.limit) == (True, 4, 10)

    asyncio.run(main())
