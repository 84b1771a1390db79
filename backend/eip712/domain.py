"""The EIP-712 domain of the Exchange (SPEC §3) and its separator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from eth_hash.auto import keccak
from eth_utils.address import to_canonical_address, to_checksum_address

DOMAIN_NAME: Final = "Hybridex"
DOMAIN_VERSION: Final = "1"
EIP712_DOMAIN_TYPEHASH: Final = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


@dataclass(frozen=True, slots=True)
class Domain:
    """`{name: "Hybridex", version: "1", chainId, verifyingContract}`."""

    chain_id: int
    verifying_contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))
        object.__setattr__(self, "separator", self._compute_separator())

    def _compute_separator(self) -> bytes:
        return keccak(
            EIP712_DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(32, "big")
            + to_canonical_address(self.verifying_contract).rjust(32, b"\0")
        )

    def as_dict(self) -> dict[str, Any]:
        """The `domain` object of typed data (as `GET /v1/info` publishes it)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }
