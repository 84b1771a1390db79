"""`PipelinedRedis`: one Redis connection per process that pipelines every concurrent command.

Used on the hot paths: the API's rate limiter (once or twice per request) and the engine's feed
writer (one script call per command group). redis-py checks a connection out of its pool,
writes and waits for each command on its own; under load that is a syscall pair and most of a
pure-Python reply parser per call. Here commands issued during one event-loop pass are
written in one `write`, and the replies (which Redis sends in order) resolve their futures
first-in first-out. RESP2 only; enough for EVALSHA/EVAL/SELECT/AUTH/PING.

    redis = PipelinedRedis.from_url("redis://127.0.0.1:6379/0")
    reply = await redis.call(b"EVALSHA", sha, b"1", key, b"10", b"1.5")
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

Arg = bytes | str | int | float


class RedisReplyError(Exception):
    """An error reply (`-ERR …`, `-NOSCRIPT …`) to one command; the connection stays usable."""


def encode_command(args: tuple[Arg, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _IncompleteError(Exception):
    pass


def parse_reply(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from `buf[pos:]` and the position after it; `_IncompleteError` if cut."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _IncompleteError
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 0x3A:  # ':'
        return int(line), pos
    if kind == 0x24:  # '$'
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _IncompleteError
        return bytes(buf[pos : pos + n]), pos + n + 2
    if kind == 0x2A:  # '*'
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return items, pos
    if kind == 0x2B:  # '+'
        return line, pos
    if kind == 0x2D:  # '-'
        return RedisReplyError(line.decode(errors="replace")), pos
    raise ValueError(f"unexpected RESP reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise ConnectionError("redis connection lost")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.out.append(command)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.flush_scheduled = False
        out, self.out = self.out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = parse_reply(buf, pos)
                fut = self.waiting.popleft()
                if not fut.done():
                    if isinstance(reply, RedisReplyError):
                        fut.set_exception(reply)
                    else:
                        fut.set_result(reply)
        except _IncompleteError:
            pass
        except (ValueError, IndexError) as exc:  # garbage or an unasked-for reply: drop it all
            self._fail(ConnectionError(f"redis protocol error: {exc!r}"))
            if self.transport is not None:
                self.transport.close()
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"redis connection lost: {exc!r}"))

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        waiting, self.waiting = self.waiting, deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)


class PipelinedRedis:
    """Lazily connected; a lost connection fails the commands in flight (ConnectionError) and
    is reopened by the next call."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 2.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self._proto: _Protocol | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str) -> PipelinedRedis:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (redis:// only)")
        path = parts.path.lstrip("/")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            proto = self._proto
            if proto is not None and proto.lost is None:
                return proto
            loop = asyncio.get_running_loop()
            _, fresh = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout
            )
            setup: list[asyncio.Future[Any]] = []
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                setup.append(fresh.send(encode_command((b"AUTH", *auth))))
            if self.db:
                setup.append(fresh.send(encode_command((b"SELECT", self.db))))
            for fut in setup:
                await fut
            self._proto = fresh
            return fresh

    async def call(self, *args: Arg) -> Any:
        """The reply to one command; raises `RedisReplyError` for an error reply and
        `ConnectionError` / `OSError` when Redis cannot be reached."""
        proto = await self._connection()
        return await proto.send(encode_command(args))

    async def aclose(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
