"""Units and enums of the exchange (SPEC §2, §3).

Every amount is an integer count of base units; prices are 18-decimal fixed point
(quote base units per one base base-unit × 10**18). Never a float.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NewType

Amount = NewType("Amount", int)
"""Token amount in the token's base units (uint256)."""
Price = NewType("Price", int)
"""Quote base units per base base-unit, × 10**18 (uint256)."""
Wei = NewType("Wei", int)
Address = NewType("Address", str)
"""Checksummed 0x-hex address."""
OrderHash = NewType("OrderHash", bytes)
"""EIP-712 digest of an order (32 bytes)."""
Nonce = NewType("Nonce", int)
"""uint64."""
Seq = NewType("Seq", int)
"""Engine command sequence number."""

PRICE_SCALE = 10**18
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1
ZERO_ADDRESS = Address("0x0000000000000000000000000000000000000000")


class Side(IntEnum):
    BUY = 0
    SELL = 1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2
    POST_ONLY = 3


class MarketState(StrEnum):
    ONLINE = "ONLINE"
    POST_ONLY = "POST_ONLY"
    CANCEL_ONLY = "CANCEL_ONLY"
    HALTED = "HALTED"


class OrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class FillStatus(StrEnum):
    MATCHED = "matched"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


class DepositStatus(StrEnum):
    SEEN = "seen"
    CREDITED = "credited"
    ORPHANED = "orphaned"


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"
    RESERVED = "reserved"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REJECTED = "rejected"


class BatchStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


class TxStatus(StrEnum):
    SIGNED = "signed"
    BROADCAST = "broadcast"
    MINED = "mined"
    CONFIRMED = "confirmed"
    REPLACED = "replaced"
    REVERTED = "reverted"


def mul_div_floor(a: int, b: int, d: int) -> int:
    """floor(a*b/d) on non-negative integers; rounding in the protocol's favour when paying out."""
    return (a * b) // d


def mul_div_ceil(a: int, b: int, d: int) -> int:
    """ceil(a*b/d) on non-negative integers; rounding in the protocol's favour when charging."""
    return -((-a * b) // d)


def quote_amount(amount: int, price: int) -> int:
    """Exact quote of a fill (SPEC §2); callers guarantee divisibility via tick/lot sizes."""
    return (amount * price) // PRICE_SCALE
