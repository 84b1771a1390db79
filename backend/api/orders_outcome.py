"""The answer of `POST /v1/orders` and `DELETE /v1/orders/{hash}` from the engine's events.

A re-posted order (`OrderDuplicate`) is answered from its stored state in the same form, with
the fills it made when it arrived: same hash, same answer, never a second order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.api import queries
from backend.api.serializers import hex0x, taker_fill, taker_fill_row
from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import OrderStatus
from backend.engine.client import Outcome
from backend.matching.events import (
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderDuplicate,
    OrderRejected,
)

_LIVE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


def place_answer(
    order_hash: bytes, amount: int, market_id: str, outcome: Outcome
) -> dict[str, Any] | None:
    """The answer to a placed order; None for a duplicate; raises the engine's refusal."""
    accepted = False
    cancelled = False
    fills: list[Fill] = []
    for e in outcome.events:
        t = type(e)
        if t is Fill:
            assert isinstance(e, Fill)
            if e.taker_hash == order_hash:
                fills.append(e)
        elif t is OrderAccepted:
            assert isinstance(e, OrderAccepted)
            accepted = accepted or e.order_hash == order_hash
        elif t is OrderCancelled:
            assert isinstance(e, OrderCancelled)
            cancelled = cancelled or e.order_hash == order_hash
        elif t is OrderRejected:
            assert isinstance(e, OrderRejected)
            if e.order_hash == order_hash:
                raise DexError(e.code, e.message)
        elif t is OrderDuplicate:
            return None
    if not accepted:
        raise DexError(ErrorCode.INVARIANT_VIOLATION, "engine answered without a decision")
    filled = sum(f.amount for f in fills)
    if cancelled:
        status = OrderStatus.CANCELLED
    elif filled == amount:
        status = OrderStatus.FILLED
    elif filled:
        status = OrderStatus.PARTIALLY_FILLED
    else:
        status = OrderStatus.OPEN
    return {
        "orderHash": hex0x(order_hash),
        "status": status.value,
        "market": market_id,
        "filled": str(filled),
        "remaining": str(amount - filled) if status in _LIVE else "0",
        "seq": outcome.seq,
        "fills": [taker_fill(f) for f in fills],
    }


def stored_answer(session: Session, order_hash: bytes) -> dict[str, Any] | None:
    """The same form from the `orders` / `fills` tables (status as it is now)."""
    row = queries.order_by_hash(session, order_hash)
    if row is None or row.status is OrderStatus.REJECTED:
        return None
    fills = queries.taker_fills_of(session, order_hash, row.accepted_seq)
    live = row.status in _LIVE
    return {
        "orderHash": hex0x(order_hash),
        "status": row.status.value,
        "market": row.market_id,
        "filled": str(row.filled),
        "remaining": str(row.amount - row.filled) if live else "0",
        "seq": row.accepted_seq,
        "fills": [taker_fill_row(f) for f in fills],
    }


def cancel_answer(order_hash: bytes, outcome: Outcome) -> dict[str, Any]:
    for e in outcome.events:
        if isinstance(e, OrderCancelled) and e.order_hash == order_hash:
            return {
                "orderHash": hex0x(order_hash),
                "status": "cancelled",
                "remaining": str(e.remaining),
                "seq": outcome.seq,
            }
        if isinstance(e, CancelRejected) and e.order_hash == order_hash:
            raise DexError(e.code, f"order {hex0x(order_hash)} cannot be cancelled: {e.code.name}")
    raise DexError(ErrorCode.INVARIANT_VIOLATION, "engine answered a cancel without a decision")
