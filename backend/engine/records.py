"""A journal record's payload: the sequenced command plus its `Intake` (what the DB needs).

Layout: u32 command length, the command's codec bytes (`backend.matching.codec`), then the
intake as compact JSON (empty when there is none). JSON, not pickle: the intake is small, rare
on the hot path apart from a signature, and must stay readable by any later version.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backend import _native
from backend.engine.client import Intake, TokenInfo
from backend.matching.codec import decode_command_at, encode_command
from backend.matching.commands import Command
from backend.matching.events import Event

_U32 = struct.Struct("<I")

# `dataclasses.replace(command, seq=seq, now=now)`, without `__init__`: the sequencer stamps
# every command it journals.
stamp = _native.stamp


def encode_intake(intake: Intake | None) -> bytes:
    if intake is None:
        return b""
    signature, fee = intake.signature, intake.max_fee_bps
    if (  # a signed order's intake (the bulk of them), written out: what json.dumps writes
        signature is not None
        and type(fee) is int
        and intake.signed_hash is None
        and intake.base_token is None
        and intake.quote_token is None
        and intake.nonce is None
        and not intake.tokens
        and intake.effective_block is None
        and intake.expiry is None
    ):
        return b'{"s":"%s","f":%d}' % (signature.hex().encode(), fee)
    return encode_intake_json(intake)


def encode_intake_json(intake: Intake) -> bytes:
    """The reference encoder of `encode_intake`: every field through `json.dumps`."""
    obj: dict[str, Any] = {}
    if intake.signature is not None:
        obj["s"] = intake.signature.hex()
    if intake.signed_hash is not None:
        obj["h"] = intake.signed_hash.hex()
    if intake.base_token is not None:
        obj["b"] = intake.base_token
    if intake.quote_token is not None:
        obj["q"] = intake.quote_token
    if intake.nonce is not None:
        obj["n"] = intake.nonce
    if intake.tokens:
        obj["t"] = [[t.address, t.symbol, t.decimals] for t in intake.tokens]
    if intake.effective_block is not None:
        obj["e"] = intake.effective_block
    if intake.max_fee_bps is not None:
        obj["f"] = intake.max_fee_bps
    if intake.expiry is not None:
        obj["x"] = intake.expiry
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_intake(data: bytes) -> Intake | None:
    if not data:
        return None
    obj = json.loads(data)
    sig, signed_hash = obj.get("s"), obj.get("h")
    return Intake(
        signature=None if sig is None else bytes.fromhex(sig),
        signed_hash=None if signed_hash is None else bytes.fromhex(signed_hash),
        base_token=obj.get("b"),
        quote_token=obj.get("q"),
        nonce=obj.get("n"),
        tokens=tuple(TokenInfo(a, s, int(d)) for a, s, d in obj.get("t", ())),
        effective_block=obj.get("e"),
        max_fee_bps=obj.get("f"),
        expiry=obj.get("x"),
    )


def encode_record(command: Command, intake: Intake | None = None) -> bytes:
    body = encode_command(command)
    if intake is None:
        return _U32.pack(len(body)) + body
    return b"%b%b%b" % (_U32.pack(len(body)), body, encode_intake(intake))


def stamp_record(
    command: Command, seq: int, now: int, intake: Intake | None = None
) -> tuple[Command, bytes]:
    """(`stamp(command, seq, now)`, `encode_record` of it): one native call for the packed
    layouts (the group commit's per-command work), the Python encoder for the others."""
    return stamp_record_with(command, seq, now, encode_intake(intake))


def stamp_record_with(command: Command, seq: int, now: int, tail: bytes) -> tuple[Command, bytes]:
    """`stamp_record` with the intake already encoded (`tail`: `encode_intake` bytes)."""
    stamped, payload = _native.stamp_record(command, seq, now)
    if payload is None:
        body = encode_command(stamped)
        return stamped, b"%b%b%b" % (_U32.pack(len(body)), body, tail)
    return stamped, payload + tail if tail else payload


def stamp_records(
    commands: list[Command],
    first_seq: int,
    now: int | None,
    tails: Sequence[bytes] | None = None,
) -> tuple[list[Command], list[bytes]]:
    """`stamp_record` of each command, with seqs `first_seq`, `first_seq`+1… and `now` (each
    command's own `now` when None), in one native call for the group; `tails` are the
    commands' intakes, encoded (`encode_intake`; b"" for none). Raises on the first command
    that cannot be stamped or encoded: the caller then stamps one by one to tell which."""
    stamped, packed = _native.stamp_records(commands, first_seq, now)
    if (tails is None or not any(tails)) and None not in packed:
        return stamped, packed  # type: ignore[return-value]  # no None: all bytes
    records: list[bytes] = []
    for i, payload in enumerate(packed):
        tail = b"" if tails is None else tails[i]
        if payload is None:
            body = encode_command(stamped[i])
            records.append(b"%b%b%b" % (_U32.pack(len(body)), body, tail))
        else:
            records.append(payload + tail if tail else payload)
    return stamped, records


def split_record(payload: bytes) -> tuple[bytes, bytes]:
    """(command bytes, intake bytes) without decoding either."""
    (n,) = _U32.unpack_from(payload, 0)
    return payload[4 : 4 + n], payload[4 + n :]


def decode_record(payload: bytes) -> tuple[Command, Intake | None]:
    command, intake, _ = decode_submission(payload)
    return command, intake


def decode_submission(payload: bytes) -> tuple[Command, Intake | None, bytes]:
    """`decode_record` and the intake's bytes as they came: the engine journals those rather
    than encode the intake it just decoded from them again (they decode to the same)."""
    (n,) = _U32.unpack_from(payload, 0)
    end = 4 + n
    if end > len(payload):
        raise ValueError("truncated journal record")
    command = decode_command_at(payload, 4, end)  # no copy of the command bytes (replay)
    if end == len(payload):
        return command, None, b""
    tail = payload[end:]
    return command, decode_intake(tail), tail


@dataclass(frozen=True, slots=True)
class Applied:
    """One journaled command, its intake and the events it caused: what consumers receive."""

    command: Command
    intake: Intake | None
    events: list[Event]


def find_intake_refs(
    records: Iterable[tuple[int, bytes]], refs: Iterable[bytes], *, before_seq: int
) -> dict[bytes, int]:
    """ref → seq of the first journal record (of `records`, in order, below `before_seq`) whose
    intake carries that ref as its signed hash; refs not found are absent. How a submitter whose
    answers were lost learns which commands were journaled (the indexer's in-doubt rows)."""
    wanted, found = set(refs), dict[bytes, int]()
    for seq, payload in records:
        if seq >= before_seq or len(found) == len(wanted):
            break
        intake = decode_intake(split_record(payload)[1])
        if intake is not None and intake.signed_hash in wanted:
            found.setdefault(intake.signed_hash, seq)
    return found
