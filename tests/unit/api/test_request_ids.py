"""Request ids and the open-connections gauge: what an operator quotes to find one request's
log lines, and how many WebSocket clients a worker holds now."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import structlog
from starlette.testclient import TestClient

from backend.api.ratelimit import RedisRateLimiter
from backend.chain.anvil import free_port
from backend.domain.types import Side
from tests.unit.api.harness import PRICE, TICK, running_api


def test_every_answer_carries_a_request_id_and_a_caller_id_is_kept_only_when_safe(
    tmp_path: Path,
) -> None:
    with running_api(tmp_path) as h:
        first = h.client.get("/v1/markets").headers["x-request-id"]
        second = h.client.get("/v1/markets").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{16}", first)
        assert first != second
        kept = h.client.get("/v1/markets", headers={"X-Request-Id": "lb-7f3a:42"})
        assert kept.headers["x-request-id"] == "lb-7f3a:42"
        # Not echoed: a header-injection attempt or an id too long to be an id.
        for bad in ("a b", "x" * 65, "<script>"):
            got = h.client.get("/v1/markets", headers={"X-Request-Id": bad})
            assert re.fullmatch(r"[0-9a-f]{16}", got.headers["x-request-id"]), bad
        # Refusals answered by the edge itself carry one too.
        big = h.client.post("/v1/orders", content=b"{}", headers={"content-length": str(10**9)})
        assert big.status_code == 413
        assert re.fullmatch(r"[0-9a-f]{16}", big.headers["x-request-id"])
        order = h.place(h.order(0, Side.BUY, PRICE - TICK))
        assert order.status_code == 200
        assert "x-request-id" in order.headers


def test_log_events_of_a_request_name_its_id(tmp_path: Path) -> None:
    with running_api(tmp_path) as h:
        h.ctx.limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "t:")
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            refused = h.place(h.order(0, Side.BUY, PRICE - TICK))
        assert refused.status_code == 503
        events = [e for e in logs if e["event"] == "rate_limiter_unavailable"]
        assert events
        assert {e["request_id"] for e in events} == {refused.headers["x-request-id"]}


def test_an_unexpected_error_is_a_500_that_names_its_request(tmp_path: Path) -> None:
    with running_api(tmp_path) as h:

        async def broken_book(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("engine client bug")

        h.engine.book = broken_book  # type: ignore[method-assign]
        client = TestClient(h.client.app, raise_server_exceptions=False)
        client.portal = h.client.portal
        with structlog.testing.capture_logs() as logs:
            got = client.get("/v1/markets/WETH-USDC/book", headers={"X-Request-Id": "r-500"})
        assert got.status_code == 500
        assert got.json()["error"]["code"] == "INTERNAL"
        assert got.headers["x-request-id"] == "r-500"
        assert any(e["event"] == "unhandled_error" and e["request_id"] == "r-500" for e in logs)


def _open_gauge(h: Any) -> float:
    for line in h.client.get("/metrics").text.splitlines():
        if line.startswith("hybridex_api_ws_open_connections "):
            return float(line.split()[1])
    raise AssertionError("no hybridex_api_ws_open_connections sample")


def test_open_websocket_connections_gauge_follows_connects_and_closes(tmp_path: Path) -> None:
    with running_api(tmp_path) as h:
        assert _open_gauge(h) == 0
        with h.client.websocket_connect("/v1/ws") as one:
            one.send_json({"op": "ping"})
            one.receive_json()
            with h.client.websocket_connect("/v1/ws") as two:
                two.send_json({"op": "ping"})
                two.receive_json()
                assert _open_gauge(h) == 2
            assert _open_gauge(h) == 1
        assert _open_gauge(h) == 0
