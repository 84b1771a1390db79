"""`GET /v1/accounts/{address}/fills` follows a fill through settlement, tx hash included."""

from __future__ import annotations

from backend.db.models import Fill as FillRow
from backend.db.models import FillSettlement, SettlementBatch, SettlementTransaction
from backend.db.session import unit_of_work
from backend.domain.types import BatchStatus, FillStatus, Side, TxStatus
from tests.unit.api.harness import ONE, PRICE, TRADERS, Harness

OPERATOR = "0x" + "0e" * 20


def _tx(batch_id: int, nonce: int, tx_hash: bytes, status: TxStatus) -> SettlementTransaction:
    return SettlementTransaction(
        kind="batch", batch_id=batch_id, sender=OPERATOR, nonce=nonce, tx_hash=tx_hash,
        raw_tx=b"\x02", max_fee_per_gas=10**9, max_priority_fee_per_gas=10**9, status=status,
    )  # fmt: skip


def settlement(api: Harness, trader: str) -> dict[str, object]:
    who = TRADERS.index(trader)
    answer = api.client.get(f"/v1/accounts/{trader}/fills", headers=api.as_trader(who))
    fills = answer.json()["fills"]
    assert len(fills) == 1
    state: dict[str, object] = fills[0]["settlement"]
    return state


def test_fill_shows_batch_then_latest_broadcast_then_settling_tx(api: Harness) -> None:
    api.place(api.order(0, Side.SELL, PRICE, ONE))
    api.place(api.order(1, Side.BUY, PRICE, ONE))
    api.flush()
    maker = TRADERS[0]
    assert settlement(api, maker) == {
        "status": "matched", "batchId": None, "txHash": None, "block": None,
        "failureReason": None,
    }  # fmt: skip

    first, bumped, mined = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    with unit_of_work(api.sessions) as s:  # what the settlement worker writes
        fill_id = s.query(FillRow.id).scalar()
        s.add(
            SettlementBatch(batch_id=1, status=BatchStatus.SUBMITTED, fill_count=1, cancel_count=0)
        )
        s.flush()
        s.add(FillSettlement(fill_id=fill_id, status=FillStatus.SUBMITTED, batch_id=1))
        s.add(_tx(1, 7, first, TxStatus.REPLACED))
        s.add(_tx(1, 7, bumped, TxStatus.BROADCAST))
    state = settlement(api, maker)
    assert state["status"] == "submitted"
    assert state["batchId"] == 1
    assert state["txHash"] == "0x" + bumped.hex()  # the replacement, not the stuck one
    assert state["block"] is None

    with unit_of_work(api.sessions) as s:
        batch = s.get(SettlementBatch, 1)
        assert batch is not None
        batch.status, batch.settled_tx_hash, batch.settled_block = BatchStatus.SETTLED, mined, 42
        fs = s.get(FillSettlement, fill_id)
        assert fs is not None
        fs.status = FillStatus.SETTLED
    assert settlement(api, TRADERS[1]) == {
        "status": "settled", "batchId": 1, "txHash": "0x" + mined.hex(), "block": 42,
        "failureReason": None,
    }  # fmt: skip
