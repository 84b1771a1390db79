"""The Exchange's events, decoded from raw logs with the ABI read at run time.

Topic hashes are computed from the ABI (`backend.chain.artifacts`), never hard-coded, so a
refined event signature in the contract flows through a rebuild of the artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from backend.chain.artifacts import load
from indexer.rpc import Log

# The events the indexer follows (SPEC §7, §8); any other Exchange event is ignored.
FOLLOWED = (
    "Deposited",
    "Withdrawn",
    "ExitRequested",
    "ExitWithdrawn",
    "BatchSettled",
    "OrderCancelled",
    "NoncesInvalidated",
)
JSON_SAFE_INT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    topic: bytes
    indexed: tuple[tuple[str, str], ...]
    """(name, abi type) of the indexed inputs, in topic order."""
    data: tuple[tuple[str, str], ...]
    """(name, abi type) of the other inputs, in data order."""
    order: tuple[str, ...]
    """Input names in declaration order."""


@dataclass(frozen=True, slots=True)
class ChainLog:
    """A decoded Exchange event and where it happened; identity is (block_hash, log_index)."""

    name: str
    block_number: int
    block_hash: bytes
    log_index: int
    tx_hash: bytes
    address: str
    args: Mapping[str, Any]
    """Python values: int, checksummed address str, bytes."""

    @property
    def key(self) -> tuple[bytes, int]:
        return (self.block_hash, self.log_index)


def _signature(entry: Mapping[str, Any]) -> str:
    types = ",".join(_canonical_type(i) for i in entry["inputs"])
    return f"{entry['name']}({types})"


def _canonical_type(inp: Mapping[str, Any]) -> str:
    typ = str(inp["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in inp["components"])
        return f"({inner}){typ[5:]}"
    return typ


class EventCodec:
    """Topic → spec for the followed events of an ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]], names: Sequence[str] = FOLLOWED) -> None:
        self.by_topic: dict[bytes, EventSpec] = {}
        for entry in abi:
            if entry.get("type") != "event" or entry["name"] not in names:
                continue
            spec = EventSpec(
                name=entry["name"],
                topic=keccak(text=_signature(entry)),
                indexed=tuple(
                    (i["name"], _canonical_type(i)) for i in entry["inputs"] if i["indexed"]
                ),
                data=tuple(
                    (i["name"], _canonical_type(i)) for i in entry["inputs"] if not i["indexed"]
                ),
                order=tuple(i["name"] for i in entry["inputs"]),
            )
            self.by_topic[spec.topic] = spec
        missing = set(names) - {s.name for s in self.by_topic.values()}
        if missing:
            raise ValueError(f"the Exchange ABI lacks events {sorted(missing)}")

    @classmethod
    def exchange(cls) -> EventCodec:
        return cls(load("Exchange").abi)

    @property
    def topics(self) -> list[bytes]:
        return list(self.by_topic)

    def decode(self, raw: Log) -> ChainLog | None:
        """The decoded event, or None for a log that is not one we follow."""
        if not raw.topics:
            return None
        spec = self.by_topic.get(raw.topics[0])
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(spec.indexed, raw.topics[1:], strict=True):
            args[name] = _normalize(typ, abi_decode([typ], topic)[0])
        if spec.data:
            values = abi_decode([t for _, t in spec.data], raw.data)
            for (name, typ), value in zip(spec.data, values, strict=True):
                args[name] = _normalize(typ, value)
        return ChainLog(
            name=spec.name,
            block_number=raw.block_number,
            block_hash=raw.block_hash,
            log_index=raw.log_index,
            tx_hash=raw.tx_hash,
            address=to_checksum_address(raw.address),
            args={name: args[name] for name in spec.order},
        )


def _normalize(typ: str, value: Any) -> Any:
    if typ == "address":
        return to_checksum_address(value)
    return value


def args_to_json(args: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe args: bytes as 0x-hex, integers wider than 53 bits as decimal strings."""
    out: dict[str, Any] = {}
    for name, value in args.items():
        if isinstance(value, bytes):
            out[name] = "0x" + value.hex()
        elif isinstance(value, int) and not isinstance(value, bool) and value > JSON_SAFE_INT:
            out[name] = str(value)
        else:
            out[name] = value
    return out
