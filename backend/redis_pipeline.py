"""`PipelinedRedis`: one Redis connection per process that pipelines every concurrent command.

Used on the hot paths: the API's rate limiter (once or twice per request) and the engine's feed
writer (one script call per command group). redis-py checks a connection out of its pool,
writes and waits for each command on its own; under load that is a syscall pair and most of a
pure-Python reply parser per call. Here commands issued during one event-loop pass are
written in one `write`, and the replies (which Redis sends in order) resolve their futures
first-in first-out. RESP2 only; enough for EVALSHA/EVAL/SELECT/AUTH/PING.

URLs are read by redis-py's own parser, so one `HYBRIDEX_REDIS_URL` means the same to both
clients: `redis://`, `rediss://` (TLS: `ssl_cert_reqs` required|optional|none, `ssl_ca_certs`,
`ssl_certfile`, `ssl_keyfile`, `ssl_check_hostname`, with redis-py's defaults: the server's
certificate and name are checked) and `unix://` (a socket path, `?db=N`).

    redis = PipelinedRedis.from_url("redis://127.0.0.1:6379/0")
    reply = await redis.call(b"EVALSHA", sha, b"1", key, b"10", b"1.5")
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from redis.connection import UnixDomainSocketConnection, parse_url

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
        tls: ssl.SSLContext | None = None,
        unix_path: str | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self.tls, self.unix_path = tls, unix_path
        self._proto: _Protocol | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str) -> PipelinedRedis:
        """A client for a `redis://`, `rediss://` or `unix://` URL (ValueError otherwise)."""
        kw = parse_url(url)
        connection = kw.get("connection_class")
        return cls(
            str(kw.get("host", "127.0.0.1")),
            int(kw.get("port", 6379)),
            int(kw.get("db", 0)),
            username=kw.get("username"),
            password=kw.get("password"),
            tls=tls_context(kw) if url.startswith("rediss://") else None,
            unix_path=kw.get("path") if connection is UnixDomainSocketConnection else None,
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
            if self.unix_path is not None:
                opening = loop.create_unix_connection(_Protocol, self.unix_path)
            else:
                opening = loop.create_connection(_Protocol, self.host, self.port, ssl=self.tls)
            _, fresh = await asyncio.wait_for(opening, self.connect_timeout)
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


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The TLS settings of a `rediss://` URL's options (`parse_url`), with redis-py's defaults
    (certificate and host name checked): `ssl_cert_reqs` (an `ssl.VerifyMode`),
    `ssl_check_hostname`, and `ssl_ca_certs` / `ssl_certfile` / `ssl_keyfile` when given."""
    reqs = str(options.get("ssl_cert_reqs", "required")).lower()
    if reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {reqs!r}")
    out: dict[str, Any] = {
        "ssl_cert_reqs": _CERT_REQS[reqs],
        "ssl_check_hostname": bool(options.get("ssl_check_hostname", True)) and reqs != "none",
    }
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if options.get(key):
            out[key] = options[key]
    return out


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context redis-py would build from a `rediss://` URL's options (`parse_url`)."""
    tls = tls_options(options)
    ctx = ssl.create_default_context(cafile=tls.get("ssl_ca_certs"))
    if "ssl_certfile" in tls:
        ctx.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"))
    ctx.check_hostname = tls["ssl_check_hostname"]
    ctx.verify_mode = tls["ssl_cert_reqs"]
    return ctx
