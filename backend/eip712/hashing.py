"""Fast EIP-712 digests (hot path: cached type hashes and domain separator, hand-written
encoding, one keccak per level) and the typed-data dict that wallets sign.

Inputs are trusted here: parse and range-check requests strictly *before* hashing
(CONVENTIONS "Parse strictly, then encode"). The generic encoder of eth_account is used only
by `typed_data` consumers (wallets, tests), never on the hot path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from eth_hash.auto import keccak
from eth_utils.address import to_canonical_address

from backend.eip712.domain import Domain
from backend.eip712.messages import (
    EIP712_TYPES,
    Cancel,
    CancelAll,
    Message,
    Order,
    ScheduleCancel,
    Session,
    Withdrawal,
    encode_type,
    message_fields,
)

ORDER_TYPEHASH: Final = keccak(encode_type("Order").encode())
CANCEL_TYPEHASH: Final = keccak(encode_type("Cancel").encode())
CANCEL_ALL_TYPEHASH: Final = keccak(encode_type("CancelAll").encode())
WITHDRAWAL_TYPEHASH: Final = keccak(encode_type("Withdrawal").encode())
SCHEDULE_CANCEL_TYPEHASH: Final = keccak(encode_type("ScheduleCancel").encode())
SESSION_TYPEHASH: Final = keccak(encode_type("Session").encode())

_ZERO12: Final = b"\0" * 12


@lru_cache(maxsize=1 << 16)
def _address(value: str) -> bytes:
    # eth_utils' validating conversion costs ~5 µs; traders and tokens repeat (cf. parsing).
    return _ZERO12 + to_canonical_address(value)


def _uint(value: int) -> bytes:
    return value.to_bytes(32, "big")


def struct_hash(msg: Message) -> bytes:
    """EIP-712 `hashStruct(msg)`."""
    if isinstance(msg, Order):
        return keccak(
            b"".join(
                (
                    ORDER_TYPEHASH,
                    _address(msg.trader),
                    _address(msg.baseToken),
                    _address(msg.quoteToken),
                    _uint(int(msg.side)),
                    _uint(msg.price),
                    _uint(msg.amount),
                    _uint(int(msg.timeInForce)),
                    _uint(msg.nonce),
                    _uint(msg.expiry),
                    _uint(msg.maxFeeBps),
                )
            )
        )
    if isinstance(msg, Cancel):
        if len(msg.orderHash) != 32:
            raise ValueError("orderHash must be 32 bytes")
        return keccak(CANCEL_TYPEHASH + _address(msg.trader) + msg.orderHash)
    if isinstance(msg, CancelAll):
        return keccak(
            CANCEL_ALL_TYPEHASH
            + _address(msg.trader)
            + _address(msg.baseToken)
            + _address(msg.quoteToken)
            + _uint(msg.nonceBelow)
        )
    if isinstance(msg, Withdrawal):
        return keccak(
            WITHDRAWAL_TYPEHASH
            + _address(msg.trader)
            + _address(msg.token)
            + _uint(msg.amount)
            + _uint(msg.nonce)
            + _uint(msg.expiry)
        )
    if isinstance(msg, ScheduleCancel):
        return keccak(
            SCHEDULE_CANCEL_TYPEHASH + _address(msg.trader) + _uint(msg.time) + _uint(msg.nonce)
        )
    if isinstance(msg, Session):
        return keccak(
            SESSION_TYPEHASH
            + _address(msg.trader)
            + keccak(msg.scope.encode())  # EIP-712: a string is encoded as its keccak
            + _uint(msg.expiry)
        )
    raise TypeError(f"not a Hybridex message: {type(msg).__name__}")


def digest(msg: Message, domain: Domain) -> bytes:
    """The EIP-712 digest `keccak(0x1901 ‖ domainSeparator ‖ hashStruct(msg))` that is signed;
    for an `Order` this is its order hash."""
    return keccak(b"\x19\x01" + domain.separator + struct_hash(msg))


def order_hash(order: Order, domain: Domain) -> bytes:
    return digest(order, domain)


def typed_data(msg: Message, domain: Domain) -> dict[str, Any]:
    """The full typed-data document for `eth_signTypedData_v4` / `Account.sign_typed_data`
    (`full_message=`): only the message's own type and the domain type, as wallets expect."""
    primary = msg.PRIMARY_TYPE
    message: dict[str, Any] = {}
    for name, value in message_fields(msg).items():
        message[name] = "0x" + value.hex() if isinstance(value, bytes) else value
    return {
        "types": {"EIP712Domain": EIP712_TYPES["EIP712Domain"], primary: EIP712_TYPES[primary]},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    }
