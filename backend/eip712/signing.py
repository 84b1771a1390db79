"""Signing helpers for tests, benchmarks and dev tooling (never used by the API to verify).

`sign` uses the fast digest and eth_account's `unsafe_sign_hash` (the digest is ours, so the
"unsafe" is about the caller, not the key); `sign_typed` goes through eth_account's generic
typed-data encoder, exactly as a wallet would.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account

from backend.eip712.domain import Domain
from backend.eip712.hashing import digest, typed_data
from backend.eip712.messages import Message


@dataclass(frozen=True, slots=True)
class Signature:
    """65-byte (r, s, v) signature with v in {27, 28}."""

    r: int
    s: int
    v: int

    def to_bytes(self) -> bytes:
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.v])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Signature:
        if len(raw) != 65:
            raise ValueError(f"a signature is 65 bytes, got {len(raw)}")
        return cls(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64])


def sign(msg: Message, domain: Domain, private_key: str | bytes) -> Signature:
    """Signs the message's EIP-712 digest (fast path)."""
    signed = Account.unsafe_sign_hash(digest(msg, domain), private_key)
    return Signature(int(signed.r), int(signed.s), int(signed.v))


def sign_typed(msg: Message, domain: Domain, private_key: str | bytes) -> Signature:
    """Signs through eth_account's typed-data encoder, as a wallet does."""
    signed = Account.sign_typed_data(private_key, full_message=typed_data(msg, domain))
    return Signature(int(signed.r), int(signed.s), int(signed.v))
