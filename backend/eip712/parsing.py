"""Strict parsing of signed messages from JSON (SPEC §2, §3), before anything is hashed.

Integers are decimal strings without sign, fraction, exponent or leading zeros, within the
field's width; `side` and `timeInForce` are JSON integers (never booleans or strings);
addresses are 0x-hex in any case (mixed case must carry a valid EIP-55 checksum) and come out
checksummed; hashes and signatures are 0x-hex of exact length. Everything else is refused
with `INVALID_ORDER` (or `INVALID_SIGNATURE` for the signature) naming the field — never
coerced, unlike a generic typed-data encoder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from eth_utils.address import to_checksum_address

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import UINT64_MAX, UINT256_MAX, Side, TimeInForce
from backend.eip712.messages import (
    Cancel,
    CancelAll,
    Message,
    Order,
    ScheduleCancel,
    Session,
    Withdrawal,
)

UINT16_MAX: Final = (1 << 16) - 1
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,77}")
_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX: Final = re.compile(r"0x(?:[0-9a-fA-F]{2})*")

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N: Final = SECP256K1_N // 2


def _fail(field: str, problem: str, code: ErrorCode = ErrorCode.INVALID_ORDER) -> DexError:
    return DexError(code, f"{field}: {problem}", field=field)


def parse_uint(value: object, field: str, *, max_value: int = UINT256_MAX) -> int:
    if not isinstance(value, str):
        raise _fail(field, f"must be a decimal string of an integer, got {type(value).__name__}")
    if not _DECIMAL.fullmatch(value):
        raise _fail(
            field,
            f"must be a non-negative integer in decimal without leading zeros: {value[:80]!r}",
        )
    number = int(value)
    if number > max_value:
        raise _fail(field, f"exceeds the maximum {max_value}")
    return number


def parse_small_enum(value: object, field: str, allowed: type[Side] | type[TimeInForce]) -> Any:
    if type(value) is not int:  # bool is an int subclass: refuse it explicitly
        raise _fail(field, f"must be a JSON integer, got {type(value).__name__}")
    try:
        return allowed(value)
    except ValueError:
        names = ", ".join(f"{m.value} ({m.name})" for m in allowed)
        raise _fail(field, f"must be one of {names}; got {value}") from None


@lru_cache(maxsize=1 << 16)
def _checksummed(value: str) -> str:
    # EIP-55 costs a keccak (~12 µs); traders and tokens repeat, so the hot path hits the cache.
    return to_checksum_address(value)


def parse_address(value: object, field: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise _fail(field, "must be a 0x-prefixed 20-byte hex address")
    checksummed = _checksummed(value)
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise _fail(
            field, f"mixed-case address with a wrong EIP-55 checksum (expected {checksummed})"
        )
    return checksummed


def parse_hex(
    value: object, field: str, *, length: int, code: ErrorCode = ErrorCode.INVALID_ORDER
) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise _fail(field, "must be 0x-prefixed hex with an even number of digits", code)
    raw = bytes.fromhex(value[2:])
    if len(raw) != length:
        raise _fail(field, f"must be {length} bytes, got {len(raw)}", code)
    return raw


def parse_signature(value: object, field: str = "signature") -> bytes:
    """A 65-byte (r ‖ s ‖ v) signature, normalised to v ∈ {27, 28}; high-s refused."""
    raw = parse_hex(value, field, length=65, code=ErrorCode.INVALID_SIGNATURE)
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    v = raw[64]
    if v in (0, 1):  # some wallets (hardware) answer the recovery id itself
        v += 27
    if v not in (27, 28):
        raise _fail(field, f"v must be 27 or 28, got {raw[64]}", ErrorCode.INVALID_SIGNATURE)
    if not (0 < r < SECP256K1_N) or not (0 < s <= SECP256K1_HALF_N):
        raise _fail(
            field,
            "r or s out of range (high-s signatures are refused)",
            ErrorCode.INVALID_SIGNATURE,
        )
    return raw[:64] + bytes([v])


def _fields(obj: object, name: str, expected: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise _fail(name, "must be a JSON object")
    missing = [f for f in expected if f not in obj]
    if missing:
        raise _fail(
            f"{name}.{missing[0]}",
            "is required" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""),
        )
    extra = sorted(set(obj) - set(expected))
    if extra:
        raise _fail(f"{name}.{extra[0]}", "is not a field of the signed message")
    return obj


def parse_order(obj: object, name: str = "order") -> Order:
    f = _fields(obj, name, tuple(Order.__dataclass_fields__))
    return Order(
        trader=parse_address(f["trader"], f"{name}.trader"),
        baseToken=parse_address(f["baseToken"], f"{name}.baseToken"),
        quoteToken=parse_address(f["quoteToken"], f"{name}.quoteToken"),
        side=parse_small_enum(f["side"], f"{name}.side", Side),
        price=parse_uint(f["price"], f"{name}.price"),
        amount=parse_uint(f["amount"], f"{name}.amount"),
        timeInForce=parse_small_enum(f["timeInForce"], f"{name}.timeInForce", TimeInForce),
        nonce=parse_uint(f["nonce"], f"{name}.nonce", max_value=UINT64_MAX),
        expiry=parse_uint(f["expiry"], f"{name}.expiry", max_value=UINT64_MAX),
        maxFeeBps=parse_uint(f["maxFeeBps"], f"{name}.maxFeeBps", max_value=UINT16_MAX),
    )


def parse_cancel(obj: object, name: str = "cancel") -> Cancel:
    f = _fields(obj, name, tuple(Cancel.__dataclass_fields__))
    return Cancel(
        trader=parse_address(f["trader"], f"{name}.trader"),
        orderHash=parse_hex(f["orderHash"], f"{name}.orderHash", length=32),
    )


def parse_cancel_all(obj: object, name: str = "cancelAll") -> CancelAll:
    f = _fields(obj, name, tuple(CancelAll.__dataclass_fields__))
    return CancelAll(
        trader=parse_address(f["trader"], f"{name}.trader"),
        baseToken=parse_address(f["baseToken"], f"{name}.baseToken"),
        quoteToken=parse_address(f["quoteToken"], f"{name}.quoteToken"),
        nonceBelow=parse_uint(f["nonceBelow"], f"{name}.nonceBelow", max_value=UINT64_MAX),
    )


def parse_withdrawal(obj: object, name: str = "withdrawal") -> Withdrawal:
    f = _fields(obj, name, tuple(Withdrawal.__dataclass_fields__))
    return Withdrawal(
        trader=parse_address(f["trader"], f"{name}.trader"),
        token=parse_address(f["token"], f"{name}.token"),
        amount=parse_uint(f["amount"], f"{name}.amount"),
        nonce=parse_uint(f["nonce"], f"{name}.nonce", max_value=UINT64_MAX),
        expiry=parse_uint(f["expiry"], f"{name}.expiry", max_value=UINT64_MAX),
    )


def parse_schedule_cancel(obj: object, name: str = "scheduleCancel") -> ScheduleCancel:
    f = _fields(obj, name, tuple(ScheduleCancel.__dataclass_fields__))
    return ScheduleCancel(
        trader=parse_address(f["trader"], f"{name}.trader"),
        time=parse_uint(f["time"], f"{name}.time", max_value=UINT64_MAX),
        nonce=parse_uint(f["nonce"], f"{name}.nonce", max_value=UINT64_MAX),
    )


SESSION_SCOPES: Final = frozenset({"read"})


def parse_session(obj: object, name: str = "session") -> Session:
    """A `Session`; every refusal is SESSION_INVALID (it is a credential, not an order)."""
    try:
        f = _fields(obj, name, tuple(Session.__dataclass_fields__))
        scope = f["scope"]
        if not isinstance(scope, str) or scope not in SESSION_SCOPES:
            raise _fail(f"{name}.scope", f"must be one of {', '.join(sorted(SESSION_SCOPES))}")
        return Session(
            trader=parse_address(f["trader"], f"{name}.trader"),
            scope=scope,
            expiry=parse_uint(f["expiry"], f"{name}.expiry", max_value=UINT64_MAX),
        )
    except DexError as exc:
        raise DexError(ErrorCode.SESSION_INVALID, exc.message, **exc.context) from None


def message_to_json(msg: Message) -> dict[str, Any]:
    """The inverse of parsing: the JSON form clients send (decimal strings, 0x-hex)."""
    out: dict[str, Any] = {}
    for name in type(msg).__dataclass_fields__:
        value = getattr(msg, name)
        if isinstance(value, Side | TimeInForce):
            out[name] = int(value)
        elif isinstance(value, bytes):
            out[name] = "0x" + value.hex()
        elif isinstance(value, int):
            out[name] = str(value)
        else:
            out[name] = value
    return out
