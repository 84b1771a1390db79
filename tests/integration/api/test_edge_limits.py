"""The API's edge limits against the real processes (`hybridex engine` + `hybridex api`):

- `/v1/ws`: a message flood is closed and costs the engine a bounded number of BOOK requests
  (counted by a TCP relay between the API and the engine); connections per IP; frame size;
- per-IP buckets behind a trusted proxy (the peer is 127.0.0.2, a loopback address that
  uvicorn's default does not trust), and a spoofed X-Forwarded-For from an untrusted peer;
- the limiter's Redis (a redis-server started here) hung, then down: reads and cancels pass,
  orders are refused 503 `RATE_LIMITER_UNAVAILABLE`, and nothing hangs;
- the API's log holds no credential of `HYBRIDEX_RPC_URL`, though httpx logs every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from backend.chain.anvil import free_port
from backend.engine import protocol as p
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.load import bench_api

pytestmark = pytest.mark.integration

PROXY = "127.0.0.2"  # the trusted proxy's address (all of 127/8 is loopback on Linux)
STRANGER = "127.0.0.3"  # a peer that is not a proxy


class CountingRelay:
    """A TCP relay in front of the engine that counts the BOOK frames the API sends."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.books = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def requests() -> None:
            while True:
                head = await reader.readexactly(p.HEADER.size)
                length, kind, _rid = p.HEADER.unpack(head)
                body = await reader.readexactly(length - 5)
                if kind == p.BOOK:
                    self.books += 1
                up_writer.write(head + body)

        async def answers() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)

        with contextlib.suppress(Exception):
            await asyncio.gather(requests(), answers())
        writer.close()
        up_writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def api_stack(
    env: dict[str, str], api_env: dict[str, str] | None = None, log_level: str = "WARNING"
) -> Iterator[Any]:
    """Engine + one API worker; the API reaches the engine through a `CountingRelay`
    (`stack.relay`) and gets `api_env` on top of `env`."""
    b = bench_api()
    # TCP, so that the relay can sit between the API and the engine
    stack = b.Stack(workers=1, pg_admin_url=PG_ADMIN_URL, redis_url=REDIS_URL,
                    extra_env={**env, "HYBRIDEX_ENGINE_TRANSPORT": "tcp"},
                    log_level=log_level)  # fmt: skip
    relay: CountingRelay | None = None
    try:
        stack.create_database()
        stack.start_engine()
        asyncio.run(b.list_and_fund(stack, n_traders=2))
        relay = CountingRelay(stack.engine_port)
        stack.relay = relay
        stack.extra_env.update({"HYBRIDEX_ENGINE_PORT": str(relay.port), **(api_env or {})})
        # One uvicorn process (no supervisor with worker children): per-worker limits are exact.
        stack.api_worker_pids = lambda: [stack.api.pid] if stack.api else []
        stack.start_api()
        b.wait_market_listed(stack.api_port)
        yield stack
    finally:
        stack.close()
        if relay is not None:
            relay.close()


# ------------------------------------------------------------------------- WebSocket

WS_ENV = {
    "HYBRIDEX_API_WS_MSG_BURST": "1",
    "HYBRIDEX_API_WS_MSG_PER_S": "0.5",
    "HYBRIDEX_API_WS_MAX_CONNECTIONS_PER_IP": "3",
    "HYBRIDEX_API_WS_MAX_MESSAGE_BYTES": "1024",
    "HYBRIDEX_API_WS_BOOK_CACHE_S": "30",
}


