"""WebSocket: subscribe → snapshot then consecutive deltas; resume from a seq; gap → resync;
heartbeats; a client that does not read is dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from backend.domain.types import Side
from backend.engine.feed_memory import MemoryFeedStore
from tests.unit.api.harness import MARKET, ONE, PRICE, TICK, TRADERS, Harness, running_api


def recv_until(ws: Any, kind: str, limit: int = 50) -> list[dict[str, Any]]:
    out = []
    for _ in range(limit):
        msg = ws.receive_json()
        out.append(msg)
        if msg["type"] == kind:
            return out
    raise AssertionError(f"no {kind} in {out}")


def test_book_snapshot_then_sequenced_deltas(api: Harness) -> None:
    api.place(api.order(0, Side.BUY, PRICE - TICK, ONE))
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "subscribe", "channel": f"book:{MARKET}"})
        sub = ws.receive_json()
        assert sub["type"] == "subscribed"
        snap = ws.receive_json()
        assert snap["type"] == "snapshot"
        assert snap["bids"] == [[str(PRICE - TICK), str(ONE)]]
        seq = snap["seq"]
        api.place(api.order(1, Side.SELL, PRICE, ONE))
        api.place(api.order(2, Side.BUY, PRICE, ONE // 2))
        deltas = [ws.receive_json() for _ in range(2)]
        assert [(d["type"], d["seq"]) for d in deltas] == [("update", seq + 1), ("update", seq + 2)]
        # the ask rests, then half of it is taken: each delta is the level's new total
        assert [(d["data"]["side"], d["data"]["price"], d["data"]["amount"]) for d in deltas] == [
            ("sell", str(PRICE), str(ONE)),
            ("sell", str(PRICE), str(ONE // 2)),
        ]
        ws.send_json({"op": "ping"})
        assert recv_until(ws, "pong")[-1]["type"] == "pong"


def test_resume_from_a_seq_replays_what_was_missed(api: Harness) -> None:
    channel = f"orders:{TRADERS[0]}"
    api.place(api.order(0, Side.BUY, PRICE - TICK))
    api.place(api.order(0, Side.BUY, PRICE - 2 * TICK))
    api.place(api.order(0, Side.BUY, PRICE - 3 * TICK))
    with api.client.websocket_connect("/v1/ws", headers=api.as_trader(0)) as ws:
        ws.send_json({"op": "subscribe", "channel": channel.lower(), "fromSeq": 1})
        sub = ws.receive_json()
        assert (sub["type"], sub["channel"], sub["seq"]) == ("subscribed", channel, 3)
        updates = [ws.receive_json() for _ in range(2)]
        assert [(u["type"], u["seq"]) for u in updates] == [("update", 2), ("update", 3)]
        assert updates[0]["data"]["event"] == "accepted"
        api.place(api.order(0, Side.BUY, PRICE - 4 * TICK))
        nxt = ws.receive_json()
        assert (nxt["type"], nxt["seq"]) == ("update", 4)
        ws.send_json({"op": "unsubscribe", "channel": channel})
        assert recv_until(ws, "unsubscribed")[-1]["channel"] == channel


@pytest.fixture
def short_retention(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, feeds=MemoryFeedStore(retention=2), api_ws_heartbeat_s=0.2) as h:
        yield h


def test_seq_beyond_retention_gets_resync(short_retention: Harness) -> None:
    h = short_retention
    for i in range(5):
        h.place(h.order(0, Side.BUY, PRICE - (i + 1) * TICK))
    h.wait_feed(f"orders:{TRADERS[0]}", 5)
    with h.client.websocket_connect("/v1/ws", headers=h.as_trader(0)) as ws:
        ws.send_json({"op": "subscribe", "channel": f"orders:{TRADERS[0]}", "fromSeq": 1})
        assert ws.receive_json()["type"] == "subscribed"
        resync = ws.receive_json()
        assert (resync["type"], resync["seq"]) == ("resync", 5)
        ws.send_json({"op": "subscribe", "channel": f"book:{MARKET}", "fromSeq": 1})
        msgs = recv_until(ws, "snapshot")
        assert msgs[-1]["resync"] is True
        assert len(msgs[-1]["bids"]) == 5
        beat = recv_until(ws, "heartbeat")[-1]
        assert beat["seqs"][f"orders:{TRADERS[0]}"] == 5


def test_bad_subscriptions_answer_errors_and_keep_the_socket(api: Harness) -> None:
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["code"] == "INVALID_REQUEST"
        ws.send_json({"op": "subscribe", "channel": "book:NOPE-USDC"})
        assert ws.receive_json()["code"] == "UNKNOWN_MARKET"
        ws.send_json({"op": "subscribe", "channel": "orders:0x12"})
        assert ws.receive_json()["code"] == "INVALID_REQUEST"
        ws.send_json({"op": "subscribe", "channel": f"trades:{MARKET}", "fromSeq": -1})
        assert ws.receive_json()["code"] == "INVALID_REQUEST"
        ws.send_json({"op": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_a_client_that_does_not_read_is_dropped(api: Harness) -> None:
    import asyncio

    from backend.api.routes.ws import SlowClientError, WsSession

    class StuckSocket:
        headers: ClassVar[dict[str, str]] = {}

        async def send_text(self, _data: str) -> None:
            await asyncio.Event().wait()  # the client never reads

    async def run() -> None:
        ctx = api.ctx
        ctx.settings = api.settings.model_copy(update={"api_ws_send_queue": 3})
        session = WsSession(StuckSocket(), ctx)  # type: ignore[arg-type]
        sender = asyncio.create_task(session.sender())

        async def flood() -> None:
            for _ in range(10):
                session.heartbeat()
                await asyncio.sleep(0)

        try:
            with pytest.raises(SlowClientError):
                await flood()
        finally:
            sender.cancel()

    api.run(run)


@pytest.fixture
def fast_tickers(tmp_path: Path) -> Iterator[Harness]:
    with running_api(tmp_path, api_ws_ticker_interval_s=0.05) as h:
        yield h


def test_ticker_channel_sends_the_ticker_then_each_change(fast_tickers: Harness) -> None:
    h = fast_tickers
    h.place(h.order(0, Side.SELL, PRICE, ONE))
    h.flush()
    with h.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "subscribe", "channel": f"ticker:{MARKET}"})
        sub = ws.receive_json()
        assert (sub["type"], sub["channel"]) == ("subscribed", f"ticker:{MARKET}")
        first = ws.receive_json()
        assert first["type"] == "ticker"
        assert first["data"] == h.client.get(f"/v1/markets/{MARKET}/ticker").json()
        assert (first["data"]["bestAsk"], first["data"]["lastPrice"]) == (str(PRICE), None)
        # Nothing changes: no ticker message, only the answer to a ping after a few intervals.
        time.sleep(0.3)
        ws.send_json({"op": "ping"})
        assert [m["type"] for m in recv_until(ws, "pong")] == ["pong"]
        h.place(h.order(1, Side.BUY, PRICE, ONE // 4))  # a trade
        h.flush()
        nxt = recv_until(ws, "ticker")[-1]["data"]
        assert (nxt["lastPrice"], nxt["trades24h"], nxt["volume24h"]) == (
            str(PRICE),
            1,
            str(ONE // 4),
        )
        assert nxt == h.client.get(f"/v1/markets/{MARKET}/ticker").json()
        ws.send_json({"op": "unsubscribe", "channel": f"ticker:{MARKET}"})
        assert recv_until(ws, "unsubscribed")[-1]["channel"] == f"ticker:{MARKET}"
        h.place(h.order(1, Side.BUY, PRICE, ONE // 4))
        h.flush()
        time.sleep(0.3)
        ws.send_json({"op": "ping"})
        assert [m["type"] for m in recv_until(ws, "pong")] == ["pong"]


def test_ticker_of_an_unknown_market_is_refused(api: Harness) -> None:
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "subscribe", "channel": "ticker:NOPE-USDC"})
        err = ws.receive_json()
        assert err["type"] == "error"
        assert err["code"] == "UNKNOWN_MARKET"
