"""EIP-712 signing of the messages `/v1/info` publishes, and a nonce source.

The types come from the server (`info.eip712.types`), so a message type the server adds is
signable without a new client. The JSON a request carries keeps every integer as a decimal
string; only the encoder sees ints (uint fields) and bytes (bytes32 fields).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak


class NonceSource:
    """Strictly increasing nonces: the millisecond clock, or one more than the last if the
    clock has not moved (or went back). A restarted client starts above every nonce it used
    before (unless it used more than 1000 a second), so a `CancelAll` with `nonceBelow` =
    `next()` covers everything sent so far."""

    def __init__(self, clock_ms: Callable[[], int] | None = None, start: int = 0) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = start
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, self._clock_ms())
            return self._last

    def peek(self) -> int:
        """The last nonce handed out (0 before any)."""
        return self._last


def _encoder_value(solidity_type: str, value: Any) -> Any:
    if solidity_type.startswith(("uint", "int")):
        return int(value)
    if solidity_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def json_value(solidity_type: str, value: Any) -> Any:
    """A field as the API's JSON carries it: uint8 enums as numbers, other ints as decimal
    strings, bytes as 0x-hex."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if solidity_type == "uint8":
        return int(value)
    if solidity_type.startswith(("uint", "int")):
        return str(int(value))
    return value


class Signer:
    """Signs typed messages for one trader in one domain."""

    def __init__(
        self,
        private_key: str | bytes,
        domain: Mapping[str, Any],
        types: Mapping[str, list[dict[str, str]]],
    ) -> None:
        self.account: LocalAccount = Account.from_key(private_key)
        self.domain = dict(domain)
        self.types = {name: list(fields) for name, fields in types.items()}

    @property
    def address(self) -> str:
        return str(self.account.address)

    def typed_data(self, primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The full typed-data document for `message` (JSON or Python values)."""
        fields = self.types.get(primary_type)
        if fields is None:
            known = ", ".join(t for t in self.types if t != "EIP712Domain")
            raise ValueError(f"{primary_type}: not a type the server publishes ({known})")
        names = {f["name"] for f in fields}
        if set(message) != names:
            raise ValueError(f"{primary_type}: fields {sorted(names)}, got {sorted(message)}")
        return {
            "types": {"EIP712Domain": self.types["EIP712Domain"], primary_type: fields},
            "primaryType": primary_type,
            "domain": self.domain,
            "message": {f["name"]: _encoder_value(f["type"], message[f["name"]]) for f in fields},
        }

    def to_json(self, primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """`message` in the API's JSON form, fields in the type's order."""
        return {
            f["name"]: json_value(f["type"], message[f["name"]]) for f in self.types[primary_type]
        }

    def digest(self, primary_type: str, message: Mapping[str, Any]) -> str:
        """The EIP-712 digest (for an Order: its order hash), 0x-hex."""
        signable = encode_typed_data(full_message=self.typed_data(primary_type, message))
        return "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()

    def sign(self, primary_type: str, message: Mapping[str, Any]) -> str:
        """The 65-byte signature (r, s, v) as 0x-hex."""
        signed = self.account.sign_typed_data(full_message=self.typed_data(primary_type, message))
        return "0x" + bytes(signed.signature).hex()
