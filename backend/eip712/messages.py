"""The four signed messages (SPEC §3) as frozen dataclasses, and their EIP-712 type definitions.

Field names and Solidity types are part of the public interface: wallets sign exactly these.
`EIP712_TYPES` is what `GET /v1/info` publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from backend.domain.types import Side, TimeInForce

MAX_FEE_BPS: Final = 100
"""The contract's `MAX_FEE_BPS`: no fee above 1 % of what the paying side receives."""

EIP712_DOMAIN_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)

ORDER_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("baseToken", "address"),
    ("quoteToken", "address"),
    ("side", "uint8"),
    ("price", "uint256"),
    ("amount", "uint256"),
    ("timeInForce", "uint8"),
    ("nonce", "uint64"),
    ("expiry", "uint64"),
    ("maxFeeBps", "uint16"),
)
CANCEL_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("orderHash", "bytes32"),
)
CANCEL_ALL_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("baseToken", "address"),
    ("quoteToken", "address"),
    ("nonceBelow", "uint64"),
)
WITHDRAWAL_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("token", "address"),
    ("amount", "uint256"),
    ("nonce", "uint64"),
    ("expiry", "uint64"),
)

SCHEDULE_CANCEL_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("time", "uint64"),
    ("nonce", "uint64"),
)

SESSION_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("trader", "address"),
    ("scope", "string"),
    ("expiry", "uint64"),
)

MESSAGE_FIELDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Order": ORDER_FIELDS,
    "Cancel": CANCEL_FIELDS,
    "CancelAll": CANCEL_ALL_FIELDS,
    "Withdrawal": WITHDRAWAL_FIELDS,
    "ScheduleCancel": SCHEDULE_CANCEL_FIELDS,
    "Session": SESSION_FIELDS,
}


def encode_type(primary_type: str) -> str:
    """EIP-712 `encodeType`, e.g. ``Cancel(address trader,bytes32 orderHash)``."""
    fields = MESSAGE_FIELDS[primary_type]
    return f"{primary_type}(" + ",".join(f"{t} {n}" for n, t in fields) + ")"


def _type_list(fields: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": n, "type": t} for n, t in fields]


EIP712_TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "EIP712Domain": _type_list(EIP712_DOMAIN_FIELDS),
    **{name: _type_list(fields) for name, fields in MESSAGE_FIELDS.items()},
}
"""The type definitions `GET /v1/info` publishes (the domain type included)."""


@dataclass(frozen=True, slots=True)
class Order:
    """A limit order as signed (SPEC §3); its EIP-712 digest is the order hash."""

    trader: str
    baseToken: str  # noqa: N815 - EIP-712 field names are the public interface
    quoteToken: str  # noqa: N815
    side: Side
    price: int
    amount: int
    timeInForce: TimeInForce  # noqa: N815
    nonce: int
    expiry: int
    maxFeeBps: int = MAX_FEE_BPS  # noqa: N815
    """The most this order pays on any fill, in bps of what it receives (the contract refuses
    more); the default accepts anything up to the protocol cap."""

    PRIMARY_TYPE = "Order"


@dataclass(frozen=True, slots=True)
class Cancel:
    """A trader's cancellation of one order, by its order hash (32 bytes)."""

    trader: str
    orderHash: bytes  # noqa: N815

    PRIMARY_TYPE = "Cancel"


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancels the trader's orders below `nonceBelow` in one market (zero tokens: every market)."""

    trader: str
    baseToken: str  # noqa: N815
    quoteToken: str  # noqa: N815
    nonceBelow: int  # noqa: N815

    PRIMARY_TYPE = "CancelAll"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A trader's withdrawal request, executed on chain by the operator."""

    trader: str
    token: str
    amount: int
    nonce: int
    expiry: int
    """Unix seconds: the contract refuses the withdrawal after it."""

    PRIMARY_TYPE = "Withdrawal"


@dataclass(frozen=True, slots=True)
class ScheduleCancel:
    """A dead-man's switch: cancel all the trader's open orders at `time` (unix seconds; 0
    clears it) unless a later ScheduleCancel (a higher `nonce`) replaces it. Off chain only:
    the engine enforces it, the contract never sees it."""

    trader: str
    time: int
    nonce: int

    PRIMARY_TYPE = "ScheduleCancel"


@dataclass(frozen=True, slots=True)
class Session:
    """A trader's consent to read their private data (open orders, fills, balances) until
    `expiry` (unix seconds); off chain only, never verified by the contract. `scope` names
    what it grants: "read" is the only scope today."""

    trader: str
    scope: str
    expiry: int

    PRIMARY_TYPE = "Session"


Message = Order | Cancel | CancelAll | Withdrawal | ScheduleCancel | Session


def message_fields(msg: Message) -> dict[str, int | str | bytes]:
    """The message as an EIP-712 `message` dict (ints for enums, bytes for bytes32)."""
    out: dict[str, int | str | bytes] = {}
    for name, _type in MESSAGE_FIELDS[msg.PRIMARY_TYPE]:
        value = getattr(msg, name)
        out[name] = int(value) if isinstance(value, int) else value
    return out
