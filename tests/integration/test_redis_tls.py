"""Redis over TLS (`rediss://`) and unix sockets: every Redis client of the stack reads the same
URL the same way — the pipelined client of the rate limiter and feed writer, redis-py (feed
reads) and Celery's broker connection.

A `redis-server` of the test's own, with a throwaway CA and a password, on loopback; stopped
by the test.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from backend.api.ratelimit import RateRule, RedisRateLimiter
from backend.engine.feed_redis import RedisFeedStore
from backend.engine.feeds import FeedMessage
from backend.redis_pipeline import PipelinedRedis

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None or shutil.which("openssl") is None,
        reason="needs redis-server and openssl",
    ),
]

PASSWORD = "s3cret/with:odd@chars"


@dataclass
class TlsRedis:
    port: int
    ca: Path
    socket: Path

    def url(self, **query: str) -> str:
        base = f"rediss://:{quote(PASSWORD, safe='')}@localhost:{self.port}/5"
        q = "&".join(f"{k}={v}" for k, v in {"ssl_ca_certs": str(self.ca), **query}.items())
        return f"{base}?{q}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsRedis]:
    work = Path(tempfile.mkdtemp(prefix="hybridex-redis-tls-"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=work)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=work)  # fmt: skip
    (work / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
             cwd=work)  # fmt: skip
    port = _free_port()
    sock = work / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
         "--unixsocket", str(sock), "--requirepass", PASSWORD,
         "--save", "", "--appendonly", "no"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the TLS redis-server did not start")
            time.sleep(0.05)
        yield TlsRedis(port=port, ca=work / "ca.crt", socket=sock)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def test_pipelined_client_over_tls_checks_the_certificate(tls_redis: TlsRedis) -> None:
    async def main() -> None:
        client = PipelinedRedis.from_url(tls_redis.url())
        try:  # AUTH and SELECT 5 went first, over TLS
            assert await client.call(b"SET", b"hybridex-tls:k", b"v") == b"OK"
            assert await client.call(b"GET", b"hybridex-tls:k") == b"v"
            assert await client.call(b"CLIENT", b"INFO") is not None
        finally:
            await client.aclose()
        # Without our CA the server's certificate is not trusted: no connection, no command.
        untrusted = PipelinedRedis.from_url(
            f"rediss://:{quote(PASSWORD, safe='')}@localhost:{tls_redis.port}/5"
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusted.call(b"PING")
        await untrusted.aclose()
        # ...unless the operator says so explicitly.
        lax = PipelinedRedis.from_url(
            f"rediss://:{quote(PASSWORD, safe='')}@localhost:{tls_redis.port}/5?ssl_cert_reqs=none"
        )
        try:
            assert await lax.call(b"GET", b"hybridex-tls:k") == b"v"
        finally:
            await lax.aclose()

    asyncio.run(main())


def test_rate_limiter_and_feed_store_work_over_tls(tls_redis: TlsRedis) -> None:
    async def main() -> None:
        limiter = RedisRateLimiter.from_url(tls_redis.url(), "hybridex-tls:")
        rule = RateRule("trader", per_s=0.001, burst=2)
        try:
            hits = [await limiter.hit("0xabc", rule) for _ in range(3)]
        finally:
            await limiter.close()
        assert [h.allowed for h in hits] == [True, True, False]

        store = RedisFeedStore(tls_redis.url(), prefix="hybridex-tls:")
        try:  # written by the pipelined client, read back by redis-py: the same URL to both
            await store.append(9, [FeedMessage("trades:T", 1, {"n": 1})])
            got = await store.read_after("trades:T", 0)
            assert got is not None
            assert [(m.seq, m.data) for m in got] == [(1, {"n": 1})]
            assert await store.load_state() == (9, {"trades:T": 1})
        finally:
            await store.close()

    asyncio.run(main())


def test_unix_socket_url(tls_redis: TlsRedis) -> None:
    async def main() -> None:
        password = quote(PASSWORD, safe="")
        client = PipelinedRedis.from_url(f"unix://:{password}@{tls_redis.socket}?db=5")
        try:
            assert await client.call(b"SET", b"hybridex-tls:u", b"1") == b"OK"
        finally:
            await client.aclose()
        over_tls = PipelinedRedis.from_url(tls_redis.url())
        try:  # the same server and database
            assert await over_tls.call(b"GET", b"hybridex-tls:u") == b"1"
        finally:
            await over_tls.aclose()

    asyncio.run(main())


def test_celery_broker_connects_over_tls_and_checks_the_certificate(tls_redis: TlsRedis) -> None:
    from kombu.exceptions import OperationalError

    from backend.config import Settings
    from backend.settlement.celery_app import make_app

    app = make_app(Settings(redis_url=tls_redis.url()))
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        with conn.channel() as channel:
            assert channel.client.ping()
    # Left to kombu alone, a rediss:// URL without ssl_cert_reqs would verify nothing.
    untrusted = f"rediss://:{quote(PASSWORD, safe='')}@localhost:{tls_redis.port}/5"
    app = make_app(Settings(redis_url=untrusted))
    with app.connection_for_write() as conn, pytest.raises(OperationalError, match="certificate"):
        conn.ensure_connection(max_retries=0)
