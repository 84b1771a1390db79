"""Order entry over /v1/ws: place, cancel, cancel-all and batch messages answered in order by
`result` messages carrying the single endpoints' answers; cancel-on-disconnect."""

from __future__ import annotations

import asyncio
import threading
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
        answerer = asyncio.create_task(session.answerer())
        sent = 0

        async def place_all() -> None:
            nonlocal sent
            for i, o in enumerate(orders):
                if answerer.done():  # the connection is closed: nothing more is read
                    return
                sent += 1
                await session.order_entry("place", {"op": "place", "id": i, **api.order_body(o)})
                await session.drain()

        try:
            await place_all()
            with pytest.raises(SlowClientError):
                await answerer
        finally:
            sender.cancel()
        return sent

    sent = api.run(run)
    # The answer that did not fit closed the connection; that order was applied all the same
    # (its state is on REST), and nothing after it was read.
    assert sent == 4  # the sender holds one answer, the queue two: the fourth overflows
    assert len(_book(api)["bids"]) == sent


class HeldAnswers:
    """The real engine, its answers held until the test releases them: a slow engine. Each
    submission is queued on the engine at once (in the order made), only the answer waits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.submitted = 0
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submit(self, command: Any, *, timeout: float, intake: Any = None) -> Any:
        outcome = asyncio.ensure_future(self.inner.submit(command, timeout=timeout, intake=intake))
        self.submitted += 1
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        return await outcome


def _hold_answers(api: Harness, **settings: Any) -> HeldAnswers:
    held = HeldAnswers(api.ctx.engine)
    api.ctx.engine = held
    api.ctx.settings = api.settings.model_copy(update=settings)
    return held


def test_order_messages_are_pipelined_within_the_bound_and_answered_in_order(
    api: Harness,
) -> None:
    held = _hold_answers(api, api_ws_max_inflight=3)
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 6)]
    with api.client.websocket_connect("/v1/ws") as ws:
        for i, o in enumerate(orders):
            ws.send_json({"op": "place", "id": i, **api.order_body(o)})
        ws.send_json({"op": "ping"})
        # Three in flight at once, none answered yet; the fourth is not read before one is.
        _wait_for(lambda: held.submitted == 3, "three orders in flight")
        time.sleep(0.3)
        assert held.submitted == 3
        held.release.set()
        got = [ws.receive_json() for _ in range(6)]
    assert [(m["type"], m.get("id"), m.get("status")) for m in got] == [
        *[("result", i, 200) for i in range(5)],
        ("pong", None, None),  # answered after the order messages before it
    ]
    assert [m["body"]["orderHash"] for m in got[:5]] == [
        api.place(o).json()["orderHash"] for o in orders
    ]
    assert len(_book(api)["bids"]) == 5


def test_pipelined_messages_reach_the_engine_in_the_order_sent(api: Harness) -> None:
    ask = api.order(0, Side.SELL, PRICE, ONE)
    bid = api.order(1, Side.BUY, PRICE, ONE)
    with api.client.websocket_connect("/v1/ws") as ws:
        # A cancel right behind its order, and a taker right behind the maker: each applies
        # after the message before it, though neither waited for the other's answer.
        ws.send_json({"op": "place", "id": 1, **api.order_body(ask)})
        ws.send_json({"op": "place", "id": 2, **api.order_body(bid)})
        rest = api.order(0, Side.BUY, PRICE - TICK)
        ws.send_json({"op": "place", "id": 3, **api.order_body(rest)})
        ws.send_json({"op": "cancel", "id": 4, **api.cancel_body(rest)})
        got = _results(ws, 4)
    assert [r["body"]["status"] for r in got] == ["open", "filled", "open", "cancelled"]
    book = _book(api)
    assert (book["bids"], book["asks"]) == ([], [])


def test_a_disconnect_with_messages_in_flight_loses_nothing_accepted(api: Harness) -> None:
    held = _hold_answers(api)
    orders = [api.order(0, Side.BUY, PRICE - i * TICK) for i in range(1, 6)]
    with api.client.websocket_connect("/v1/ws") as ws:
        for i, o in enumerate(orders):
            ws.send_json({"op": "place", "id": i, **api.order_body(o)})
        _wait_for(lambda: held.submitted == 5, "every order in flight")
    # Gone before any answer: every order it sent is applied.
    held.release.set()
    _wait_for(lambda: len(_book(api)["bids"]) == 5, "the orders applied")
