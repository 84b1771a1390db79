"""Signer recovery with libsecp256k1 (coincurve): ≈ 50 µs, the API's hot path.

The signature must already be parsed (`parsing.parse_signature`: 65 bytes, low-s, v ∈ {27, 28}).
"""

from __future__ import annotations

from functools import lru_cache

from coincurve import PublicKey
from eth_hash.auto import keccak
from eth_utils.address import to_canonical_address, to_checksum_address

from backend.domain.errors import DexError, ErrorCode
from backend.eip712.domain import Domain
from backend.eip712.hashing import digest
from backend.eip712.messages import Message

NO_KEY = "signature does not recover a key"


def recover_raw(digest32: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed `digest32`; raises INVALID_SIGNATURE if none."""
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest32, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception for unrecoverable input
        raise DexError(ErrorCode.INVALID_SIGNATURE, NO_KEY) from exc
    return keccak(key.format(compressed=False)[1:])[-20:]


def recover_raw_or_none(digest32: bytes, signature: bytes) -> bytes | None:
    """`recover_raw`, None instead of the refusal (`signed.Signed.verified` raises it later)."""
    try:
        return recover_raw(digest32, signature)
    except DexError:
        return None


def recover(digest32: bytes, signature: bytes) -> str:
    """The checksummed address that signed `digest32`; raises INVALID_SIGNATURE if none."""
    return to_checksum_address(recover_raw(digest32, signature))


@lru_cache(maxsize=1 << 16)
def _canonical(address: str) -> bytes:
    return to_canonical_address(address)


def verify(msg: Message, signature: bytes, domain: Domain) -> bytes:
    """Checks that `msg.trader` signed `msg` under `domain`; returns the digest (order hash)."""
    d = digest(msg, domain)
    signer_raw = recover_raw(d, signature)
    if signer_raw != _canonical(msg.trader):  # bytes compare: no checksum on the hot path
        signer = to_checksum_address(signer_raw)
        raise DexError(
            ErrorCode.INVALID_SIGNATURE,
            f"signature is by {signer}, not by the trader {msg.trader} "
            "(check the chain id and verifying contract of the signed domain)",
            signer=signer,
            trader=msg.trader,
        )
    return d
