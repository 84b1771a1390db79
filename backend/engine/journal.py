"""The durable command journal: append-only segment files, one fsync per group (SPEC §5).

A record is `u32 length, u32 crc32(payload), payload` (payload: `records.encode_record`).
Sequence numbers are contiguous, so a record's seq is implicit: the i-th record of segment
`journal-{first_seq:020d}.log` has seq `first_seq + i` — reading from a seq skips records
without decoding them.

A crash can leave a torn group at the end of the last segment (it was never acknowledged:
acknowledgement follows the fsync); opening the journal truncates it with a log line. A bad
record anywhere else is corruption of acknowledged data and raises.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_HEADER = struct.Struct("<II")
_PREFIX = "journal-"
_SUFFIX = ".log"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class JournalCorruptError(Exception):
    """An acknowledged record failed its CRC: the journal needs an operator."""


def _sync(fd: int) -> None:
    # fdatasync also persists the file size, which is all an append needs.
    getattr(os, "fdatasync", os.fsync)(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, length) of each valid payload, and the end of the valid prefix."""
    out: list[tuple[int, int]] = []
    pos, size, header = 0, len(data), _HEADER.size
    crc32, unpack_from, append = zlib.crc32, _HEADER.unpack_from, out.append
    mv = memoryview(data)  # CRC over views: no copy of each payload
    while pos + header <= size:
        length, crc = unpack_from(data, pos)
        start = pos + header
        end = start + length
        if end > size or crc32(mv[start:end]) != crc:
            break
        append((start, length))
        pos = end
    mv.release()
    return out, pos


class Journal:
    """Single writer; readers open their own `Journal` or call `read_from` before writing."""

    def __init__(self, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._size = 0
        self.last_seq = 0
        self._open_tail()

    # ------------------------------------------------------------------ segments

    def segments(self) -> list[tuple[int, Path]]:
        """(first seq, path) of every segment, oldest first."""
        out = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            stem = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if stem.isdigit():
                out.append((int(stem), path))
        return sorted(out)

    def _open_tail(self) -> None:
        segments = self.segments()
        if not segments:
            self.last_seq = 0
            return
        first, path = segments[-1]
        data = path.read_bytes()
        records, valid_end = _scan(data)
        if valid_end < len(data):
            log.warning(
                "journal_tail_truncated",
                segment=path.name,
                dropped_bytes=len(data) - valid_end,
                kept_records=len(records),
            )
            with path.open("r+b") as f:
                f.truncate(valid_end)
                f.flush()
                _sync(f.fileno())
        self.last_seq = first + len(records) - 1
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = valid_end

    def _roll(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / f"{_PREFIX}{first_seq:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        _fsync_dir(self.directory)  # the new file's name must survive a crash too

    # ------------------------------------------------------------------ writing

    def append_group(self, payloads: Sequence[bytes]) -> int:
        """Append records with seqs last_seq+1… and fsync once (group commit); returns the new
        last seq. Only after this returns may any of them be acknowledged."""
        if not payloads:
            return self.last_seq
        if self._fd is None or self._size >= self.segment_bytes:
            self._roll(self.last_seq + 1)
        assert self._fd is not None
        crc32, pack = zlib.crc32, _HEADER.pack
        buf = bytearray()
        for p in payloads:
            buf += pack(len(p), crc32(p))
            buf += p
        view = memoryview(buf)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        _sync(self._fd)
        self._size += len(buf)
        self.last_seq += len(payloads)
        return self.last_seq

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ reading

    def read_from(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) of every record with seq ≥ `seq`, in order."""
        segments = self.segments()
        for i, (first, path) in enumerate(segments):
            nxt = segments[i + 1][0] if i + 1 < len(segments) else None
            if nxt is not None and nxt <= seq:
                continue
            data = path.read_bytes()
            records, valid_end = _scan(data)
            last = i + 1 == len(segments)
            if valid_end < len(data) and not last:
                raise JournalCorruptError(f"bad record in {path.name} at byte {valid_end}")
            if nxt is not None and first + len(records) != nxt:
                raise JournalCorruptError(f"{path.name} ends at {first + len(records) - 1}")
            for j in range(max(0, seq - first), len(records)):
                start, length = records[j]
                yield first + j, data[start : start + length]