def closed_with(ws: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """Read until the server closes; the close code and reason."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionClosed):
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    assert ws.close_code is not None, "the server did not close the connection"
    return ws.close_code, ws.close_reason or ""


def subscribe(channel: str) -> str:
    return orjson.dumps({"op": "subscribe", "channel": channel}).decode()


def test_websocket_flood_size_and_connection_limits() -> None:
    with api_stack(WS_ENV) as stack:
        url = f"ws://127.0.0.1:{stack.api_port}/v1/ws"
        relay: CountingRelay = stack.relay
        before = relay.books

        # A flood on one connection: the first message is served, the second closes it.
        with connect(url, open_timeout=10) as ws:
            # the server may close while the flood is still being sent
            with contextlib.suppress(ConnectionClosed):
                for _ in range(150):
                    ws.send(subscribe("book:WETH-USDC"))
                    unsubscribe = {"op": "unsubscribe", "channel": "book:WETH-USDC"}
                    ws.send(orjson.dumps(unsubscribe).decode())
            assert closed_with(ws) == (1008, "RATE_LIMITED")
        flood_books = relay.books - before
        assert flood_books <= 1

        # Three clients subscribing to the same book share the worker's cached snapshot.
        with contextlib.ExitStack() as opened:
            clients = [opened.enter_context(connect(url, open_timeout=10)) for _ in range(3)]
            for ws in clients:
                ws.send(subscribe("book:WETH-USDC"))
            for ws in clients:
                kinds = [orjson.loads(ws.recv(timeout=10))["type"] for _ in range(2)]
                assert kinds == ["subscribed", "snapshot"]
            assert relay.books - before <= 1

            # A fourth connection from the same address is refused at the handshake.
            with pytest.raises(InvalidStatus) as refused:
                connect(url, open_timeout=10)
            assert refused.value.response.status_code == 429
            error = orjson.loads(refused.value.response.body or b"{}")["error"]
            assert error["code"] == "TOO_MANY_CONNECTIONS"
        # Closed connections are given back.
        deadline = time.monotonic() + 10
        while True:
            try:
                with connect(url, open_timeout=10):
                    break
            except InvalidStatus:
                assert time.monotonic() < deadline, "closed connections were never released"
                time.sleep(0.1)

        # A frame over the size limit closes the connection with 1009 (message too big).
        with connect(url, open_timeout=10) as ws:
            ws.send('{"op": "ping", "pad": "' + "x" * 2000 + '"}')
            code, _reason = closed_with(ws)
            assert code == 1009
        # The process is unharmed: a normal client still works.
        with connect(url, open_timeout=10) as ws:
            ws.send('{"op": "ping"}')
            assert orjson.loads(ws.recv(timeout=10))["type"] == "pong"


# ------------------------------------------------------------------------- proxies, Redis


@contextlib.contextmanager
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server of this test on a free loopback port (never the shared one)."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hybridex-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                __import__("socket").create_connection(("127.0.0.1", port), timeout=1),
            ):
                break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def client_from(address: str, port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        transport=httpx.HTTPTransport(local_address=address),
        timeout=10,
    )


def signed_order(b: ModuleType, nonce: int) -> tuple[str, dict[str, Any]]:
    from eth_account import Account

    from backend.domain.types import Side, TimeInForce
    from backend.eip712.domain import Domain
    from backend.eip712.hashing import digest
    from backend.eip712.messages import Order
    from backend.eip712.parsing import message_to_json

    key = b.trader_key(0)
    order = Order(
        Account.from_key(key).address, b.WETH, b.USDC, Side.BUY, b.MID - 100 * b.TICK, b.LOT,
        TimeInForce.GTC, nonce, 0,
    )  # fmt: skip
    h = digest(order, Domain(b.CHAIN_ID, b.EXCHANGE))
    return "0x" + h.hex(), {"order": message_to_json(order), "signature": sign(key, h)}


def signed_cancel(b: ModuleType, order_hash: str) -> dict[str, Any]:
    from eth_account import Account

    from backend.eip712.domain import Domain
    from backend.eip712.hashing import digest
    from backend.eip712.messages import Cancel
    from backend.eip712.parsing import message_to_json

    key = b.trader_key(0)
    cancel = Cancel(Account.from_key(key).address, bytes.fromhex(order_hash[2:]))
    h = digest(cancel, Domain(b.CHAIN_ID, b.EXCHANGE))
    return {"cancel": message_to_json(cancel), "signature": sign(key, h)}


def sign(key: bytes, h: bytes) -> str:
    import coincurve

    sig = coincurve.PrivateKey(key).sign_recoverable(h, hasher=None)
    return "0x" + (sig[:64] + bytes([27 + sig[64]])).hex()


PROXY_ENV = {
    "HYBRIDEX_API_TRUSTED_PROXIES": f"{PROXY}/32",
    "HYBRIDEX_API_RATE_IP_BURST": "1",
    "HYBRIDEX_API_RATE_IP_PER_S": "0.001",
    "HYBRIDEX_API_RATE_CANCEL_BURST": "1",
    "HYBRIDEX_API_RATE_CANCEL_PER_S": "0.001",
    "HYBRIDEX_API_RATE_LIMITER_TIMEOUT_S": "0.2",
}


def test_per_ip_limits_behind_a_proxy_and_with_the_limiter_down() -> None:
    with (
        own_redis() as (redis_proc, redis_port),
        api_stack(PROXY_ENV, {"HYBRIDEX_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}) as stack,
    ):
        b = sys.modules["bench_api"]
        port = stack.api_port
        with client_from(PROXY, port) as proxy, client_from(STRANGER, port) as stranger:

            def via_proxy(client_ip: str, path: str = "/v1/markets") -> httpx.Response:
                # What an ingress appends: whatever the client sent, then the client's address.
                return proxy.get(path, headers={"X-Forwarded-For": f"6.6.6.6, {client_ip}"})

            # Two clients behind the same proxy: a bucket each (burst 1).
            assert via_proxy("203.0.113.1").status_code == 200
            assert via_proxy("203.0.113.2").status_code == 200
            again = via_proxy("203.0.113.1")
            assert again.status_code == 429
            assert again.json()["error"]["code"] == "RATE_LIMITED"
            # The spoofable left part of the header is not the key: the same client, another
            # made-up hop, is still limited.
            spoof = proxy.get("/v1/markets", headers={"X-Forwarded-For": "7.7.7.7, 203.0.113.2"})
            assert spoof.status_code == 429

            # From an untrusted peer the header is ignored: one bucket whatever it claims.
            first = stranger.get("/v1/markets", headers={"X-Forwarded-For": "198.51.100.1"})
            second = stranger.get("/v1/markets", headers={"X-Forwarded-For": "198.51.100.2"})
            assert (first.status_code, second.status_code) == (200, 429)

            # An order placed while the limiter is up, to cancel while it is down.
            order_hash, order_body = signed_order(b, nonce=1)
            placed = proxy.post(
                "/v1/orders", json=order_body, headers={"X-Forwarded-For": "192.0.2.1"}
            )
            assert placed.status_code == 200, placed.text

            # Redis hung (SIGSTOP): nothing waits longer than the limiter's timeout.
            redis_proc.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                read = via_proxy("192.0.2.2")
                assert read.status_code == 200
                _, second_order = signed_order(b, nonce=2)
                refused = proxy.post(
                    "/v1/orders", json=second_order, headers={"X-Forwarded-For": "192.0.2.3"}
                )
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
                assert time.monotonic() - started < 3
            finally:
                redis_proc.send_signal(signal.SIGCONT)

            # Redis down: reads and cancels pass, orders are refused.
            redis_proc.kill()
            redis_proc.wait(10)
            assert via_proxy("192.0.2.4").status_code == 200
            refused = proxy.post(
                "/v1/orders", json=second_order, headers={"X-Forwarded-For": "192.0.2.5"}
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
            cancelled = proxy.request(
                "DELETE", f"/v1/orders/{order_hash}", json=signed_cancel(b, order_hash),
                headers={"X-Forwarded-For": "192.0.2.6"},
            )  # fmt: skip
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"


# ------------------------------------------------------------------------- redaction

KEY = "9aa3d95b3bc440fa88ea12eaa4456161"


class ChainIdNode:
    """A JSON-RPC node on any path (as hosted providers serve `/v3/<key>`): `eth_chainId`."""

    def __init__(self, chain_id: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = orjson.dumps({"jsonrpc": "2.0", "id": request["id"],
                                     "result": hex(chain_id)})  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_api_log_carries_no_rpc_credentials() -> None:
    node = ChainIdNode(31337)
    rpc_url = f"http://127.0.0.1:{node.port}/v3/{KEY}?apikey=QUERYSECRET"
    try:
        with api_stack({}, {"HYBRIDEX_RPC_URL": rpc_url}, log_level="INFO") as stack:
            ready = httpx.get(f"http://127.0.0.1:{stack.api_port}/ready", timeout=10)
            assert ready.json()["checks"]["rpc"] == "ok"  # the node was asked
            log = (stack.workdir / "api.log").read_text(errors="replace")
    finally:
        node.close()
    assert f"127.0.0.1:{node.port}/v3/***?apikey=***" in log  # httpx's request line, redacted
    assert KEY not in log
    assert "QUERYSECRET" not in log
