"""Order entry over /v1/ws: place, cancel, cancel-all and batch messages answered in order by
`result` messages carrying the single endpoints' answers; cancel-on-disconnect."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest

from backend.domain.types import Side
from tests.unit.api.harness import MARKET, ONE, PRICE, TICK, Harness


def _book(h: Harness) -> dict[str, list[list[str]]]:
    book: dict[str, list[list[str]]] = h.client.get(f"/v1/markets/{MARKET}/book").json()
    return book


def _results(ws: Any, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        msg = ws.receive_json()
        if msg["type"] in ("result", "error"):
            out.append(msg)
    return out


def _wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def test_orders_over_the_websocket_are_answered_in_order_like_rest(api: Harness) -> None:
    ask = api.order(0, Side.SELL, PRICE, ONE)
    bid = api.order(1, Side.BUY, PRICE, ONE // 2)
    forged = api.order_body(api.order(2, Side.BUY, PRICE - TICK))
    forged["signature"] = api.order_body(api.order(3, Side.BUY, PRICE - TICK))["signature"]
    with api.client.websocket_connect("/v1/ws") as ws:
        # Sent back to back, without waiting: the answers come in the order sent.
        ws.send_json({"op": "place", "id": "a", **api.order_body(ask)})
        ws.send_json({"op": "place", "id": 2, **api.order_body(bid)})
        ws.send_json({"op": "place", "id": "forged", **forged})
        results = _results(ws, 3)
        # A re-post answers from the stored state, which the database holds once the
        # persister has written it (until then REST and the socket answer 202 pending).
        api.flush()
        ws.send_json({"op": "place", "id": "again", **api.order_body(ask)})
        ws.send_json({"op": "cancel", "id": "c", **api.cancel_body(ask)})
        ws.send_json({"op": "cancelAll", "id": "all", **api.cancel_all_body(1, 10**9)})
        results += _results(ws, 3)
    assert [(r["id"], r["status"]) for r in results] == [
        ("a", 200), (2, 200), ("forged", 401), ("again", 200), ("c", 200), ("all", 200),
    ]  # fmt: skip
    bodies = [r["body"] for r in results]
    assert bodies[0]["status"] == "open"
    assert bodies[1]["status"] == "filled"
    assert bodies[1]["fills"][0]["makerOrderHash"] == bodies[0]["orderHash"]
    assert bodies[2]["error"]["code"] == "INVALID_SIGNATURE"
    assert bodies[3]["status"] == "partially_filled"  # its state, as the REST re-post answers
    assert bodies[4]["status"] == "cancelled"
    assert bodies[5]["status"] == "applied"
    assert _book(api)["asks"] == []


def test_a_batch_over_the_websocket_and_bad_order_messages(api: Harness) -> None:
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 4)]
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "batch", "id": 1, "items": [api.order_body(o) for o in orders]})
        ws.send_json({"op": "batch", "id": 2, "items": []})
        ws.send_json({"op": "place", **api.order_body(orders[0])})  # no id
        ws.send_json({"op": "place", "id": {"x": 1}, **api.order_body(orders[0])})
        ws.send_json({"op": "place", "id": 3, "order": "nope", "signature": "0x"})
        ws.send_json({"op": "cancelOnDisconnect", "id": 4, "enabled": "yes"})
        ws.send_json({"op": "teleport", "id": 5})
        ws.send_text("{not json")
        got = _results(ws, 8)
    assert got[0]["id"] == 1
    assert [r["status"] for r in got[0]["body"]["results"]] == [200, 200, 200]
    assert (got[1]["status"], got[1]["body"]["error"]["code"]) == (400, "INVALID_REQUEST")
    assert [(m["type"], m.get("code")) for m in got[2:4]] == [("error", "INVALID_REQUEST")] * 2
    assert "id" in got[2]["message"]
    assert (got[4]["id"], got[4]["status"]) == (3, 400)
    assert (got[5]["id"], got[5]["status"]) == (4, 400)
    assert [(m["type"], m.get("code")) for m in got[6:]] == [("error", "INVALID_REQUEST")] * 2
    assert len(_book(api)["bids"]) == 3  # only the batch's orders


def test_a_disconnect_halfway_through_a_batch_loses_nothing_accepted(api: Harness) -> None:
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 21)]
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "batch", "id": 1, "items": [api.order_body(o) for o in orders]})
    # Gone before any answer: the batch still applies whole, and the orders are on record.
    _wait_for(lambda: len(_book(api)["bids"]) == 20, "the batch applied")
    assert api.place(orders[-1]).json()["status"] == "open"


def test_cancel_on_disconnect_pulls_this_connections_resting_orders(api: Harness) -> None:
    mine = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 4)]
    other = api.order(0, Side.BUY, PRICE - 10 * TICK)
    assert api.place(other).status_code == 200  # placed over REST: not this connection's
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "cancelOnDisconnect", "id": "cod", "enabled": True})
        for i, o in enumerate(mine):
            ws.send_json({"op": "place", "id": i, **api.order_body(o)})
        ws.send_json({"op": "cancel", "id": "c", **api.cancel_body(mine[0])})
        got = _results(ws, 5)
        assert got[0]["body"] == {
            "cancelOnDisconnect": True, "orders": 0, "trader": None, "timeoutS": None,
        }  # fmt: skip
        assert [r["status"] for r in got] == [200] * 5
        assert len(_book(api)["bids"]) == 3  # mine[1], mine[2], other
    _wait_for(lambda: _book(api)["bids"] == [[str(PRICE - 10 * TICK), str(ONE)]], "pulled")
    # Off by default: another connection's orders stay after it closes.
    kept = api.order(0, Side.BUY, PRICE - 11 * TICK)
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "place", "id": 1, **api.order_body(kept)})
        assert _results(ws, 1)[0]["status"] == 200
    time.sleep(0.3)
    assert len(_book(api)["bids"]) == 2


def test_a_client_that_stops_reading_is_dropped_and_what_was_accepted_stands(
    api: Harness,
) -> None:
    from backend.api.routes.ws import SlowClientError, WsSession

    class StuckSocket:
        headers: ClassVar[dict[str, str]] = {}

        async def send_text(self, _data: str) -> None:
            await asyncio.Event().wait()  # the client never reads

    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 6)]

    async def run() -> int:
        ctx = api.ctx
        ctx.settings = api.settings.model_copy(update={"api_ws_send_queue": 2})
        session = WsSession(StuckSocket(), ctx)  # type: ignore[arg-type]
        sender = asyncio.create_task(session.sender())
        sent = 0

        async def place_all() -> None:
            nonlocal sent
            for i, o in enumerate(orders):
                sent += 1
                await session.order_entry("place", {"op": "place", "id": i, **api.order_body(o)})

        try:
            with pytest.raises(SlowClientError):
                await place_all()
        finally:
            sender.cancel()
        return sent

    sent = api.run(run)
    # The answer that did not fit closed the connection; that order was applied all the same
    # (its state is on REST), and nothing after it was read.
    assert sent == 4  # the sender holds one answer, the queue two: the fourth overflows
    assert len(_book(api)["bids"]) == sent
