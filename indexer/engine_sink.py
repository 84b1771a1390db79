"""How the indexer's effects reach the engine: journaled commands, stamped with the event's ref.

The projection only knows `CommandSink` (synchronous; the indexer loop is synchronous).
`EngineClientSink` adapts any async `EngineClient` (TCP or in-process) by running it on an event
loop the caller owns. Every command carries `Intake(signed_hash=ref)`: the engine journals the
intake beside the command, so after a crash a command whose answer was lost can be found in
the journal by its ref (`JournalDirLookup`) instead of being sent a second time.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from backend.engine.client import EngineClient, Intake, Outcome
from backend.engine.records import decode_intake, split_record
from backend.matching.commands import CancelAll, Command

PROBE_TRADER = "0x0000000000000000000000000000000000000000"


class CommandSink(Protocol):
    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        """Journal and apply `command`; raise `EngineUnavailableError` if no answer came."""
        ...


class JournalLookup(Protocol):
    def find(self, ref: bytes, *, after_seq: int, before_seq: int) -> int | None:
        """The seq of the journaled command stamped `ref` in (after_seq, before_seq), if any.

        Authoritative: every command below `before_seq` is durable in the journal.
        """
        ...


def probe_command() -> Command:
    """A command with no effect (the zero address's CancelAll bar stays 0); its seq bounds
    every command sent before it."""
    return CancelAll(seq=0, now=0, trader=PROBE_TRADER, market_id=None, nonce_below=0)


class EngineClientSink:
    """A `CommandSink` over an async `EngineClient`, run on `loop` (the client's loop)."""

    def __init__(
        self, client: EngineClient, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 10.0
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_s = timeout_s

    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        coro = self.client.submit(command, timeout=self.timeout_s, intake=Intake(signed_hash=ref))
        return self.loop.run_until_complete(coro)


_HEADER = struct.Struct("<II")
_PREFIX, _SUFFIX = "journal-", ".log"


def read_journal(directory: Path, from_seq: int) -> Iterator[tuple[int, bytes]]:
    """(seq, payload) of the journal's records with seq ≥ from_seq, read-only.

    Follows the engine's documented format (`backend/engine/journal.py`: segment files named by
    their first seq, records `u32 length, u32 crc32, payload`); stops at a torn tail, which the
    engine never acknowledged. Never writes: the engine is the journal's only writer.
    """
    segments: list[tuple[int, Path]] = []
    for path in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
        stem = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if stem.isdigit():
            segments.append((int(stem), path))
    segments.sort()
    for i, (first, path) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else None
        if nxt is not None and nxt <= from_seq:
            continue
        data = path.read_bytes()
        pos, seq = 0, first
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            start, end = pos + _HEADER.size, pos + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[start:end]) != crc:
                break
            if seq >= from_seq:
                yield seq, data[start:end]
            pos, seq = end, seq + 1


class JournalDirLookup:
    """Finds a stamped command in the engine's journal directory (same host, read-only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def find(self, ref: bytes, *, after_seq: int, before_seq: int) -> int | None:
        if not self.directory.is_dir():
            raise FileNotFoundError(f"engine journal directory {self.directory} not found")
        for seq, payload in read_journal(self.directory, after_seq + 1):
            if seq >= before_seq:
                break
            intake = decode_intake(split_record(payload)[1])
            if intake is not None and intake.signed_hash == ref:
                return seq
        return None
