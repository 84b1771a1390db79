"""One signed message of a request, checked: strict parsing, its EIP-712 digest and the signer.

Two implementations give the same answers. The native one (backend/native/src/sig.rs) parses,
hashes and recovers in one call, without the GIL for the work. The reference is `parsing` +
`hashing` + `recover`; it words every refusal (the native check answers only "refused" and
the reference is then run for its exact error), runs where the native module is missing
or `HYBRIDEX_SIGNATURE_CHECK=python` (`select`), and is what the tests compare the native
check with.

Parsing refusals raise at `check`; whether the trader signed is only asked by `verified()`,
so callers keep their order of checks (market, fee bound, then signature).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

from eth_utils.address import to_checksum_address

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import Side, TimeInForce
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import Cancel, CancelAll, Order, Withdrawal
from backend.eip712.parsing import (
    parse_cancel,
    parse_cancel_all,
    parse_order,
    parse_signature,
    parse_withdrawal,
)
from backend.eip712.recover import NO_KEY, recover_raw_or_none

try:
    from backend import _native as _native_sig
except ImportError:  # pragma: no cover - a build without the native crate
    _native_sig = None  # type: ignore[assignment]

M = TypeVar("M", Order, Cancel, CancelAll, Withdrawal)

KINDS: Final[dict[type[Any], int]] = {Order: 0, Cancel: 1, CancelAll: 2, Withdrawal: 3}
"""The native check's message kinds (the order of `MESSAGES` in sig.rs)."""

_PARSERS: Final[dict[type[Any], Callable[[object], Any]]] = {
    Order: parse_order,
    Cancel: parse_cancel,
    CancelAll: parse_cancel_all,
    Withdrawal: parse_withdrawal,
}


def native_available() -> bool:
    return _native_sig is not None


def _not_built(kind: int, message: object, signature: object, separator: bytes) -> None:
    raise RuntimeError("the native crate is not built (backend._native)")


_sig_check: Callable[[int, object, object, bytes], Any] = (
    _native_sig.sig_check if _native_sig is not None else _not_built
)


class _Selected:
    native: bool = native_available()


def select(implementation: Literal["native", "python"]) -> None:
    """Use the native check (where it is built) or the Python reference."""
    _Selected.native = implementation == "native" and native_available()


def uses_native() -> bool:
    return _Selected.native


@dataclass(frozen=True, slots=True)
class Signed(Generic[M]):
    """A parsed message, its signature (65 bytes, v ∈ {27, 28}), digest and recovered signer
    (20 bytes; None when no key recovers). The native check builds it without `__init__`."""

    message: M
    signature: bytes
    digest: bytes
    signer: bytes | None
    trader_signed: bool

    def verified(self) -> bytes:
        """The digest (an order's hash) if the trader signed; else INVALID_SIGNATURE, with the
        answers of `recover.verify`."""
        if self.trader_signed:
            return self.digest
        if self.signer is None:
            raise DexError(ErrorCode.INVALID_SIGNATURE, NO_KEY)
        signer = to_checksum_address(self.signer)
        trader = self.message.trader
        raise DexError(
            ErrorCode.INVALID_SIGNATURE,
            f"signature is by {signer}, not by the trader {trader} "
            "(check the chain id and verifying contract of the signed domain)",
            signer=signer,
            trader=trader,
        )


if _native_sig is not None:
    _native_sig.sig_configure(
        [Order, Cancel, CancelAll, Withdrawal],
        Signed,
        [Side.BUY, Side.SELL],
        [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY],
    )


def check_reference(kind: type[M], message: object, signature: object, domain: Domain) -> Signed[M]:
    """The reference: `parsing`, `hashing.digest` and coincurve's recovery."""
    msg: M = _PARSERS[kind](message)
    sig = parse_signature(signature)
    d = digest(msg, domain)
    signer = recover_raw_or_none(d, sig)
    return Signed(msg, sig, d, signer, signer == bytes.fromhex(msg.trader[2:]))


def check_native(kind: type[M], message: object, signature: object, domain: Domain) -> Signed[M]:
    """The native check; a refusal is worded by the reference (which must refuse too)."""
    signed: Signed[M] | None = _sig_check(KINDS[kind], message, signature, domain.separator)
    if signed is None:
        return check_reference(kind, message, signature, domain)  # raises its exact DexError
    return signed


def check(kind: type[M], message: object, signature: object, domain: Domain) -> Signed[M]:
    """Parse `message` (the JSON object of a `kind`) and `signature` strictly, hash and
    recover; parsing refusals raise DexError (INVALID_ORDER / INVALID_SIGNATURE, naming the
    field) exactly as `parsing` does."""
    if _Selected.native:
        return check_native(kind, message, signature, domain)
    return check_reference(kind, message, signature, domain)
