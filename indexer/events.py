"""The Exchange's events, decoded from raw logs with the ABI read at run time.

Topic hashes are computed from the ABI (`backend.chain.artifacts`), never hard-coded, so a
refined event signature in the contract flows through a rebuild of the artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
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
    "OrderCancelRequested",
    "NonceInvalidationRequested",
    "FillSkipped",
    "FeeRecipientSet",
)
JSON_SAFE_INT = 2**53 - 1
_UINT = re.compile(r"uint(\d+)")
_BYTES_N = re.compile(r"bytes(\d+)")
_ZERO_12 = bytes(12)


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
    words: tuple[Callable[[bytes], Any], ...] | None = None
    """One decoder per 32-byte data word when every data input is a static elementary type
    (address, uintN, bytesN, bool); None → eth_abi. Indexed inputs are decoded alike."""
    topic_words: tuple[Callable[[bytes], Any], ...] | None = None
    plan: tuple[tuple[str, int, Callable[[bytes], Any]], ...] | None = None
    """(name, word, decoder) in declaration order, `word` indexing topics[1:] + data words,
    each decoder giving the final value (addresses checksummed); None when `words` or
    `topic_words` is None."""


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
            indexed = tuple(
                (i["name"], _canonical_type(i)) for i in entry["inputs"] if i["indexed"]
            )
            data = tuple(
                (i["name"], _canonical_type(i)) for i in entry["inputs"] if not i["indexed"]
            )
            words = _word_decoders([t for _, t in data])
            topic_words = _word_decoders([t for _, t in indexed])
            spec = EventSpec(
                name=entry["name"],
                topic=keccak(text=_signature(entry)),
                indexed=indexed,
                data=data,
                order=tuple(i["name"] for i in entry["inputs"]),
                words=words,
                topic_words=topic_words,
                plan=_plan(entry, indexed, data),
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
        plan, data = spec.plan, raw.data
        if (
            plan is not None
            and len(raw.topics) == 1 + len(spec.indexed)
            and len(data) == 32 * len(spec.data)
            and all(len(t) == 32 for t in raw.topics)
        ):
            # The hot path: every input a static word, read straight from topics and data.
            words = raw.topics[1:] + tuple([data[i : i + 32] for i in range(0, len(data), 32)])
            try:
                fast_args = {name: dec(words[i]) for name, i, dec in plan}
            except _NotCanonicalError:
                pass  # a word eth_abi must judge (dirty padding): the general path below
            else:
                return ChainLog(
                    spec.name,
                    raw.block_number,
                    raw.block_hash,
                    raw.log_index,
                    raw.tx_hash,
                    checksum(raw.address),
                    fast_args,
                )
        return self._decode_general(spec, raw)

    @staticmethod
    def _decode_general(spec: EventSpec, raw: Log) -> ChainLog:
        args: dict[str, Any] = {}
        topics = raw.topics[1:]
        if len(topics) != len(spec.indexed):
            raise ValueError(f"{spec.name}: {len(topics)} topics for {len(spec.indexed)} inputs")
        fast = _fast_words(spec.topic_words, topics)
        if fast is None:
            fast = [
                abi_decode([t], topic)[0]
                for (_, t), topic in zip(spec.indexed, topics, strict=True)
            ]
        for (name, typ), value in zip(spec.indexed, fast, strict=True):
            args[name] = _normalize(typ, value)
        if spec.data:
            data = raw.data
            words = None
            if spec.words is not None and len(data) == 32 * len(spec.words):
                words = _fast_words(spec.words, [data[i : i + 32] for i in range(0, len(data), 32)])
            values = words if words is not None else abi_decode([t for _, t in spec.data], data)
            for (name, typ), value in zip(spec.data, values, strict=True):
                args[name] = _normalize(typ, value)
        return ChainLog(
            name=spec.name,
            block_number=raw.block_number,
            block_hash=raw.block_hash,
            log_index=raw.log_index,
            tx_hash=raw.tx_hash,
            address=checksum(raw.address),
            args={name: args[name] for name in spec.order},
        )


@lru_cache(maxsize=65_536)
def checksum(address: str) -> str:
    """EIP-55 form of a 0x-hex address (cached: the same traders and tokens recur in every
    chunk, and each checksum costs a keccak)."""
    return str(to_checksum_address(address))


def _normalize(typ: str, value: Any) -> Any:
    if typ == "address":
        return checksum(value)
    return value


class _NotCanonicalError(Exception):
    """A word the fast path will not judge (e.g. dirty padding): eth_abi decides."""


def _address_word(word: bytes) -> str:
    if word[:12] != _ZERO_12:
        raise _NotCanonicalError
    return "0x" + word[12:].hex()


@lru_cache(maxsize=65_536)
def _checksummed_word(word: bytes) -> str:
    # Cached by the word itself: the same traders and tokens recur (exceptions are not cached).
    return checksum(_address_word(word))


def _uint_word(bits: int) -> Callable[[bytes], int]:
    limit = 1 << bits

    def decode(word: bytes) -> int:
        value = int.from_bytes(word, "big")
        if value >= limit:
            raise _NotCanonicalError
        return value

    return decode


def _bytes_word(n: int) -> Callable[[bytes], bytes]:
    def decode(word: bytes) -> bytes:
        if any(word[n:]):
            raise _NotCanonicalError
        return word[:n]

    return decode


def _bool_word(word: bytes) -> bool:
    value = int.from_bytes(word, "big")
    if value > 1:
        raise _NotCanonicalError
    return value == 1


def _word_decoder(typ: str) -> Callable[[bytes], Any] | None:
    if typ == "address":
        return _address_word
    if typ == "bool":
        return _bool_word
    if m := _UINT.fullmatch(typ):
        return _uint_word(int(m.group(1)))
    if (m := _BYTES_N.fullmatch(typ)) and 1 <= int(m.group(1)) <= 32:
        return _bytes_word(int(m.group(1)))
    return None


def _plan(
    entry: Mapping[str, Any],
    indexed: Sequence[tuple[str, str]],
    data: Sequence[tuple[str, str]],
) -> tuple[tuple[str, int, Callable[[bytes], Any]], ...] | None:
    position = {name: i for i, (name, _) in enumerate([*indexed, *data])}
    types = dict([*indexed, *data])
    plan = []
    for inp in entry["inputs"]:
        name = inp["name"]
        typ = types[name]
        decoder = _checksummed_word if typ == "address" else _word_decoder(typ)
        if decoder is None:
            return None
        plan.append((name, position[name], decoder))
    return tuple(plan)


def _word_decoders(types: Sequence[str]) -> tuple[Callable[[bytes], Any], ...] | None:
    decoders = [_word_decoder(t) for t in types]
    if any(d is None for d in decoders):
        return None
    return tuple(d for d in decoders if d is not None)


def _fast_words(
    decoders: tuple[Callable[[bytes], Any], ...] | None, words: Sequence[bytes]
) -> list[Any] | None:
    """Static words decoded without eth_abi (the same values), or None to fall back."""
    if decoders is None or any(len(w) != 32 for w in words):
        return None
    try:
        return [d(w) for d, w in zip(decoders, words, strict=True)]
    except _NotCanonicalError:
        return None


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
