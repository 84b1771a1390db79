"""docs/asyncapi.yaml against the server: one scripted session makes the server send every
message the document lists, and each must validate against exactly one of them. (Every WS
test's messages are checked as well: the harness's `CheckedClient`.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.api.sessions import HEADER
from backend.db.models import Fill as FillRow
from backend.db.models import FillSettlement, SettlementBatch
from backend.db.session import unit_of_work
from backend.domain.types import BatchStatus, FillStatus, Side
from backend.engine.feed_memory import MemoryFeedStore
from backend.settlement.fill_feed import publish_fill_states
from tests.unit.api.harness import MARKET, ONE, PRICE, TICK, TRADERS, Harness, running_api
from tests.unit.api.wscontract import WsContract, WsContractError, resolve


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Harness]:
    # Short retention (a resync) and a fast heartbeat (something always arrives).
    with running_api(
        tmp_path, feeds=MemoryFeedStore(retention=2), api_ws_heartbeat_s=0.2,
        api_ws_ticker_interval_s=0.1,
    ) as h:  # fmt: skip
        yield h


def test_the_document_is_consistent() -> None:
    contract = WsContract()
    doc = contract.doc
    assert doc["asyncapi"].startswith("3.")
    listed = set(doc["channels"]["ws"]["messages"])
    used = {
        ref["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values() for ref in op["messages"]
    }
    assert used == listed  # every channel message is sent or received by someone
    for ref in doc["channels"]["ws"]["messages"].values():
        assert "payload" in resolve(doc, ref["$ref"])
    # Each message names itself: a server message by its `type`, a client message by its `op`.
    for name, validator in (*contract.server.items(), *contract.client.items()):
        props = validator.schema["properties"]
        assert "const" in (props.get("type") or props["op"]), name


def test_client_messages_are_described_and_refused_ones_are_not() -> None:
    contract = WsContract()
    assert contract.check_client({"op": "subscribe", "channel": f"book:{MARKET}"}) == "subscribe"
    assert contract.check_client({"op": "subscribe", "channel": "trades:X", "fromSeq": 3})
    assert contract.check_client({"op": "ping"}) == "ping"
    assert contract.check_client({"op": "auth", "session": "t"}) == "auth"
    place = {"op": "place", "id": 7, "order": {}, "signature": "0x"}
    assert contract.check_client(place) == "place"
    assert contract.check_client({"op": "cancelOnDisconnect", "id": "x", "enabled": True})
    assert contract.check_client({"op": "batch", "id": "b", "items": [place]}) == "batch"
    for bad in ({"op": "subscribe"}, {"op": "dance"}, {"op": "subscribe", "channel": "x:y"},
                {"op": "place", "order": {}, "signature": "0x"},  # no id
                {"op": "batch", "id": 1, "items": []}):  # fmt: skip
        with pytest.raises(WsContractError):
            contract.check_client(bad)


def test_the_server_sends_every_message_the_document_lists(api: Harness) -> None:
    contract = WsContract()
    got: list[dict[str, Any]] = []

    def read_until(ws: Any, done: Callable[[], bool], limit: int = 200) -> None:
        for _ in range(limit):
            if done():
                return
            message = ws.receive_json()
            got.append(message)
            contract.check_server(message)
        raise AssertionError(f"only {sorted(contract.seen)} after {limit} messages")

    def has(*names: str) -> Callable[[], bool]:
        return lambda: set(names) <= contract.seen

    me, other = TRADERS[0], TRADERS[1]
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "ping"})
        read_until(ws, has("pong"))
        ws.send_json({"op": "auth", "session": api.as_trader(0)[HEADER]})
        read_until(ws, has("authenticated"))
        for channel in (f"book:{MARKET}", f"trades:{MARKET}", f"ticker:{MARKET}",
                        f"orders:{me}", f"balances:{me}", f"fills:{me}"):  # fmt: skip
            ws.send_json({"op": "subscribe", "channel": channel})
        read_until(ws, has("subscribed", "snapshot", "ticker"))

        resting = api.order(0, Side.SELL, PRICE, ONE)
        assert api.place(resting).status_code == 200
        assert api.place(api.order(1, Side.BUY, PRICE, ONE // 2)).status_code == 200
        read_until(ws, has("bookUpdate", "tradeUpdate", "orderUpdate", "balanceUpdate"))
        assert api.cancel(resting).status_code == 200

        def events() -> set[str]:
            mine = [m for m in got if m.get("channel") == f"orders:{me}" and "data" in m]
            return {m["data"]["event"] for m in mine}

        read_until(ws, lambda: {"accepted", "fill", "cancelled"} <= events())
        # An order the engine refuses reaches the trader's channel too.
        too_big = api.order(0, Side.SELL, PRICE + TICK, 10**6 * ONE)
        assert api.place(too_big).status_code != 200
        read_until(ws, lambda: "rejected" in events())

        api.flush()
        with unit_of_work(api.sessions) as s:  # the settlement worker's transition
            fill_id = s.query(FillRow.id).scalar()
            s.add(SettlementBatch(batch_id=1, status=BatchStatus.SUBMITTED, fill_count=1,
                                  cancel_count=0))  # fmt: skip
            s.flush()
            s.add(FillSettlement(fill_id=fill_id, status=FillStatus.SUBMITTED, batch_id=1))
        publish_fill_states(api.feeds, api.sessions, batch_ids=[1])
        read_until(ws, has("fillUpdate"))

        # Retention is 2 messages: resuming the orders channel from 0 is a resync.
        ws.send_json({"op": "subscribe", "channel": f"orders:{me}", "fromSeq": 0})
        read_until(ws, has("resync"))
        time.sleep(0.3)
        read_until(ws, has("heartbeat"))
        ws.send_json(
            {"op": "place", "id": "q-1", **api.order_body(api.order(0, Side.BUY, PRICE - 3 * TICK))}
        )
        read_until(ws, has("result"))
        ws.send_json({"op": "subscribe", "channel": f"orders:{other}"})  # not my session
        ws.send_json({"op": "unsubscribe", "channel": f"book:{MARKET}"})
        read_until(ws, has("error", "unsubscribed"))
    assert contract.seen == set(contract.server)
