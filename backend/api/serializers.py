"""JSON forms of the API's answers (SPEC §2): integers as decimal strings, `side` and
`timeInForce` as numbers, addresses checksummed, hashes 0x-hex. Money is never a float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.db import models
from backend.domain.types import DepositStatus, FillStatus, OrderStatus, Side
from backend.matching.events import Fill


def hex0x(raw: bytes) -> str:
    return "0x" + raw.hex()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def levels(pairs: list[tuple[int, int]]) -> list[list[str]]:
    return [[str(price), str(amount)] for price, amount in pairs]


def order_row(row: models.Order, base_token: str | None, quote_token: str | None) -> dict[str, Any]:
    closed = row.status in (
        OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED
    )  # fmt: skip
    return {
        "orderHash": hex0x(row.order_hash),
        "market": row.market_id,
        "trader": row.trader,
        "baseToken": base_token,
        "quoteToken": quote_token,
        "side": int(row.side),
        "price": str(row.price),
        "amount": str(row.amount),
        "timeInForce": int(row.time_in_force),
        "nonce": str(row.nonce),
        "expiry": str(row.expiry),
        "clientOrderId": row.client_order_id,
        "status": row.status.value,
        "filled": str(row.filled),
        "remaining": "0" if closed else str(row.amount - row.filled),
        "rejectCode": row.reject_code,
        "acceptedSeq": row.accepted_seq,
        "updatedSeq": row.updated_seq,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def taker_fill(fill: Fill) -> dict[str, Any]:
    """A fill of an incoming order, as `POST /v1/orders` reports it."""
    return {
        "makerOrderHash": hex0x(fill.maker_hash),
        "price": str(fill.price),
        "amount": str(fill.amount),
        "quoteAmount": str(fill.quote_amount),
        "fee": str(fill.taker_fee),
        "seq": fill.seq,
        "fillIndex": fill.fill_index,
    }


def taker_fill_row(row: models.Fill) -> dict[str, Any]:
    """The same form from the stored fill (answers to a re-posted order)."""
    return {
        "makerOrderHash": hex0x(row.maker_order_hash),
        "price": str(row.price),
        "amount": str(row.amount),
        "quoteAmount": str(row.quote_amount),
        "fee": str(row.taker_fee),
        "seq": row.seq,
        "fillIndex": row.fill_index,
    }


def trade_row(row: models.Fill) -> dict[str, Any]:
    """A public trade: no trader addresses."""
    return {
        "id": row.id,
        "price": str(row.price),
        "amount": str(row.amount),
        "quoteAmount": str(row.quote_amount),
        "takerSide": int(row.taker_side),
        "seq": row.seq,
        "time": iso(row.created_at),
    }


def account_fill(
    trader: str,
    row: models.Fill,
    settlement: models.FillSettlement | None,
    batch: models.SettlementBatch | None,
    broadcast_tx: bytes | None = None,
) -> dict[str, Any]:
    """One fill from `trader`'s point of view, with where it is in settlement: `txHash` is the
    settling transaction once settled, before that the batch's latest broadcast one."""
    is_maker = row.maker_trader == trader
    side = row.taker_side.opposite if is_maker else row.taker_side
    status = FillStatus.MATCHED if settlement is None else settlement.status
    return {
        "id": row.id,
        "market": row.market_id,
        "orderHash": hex0x(row.maker_order_hash if is_maker else row.taker_order_hash),
        "role": "maker" if is_maker else "taker",
        "side": int(side),
        "price": str(row.price),
        "amount": str(row.amount),
        "quoteAmount": str(row.quote_amount),
        "fee": str(row.maker_fee if is_maker else row.taker_fee),
        "feeAsset": "quote" if side is Side.SELL else "base",
        "seq": row.seq,
        "fillIndex": row.fill_index,
        "time": iso(row.created_at),
        "settlement": {
            "status": status.value,
            "batchId": None if settlement is None else settlement.batch_id,
            "txHash": _fill_tx(batch, broadcast_tx),
            "block": None if batch is None else batch.settled_block,
            "failureReason": None if settlement is None else settlement.failure_reason,
        },
    }


def _fill_tx(batch: models.SettlementBatch | None, broadcast_tx: bytes | None) -> str | None:
    if batch is not None and batch.settled_tx_hash is not None:
        return hex0x(batch.settled_tx_hash)
    return None if broadcast_tx is None else hex0x(broadcast_tx)


def confirmations_left(
    row: models.Deposit, *, indexed_head: int | None, confirmations: int
) -> int | None:
    """Blocks still to come before a `seen` deposit is credited (0: due now); None otherwise.

    The indexer credits a deposit once `indexed_head - blockNumber >= confirmations`."""
    if row.status is not DepositStatus.SEEN:
        return None
    depth = 0 if indexed_head is None else max(0, indexed_head - row.block_number)
    return max(0, confirmations - depth)


def deposit_row(
    row: models.Deposit, *, indexed_head: int | None = None, confirmations: int = 0
) -> dict[str, Any]:
    return {
        "id": row.id,
        "token": row.token,
        "amount": str(row.amount),
        "status": row.status.value,
        "txHash": hex0x(row.tx_hash),
        "blockNumber": row.block_number,
        "logIndex": row.log_index,
        "confirmationsLeft": confirmations_left(
            row, indexed_head=indexed_head, confirmations=confirmations
        ),
        "creditedSeq": row.credited_seq,
        "time": iso(row.created_at),
    }
