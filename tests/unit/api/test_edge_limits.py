"""The edge's limits in one process: the limiter's store down (a Redis port nobody listens
on), WebSocket message and size limits, the book snapshot cache, the proxy ranges setting.
The same limits against the real `hybridex api` process: tests/integration/api."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from backend.api.ratelimit import RedisRateLimiter
from backend.api.ws_limits import ConnectionCounter, MessageBucket
from backend.chain.anvil import free_port
from backend.domain.types import Side
from tests.unit.api.harness import MARKET, PRICE, TICK, running_api, settings


def test_limiter_down_reads_and_cancels_pass_orders_are_refused(tmp_path: Path) -> None:
    with running_api(tmp_path) as h:
        order = h.order(0, Side.BUY, PRICE - TICK)
        assert h.place(order).status_code == 200
        # From here on every bucket lives on a Redis that is not there.
        h.ctx.limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "t:")
        assert h.client.get("/v1/markets").status_code == 200
        refused = h.place(h.order(0, Side.BUY, PRICE - 2 * TICK))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
        assert refused.headers["retry-after"] == "1"
        cancelled = h.cancel(order)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert h.cancel_all(0, 10**9).status_code == 200
        text = h.client.get("/metrics").text
        assert 'hybridex_api_rate_limiter_failures_total{outcome="closed"}' in text
        assert 'hybridex_api_rate_limiter_failures_total{outcome="open"}' in text


def close_of(ws: Any) -> tuple[int, str]:
    for _ in range(100):
        try:
            ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code, closed.reason
    raise AssertionError("the server did not close the connection")


def test_websocket_message_flood_is_closed_and_costs_one_book_request(tmp_path: Path) -> None:
    with running_api(tmp_path, api_ws_msg_burst=2, api_ws_msg_per_s=0.01,
                     api_ws_book_cache_s=60) as h:  # fmt: skip
        books = 0
        real_book = h.engine.book

        async def counting_book(*args: Any, **kwargs: Any) -> Any:
            nonlocal books
            books += 1
            return await real_book(*args, **kwargs)

        h.engine.book = counting_book  # type: ignore[method-assign]
        with h.client.websocket_connect("/v1/ws") as ws:
            ws.send_json({"op": "subscribe", "channel": f"book:{MARKET}"})
            ws.send_json({"op": "unsubscribe", "channel": f"book:{MARKET}"})
            for _ in range(50):
                ws.send_json({"op": "subscribe", "channel": f"book:{MARKET}"})
            assert close_of(ws) == (1008, "RATE_LIMITED")
        with h.client.websocket_connect("/v1/ws") as ws:  # served from the cache
            ws.send_json({"op": "subscribe", "channel": f"book:{MARKET}"})
            assert [ws.receive_json()["type"] for _ in range(2)] == ["subscribed", "snapshot"]
        assert books == 1


def test_websocket_oversized_message_is_closed(tmp_path: Path) -> None:
    with (
        running_api(tmp_path, api_ws_max_message_bytes=1024) as h,
        h.client.websocket_connect("/v1/ws") as ws,
    ):
        ws.send_text('{"op": "ping", "pad": "' + "é" * 600 + '"}')  # 1200+ bytes
        assert close_of(ws) == (1009, "PAYLOAD_TOO_LARGE")


def test_websocket_binary_frame_is_closed_not_a_server_error(tmp_path: Path) -> None:
    with running_api(tmp_path) as h, h.client.websocket_connect("/v1/ws") as ws:
        ws.send_bytes(b'{"op": "ping"}')
        assert close_of(ws) == (1003, "INVALID_REQUEST")


def test_websocket_connections_per_ip_are_limited(tmp_path: Path) -> None:
    with running_api(tmp_path, api_ws_max_connections_per_ip=2) as h:
        with h.client.websocket_connect("/v1/ws"), h.client.websocket_connect("/v1/ws"):
            with pytest.raises(WebSocketDenialResponse) as refused:
                h.client.websocket_connect("/v1/ws").__enter__()
            assert refused.value.status_code == 429
            assert refused.value.json()["error"]["code"] == "TOO_MANY_CONNECTIONS"
        with h.client.websocket_connect("/v1/ws") as ws:
            ws.send_json({"op": "ping"})
            assert ws.receive_json()["type"] == "pong"


def test_connection_counter_and_message_bucket() -> None:
    counter = ConnectionCounter(2)
    assert [counter.acquire("a"), counter.acquire("a"), counter.acquire("a")] == [1, 1, 0]
    assert counter.acquire("b")
    counter.release("a")
    assert counter.open("a") == 1
    assert counter.acquire("a")
    now = [0.0]
    bucket = MessageBucket(per_s=2.0, burst=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take(), bucket.take()] == [True, True, False]
    now[0] = 0.5  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]


def test_trusted_proxies_setting() -> None:
    s = settings(api_trusted_proxies=" 10.0.0.0/8, 192.168.1.7 ,::1/128,")
    assert s.trusted_proxies() == ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]
    assert settings(api_trusted_proxies="").trusted_proxies() == []
    with pytest.raises(ValidationError, match="HYBRIDEX_API_TRUSTED_PROXIES: 'ingress'"):
        settings(api_trusted_proxies="10.0.0.0/8,ingress")
