"""Engine events: every business outcome of a command, stamped with the command's `seq`.

Consumers (DB persister, settlement, WebSocket fan-out) are idempotent by `seq` plus the event's
position in the command's event list (SPEC §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState, Side, TimeInForce


class CancelReason(StrEnum):
    USER = "user"
    STP = "stp"  # self-trade prevention removed the resting order
    EXPIRED = "expired"
    IOC_REMAINDER = "ioc_remainder"
    FROZEN = "frozen"  # the trader requested an on-chain exit
    CANCEL_ALL = "cancel_all"


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    seq: int
    order_hash: bytes
    trader: str
    market_id: str
    side: Side
    price: int
    amount: int
    time_in_force: TimeInForce
    nonce: int
    expiry: int
    client_order_id: str | None


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """Refused with no state change; the same signed order may be sent again later."""

    seq: int
    order_hash: bytes
    trader: str
    market_id: str
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class OrderDuplicate:
    """This order hash was already accepted: nothing changed, answer with the stored outcome."""

    seq: int
    order_hash: bytes
    trader: str


@dataclass(frozen=True, slots=True)
class Fill:
    """One maker×taker match at the maker's price; `fill_index` counts within the command."""

    seq: int
    fill_index: int
    market_id: str
    maker_hash: bytes
    maker_trader: str
    taker_hash: bytes
    taker_trader: str
    taker_side: Side
    price: int
    amount: int
    quote_amount: int
    maker_fee: int
    taker_fee: int
    maker_remaining: int
    taker_remaining: int


OrderFilled = Fill


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    seq: int
    order_hash: bytes
    trader: str
    market_id: str
    reason: CancelReason
    remaining: int


@dataclass(frozen=True, slots=True)
class CancelRejected:
    seq: int
    order_hash: bytes
    trader: str
    code: ErrorCode


@dataclass(frozen=True, slots=True)
class CancelAllApplied:
    """The bar is recorded even when nothing was open: orders below it are refused later."""

    seq: int
    trader: str
    market_id: str | None
    nonce_below: int
    cancelled: int


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    """Final (total, locked) of one (trader, token) after the command; one per key per command."""

    seq: int
    trader: str
    token: str
    total: int
    locked: int


@dataclass(frozen=True, slots=True)
class WithdrawalReserved:
    seq: int
    withdrawal_id: str
    trader: str
    token: str
    amount: int


@dataclass(frozen=True, slots=True)
class WithdrawalReleased:
    seq: int
    withdrawal_id: str
    trader: str
    token: str
    amount: int


@dataclass(frozen=True, slots=True)
class TraderFrozen:
    seq: int
    trader: str


@dataclass(frozen=True, slots=True)
class MarketAdded:
    seq: int
    market_id: str


@dataclass(frozen=True, slots=True)
class MarketStateChanged:
    seq: int
    market_id: str
    old: MarketState
    new: MarketState
    reason: str


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """Something operators should see and alert on (e.g. the circuit breaker tripped)."""

    seq: int
    market_id: str
    kind: str
    message: str
    reference_price: int
    price: int


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A non-order command refused with no state change (credit, debit, withdrawal, market ops)."""

    seq: int
    command: str
    code: ErrorCode
    message: str


Event = (
    OrderAccepted
    | OrderRejected
    | OrderDuplicate
    | Fill
    | OrderCancelled
    | CancelRejected
    | CancelAllApplied
    | BalanceChanged
    | WithdrawalReserved
    | WithdrawalReleased
    | TraderFrozen
    | MarketAdded
    | MarketStateChanged
    | RiskEvent
    | CommandRejected
)

EVENT_TYPES: tuple[type[Event], ...] = (
    OrderAccepted,
    OrderRejected,
    OrderDuplicate,
    Fill,
    OrderCancelled,
    CancelRejected,
    CancelAllApplied,
    BalanceChanged,
    WithdrawalReserved,
    WithdrawalReleased,
    TraderFrozen,
    MarketAdded,
    MarketStateChanged,
    RiskEvent,
    CommandRejected,
)
"""Stable order: the index is the encoded tag byte, so only ever append."""
