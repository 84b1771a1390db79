"""The `fills:{address}` WebSocket channel, fed as the settlement worker feeds it."""

from __future__ import annotations

from backend.db.models import Fill as FillRow
from backend.db.models import FillSettlement, SettlementBatch, SettlementTransaction
from backend.db.session import unit_of_work
from backend.domain.types import BatchStatus, FillStatus, Side, TxStatus
from backend.settlement.fill_feed import publish_fill_states
from tests.unit.api.harness import ONE, PRICE, TRADERS, Harness


def test_fill_settlement_states_reach_both_traders_in_sequence(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE))
    taker = api.place(api.order(1, Side.BUY, PRICE, ONE)).json()
    api.flush()
    maker_channel, taker_channel = f"fills:{TRADERS[0]}", f"fills:{TRADERS[1].lower()}"
    # each trader reads their own channel, with their own session
    with (
        api.client.websocket_connect("/v1/ws", headers=api.as_trader(1)) as taker_ws,
        api.client.websocket_connect("/v1/ws", headers=api.as_trader(0)) as maker_ws,
    ):
        taker_ws.send_json({"op": "subscribe", "channel": taker_channel})
        assert taker_ws.receive_json() == {
            "type": "subscribed",
            "channel": f"fills:{TRADERS[1]}",
            "seq": 0,
        }
        maker_ws.send_json({"op": "subscribe", "channel": maker_channel})
        assert maker_ws.receive_json()["seq"] == 0

        tx_hash = b"\x07" * 32
        with unit_of_work(api.sessions) as s:  # the worker's transition, then its publish
            fill_id = s.query(FillRow.id).scalar()
            s.add(
                SettlementBatch(
                    batch_id=1, status=BatchStatus.SUBMITTED, fill_count=1, cancel_count=0
                )
            )
            s.flush()
            s.add(FillSettlement(fill_id=fill_id, status=FillStatus.SUBMITTED, batch_id=1))
            s.add(
                SettlementTransaction(
                    kind="batch", batch_id=1, sender=TRADERS[3], nonce=0, tx_hash=tx_hash,
                    raw_tx=b"\x02", max_fee_per_gas=1, max_priority_fee_per_gas=1,
                    status=TxStatus.BROADCAST,
                )
            )  # fmt: skip
        publish_fill_states(api.feeds, api.sessions, batch_ids=[1])
        updates = {}
        for ws in (taker_ws, maker_ws):
            msg = ws.receive_json()
            assert msg["type"] == "update"
            assert msg["seq"] == 1
            updates[msg["channel"]] = msg["data"]
        taker_update = updates[f"fills:{TRADERS[1]}"]
        assert taker_update["status"] == "submitted"
        assert taker_update["role"] == "taker"
        assert taker_update["orderHash"] == taker["orderHash"]
        assert taker_update["txHash"] == "0x" + tx_hash.hex()
        assert taker_update["batchId"] == 1
        assert updates[maker_channel]["role"] == "maker"

        with unit_of_work(api.sessions) as s:
            batch = s.get(SettlementBatch, 1)
            assert batch is not None
            batch.status, batch.settled_tx_hash, batch.settled_block = (
                BatchStatus.SETTLED,
                tx_hash,
                9,
            )
            fs = s.get(FillSettlement, fill_id)
            assert fs is not None
            fs.status = FillStatus.SETTLED
        publish_fill_states(api.feeds, api.sessions, fill_ids=[fill_id])
        seen = [taker_ws.receive_json(), maker_ws.receive_json()]
        assert {m["seq"] for m in seen} == {2}
        assert all(m["data"]["status"] == "settled" and m["data"]["block"] == 9 for m in seen)


def test_a_fills_channel_needs_an_address(api: Harness) -> None:
    with api.client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"op": "subscribe", "channel": "fills:nobody"})
        answer = ws.receive_json()
        assert answer["type"] == "error"
        assert answer["code"] == "INVALID_REQUEST"
