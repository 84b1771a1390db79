"""The durable command journal: append-only segment files, one fsync per group (SPEC §5).

Format 2 (written since the group trailer; `docs/runbook.md` "Engine journal"):
- a segment `journal-{first_seq:020d}.log` starts with a header `magic "HXJRNL02", u64
  first_seq, u32 crc32`;
- then group commits, each `records…, trailer`. A record is `u32 length (> 0), u32
  crc32(payload), payload` (payload: `records.encode_record`); the trailer is `u32 0xFFFFFFFF,
  u32 count, u32 record bytes, u64 last_seq, u32 crc32(the four fields before)`.
Sequence numbers are contiguous, so a record's seq is implicit: the i-th record of a segment
has seq `first_seq + i` — reading from a seq skips records without decoding them; the trailer's
`last_seq` catches a gap.

Format 1 (before the trailer): no header, no trailers, records only. Such segments are still
read; a journal that ends in one gets a new format-2 segment at its next append.

Torn tail: the engine acknowledges a group only after its fsync, so a crash can leave at the
end of the last segment a group with no valid trailer — never acknowledged. Opening the
journal moves those bytes to `<segment>.torn-<UTC time>` beside it and truncates. It is a torn
tail only if NO valid trailer (its own CRC) follows the damage: a valid trailer after it means
a group that was fsynced, hence acknowledged, so the damage is corruption. The same holds for
the last group: damaged records under an intact trailer are corruption, not a torn tail. In a
format-1 segment only a final record cut short by the end of the file is a torn tail. Any
other damage — a bad record followed by valid data, a seq gap, a damaged older segment —
raises `JournalCorruptError` (segment, offset, seq) and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from backend import _native

log = structlog.get_logger(__name__)

_RECORD = struct.Struct("<II")
_SEGMENT = struct.Struct("<8sQI")  # magic, first seq, crc32 of the two
_TRAILER = struct.Struct("<IIIQI")  # tag, count, record bytes, last seq, crc32 of the four
_TRAILER_FIELDS = struct.Struct("<IIIQ")
_MAGIC = b"HXJRNL02"
_TAG = 0xFFFFFFFF  # never a record length: records are far below 4 GiB
_TAG_BYTES = _TAG.to_bytes(4, "little")
# A format-1 final record longer than this that runs past the end is a damaged length, not a
# torn write: no command record comes near it.
_V1_MAX_RECORD = 1 << 20
_PREFIX = "journal-"
_SUFFIX = ".log"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class JournalCorruptError(Exception):
    """Acknowledged journal data is damaged: the engine must not start (docs/runbook.md)."""

    def __init__(self, segment: Path, offset: int, seq: int, reason: str) -> None:
        # offset -1: found past the framing (a record that decodes to another seq)
        where = f"segment {segment} is corrupt at byte {offset}" if offset >= 0 else str(segment)
        super().__init__(
            f"journal {where} (seq {seq}): {reason}; the journal was left as it is — see "
            "docs/runbook.md, 'Engine journal corrupt'"
        )
        self.segment = segment
        self.offset = offset
        self.seq = seq
        self.reason = reason


class JournalBehindError(Exception):
    """The journal ends before a seq a consumer (database, feed) or a snapshot already holds:
    acknowledged commands are missing, and new ones would reuse their seqs (docs/runbook.md)."""


def frame_records(payloads: Sequence[bytes]) -> bytearray:
    """The records of a group, framed (`u32 length, u32 crc32, payload` each). A zero-length
    record would read like zero-filled blocks: refused. The native core frames a list of bytes
    in one call; `frame_records_python` is the reference (tests hold them equal)."""
    if type(payloads) is list:
        return _native.frame_records(payloads)
    return frame_records_python(payloads)


def frame_records_python(payloads: Sequence[bytes]) -> bytearray:
    if not all(payloads):
        raise ValueError("a journal record cannot be empty")
    crc32, pack = zlib.crc32, _RECORD.pack
    buf = bytearray()
    for p in payloads:
        buf += pack(len(p), crc32(p))
        buf += p
    return buf


def _sync(fd: int) -> None:
    # fdatasync also persists the file size, which is all an append needs.
    getattr(os, "fdatasync", os.fsync)(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_header(first_seq: int) -> bytes:
    head = _MAGIC + first_seq.to_bytes(8, "little")
    return _SEGMENT.pack(_MAGIC, first_seq, zlib.crc32(head))


def _trailer(count: int, nbytes: int, last_seq: int) -> bytes:
    fields = _TRAILER_FIELDS.pack(_TAG, count, nbytes, last_seq)
    return fields + zlib.crc32(fields).to_bytes(4, "little")


def _trailer_at(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(count, record bytes, last seq) of an intact trailer at `pos`, else None."""
    if pos + _TRAILER.size > len(data):
        return None
    tag, count, nbytes, last, crc = _TRAILER.unpack_from(data, pos)
    if tag != _TAG or zlib.crc32(data[pos : pos + _TRAILER_FIELDS.size]) != crc:
        return None
    return count, nbytes, last


def _trailer_after(data: bytes, pos: int) -> int | None:
    """Offset of the first intact trailer at or after `pos` (a fsynced group's end)."""
    while (pos := data.find(_TAG_BYTES, pos)) != -1:
        if _trailer_at(data, pos) is not None:
            return pos
        pos += 1
    return None


@dataclass(slots=True)
class _Damage:
    offset: int  # where the unusable bytes start (a group's start: nothing of it is kept)
    at: int  # the first bad byte found, for the message
    reason: str
    cut_short: bool = False  # format 1: the final record ends past the end of the file


@dataclass(slots=True)
class _Scan:
    version: int
    records: list[tuple[int, int]]  # (offset, length) of each usable payload
    end: int  # end of the usable prefix
    damage: _Damage | None


def _scan_v1(data: bytes) -> _Scan:
    out: list[tuple[int, int]] = []
    pos, size, header = 0, len(data), _RECORD.size
    crc32, unpack_from, append = zlib.crc32, _RECORD.unpack_from, out.append
    mv = memoryview(data)  # CRC over views: no copy of each payload
    damage = None
    while pos < size:
        if pos + header > size:
            damage = _Damage(pos, pos, "record header cut short by the end of the segment", True)
            break
        length, crc = unpack_from(data, pos)
        start = pos + header
        end = start + length
        if end > size:
            if length > _V1_MAX_RECORD:
                reason = f"record length {length} runs past the end of the segment"
                damage = _Damage(pos, pos, reason)
            else:
                damage = _Damage(pos, pos, "record cut short by the end of the segment", True)
            break
        if crc32(mv[start:end]) != crc:
            damage = _Damage(pos, pos, "record CRC mismatch")
            break
        append((start, length))
        pos = end
    mv.release()
    return _Scan(1, out, pos, damage)


def _scan_v2(data: bytes, first_seq: int) -> _Scan:
    out: list[tuple[int, int]] = []
    size, header = len(data), _RECORD.size
    crc32, unpack_from = zlib.crc32, _RECORD.unpack_from
    if size < _SEGMENT.size:
        return _Scan(2, out, 0, _Damage(0, 0, "segment header cut short"))
    _magic, stored_first, crc = _SEGMENT.unpack_from(data)
    if crc32(data[:16]) != crc or stored_first != first_seq:
        return _Scan(2, out, 0, _Damage(0, 0, f"bad segment header (first seq {stored_first})"))
    mv = memoryview(data)
    pos, last = _SEGMENT.size, first_seq - 1
    damage = None
    while pos < size and damage is None:
        group_start = pos
        group: list[tuple[int, int]] = []
        append = group.append
        while True:
            if pos + header > size:
                damage = _Damage(group_start, pos, "group has no trailer (the segment ends)")
                break
            length, crc = unpack_from(data, pos)
            start = pos + header
            end = start + length
            # The common case first; a trailer's tag as a length always runs past the end.
            if end <= size and length and crc32(mv[start:end]) == crc:
                append((start, length))
                pos = end
                continue
            if length != _TAG:
                reason = "record CRC mismatch" if length and end <= size else "bad record"
                damage = _Damage(group_start, pos, reason)
                break
            trailer = _trailer_at(data, pos)
            expected = (len(group), pos - group_start, last + len(group))
            if trailer is None:
                damage = _Damage(group_start, pos, "bad group trailer")
            elif trailer != expected or not group:
                count, nbytes, tlast = trailer
                damage = _Damage(
                    group_start,
                    pos,
                    f"trailer says {count} records, {nbytes} bytes, last seq {tlast}; found "
                    f"{expected[0]} records, {expected[1]} bytes, expected last seq {expected[2]}",
                )
            else:
                pos += _TRAILER.size
                out += group
                last += len(group)
            break
    mv.release()
    return _Scan(2, out, pos if damage is None else damage.offset, damage)


def _scan(data: bytes, first_seq: int) -> _Scan:
    if data[: len(_MAGIC)] == _MAGIC or (len(data) < len(_MAGIC) and _MAGIC.startswith(data)):
        return _scan_v2(data, first_seq)
    return _scan_v1(data)


def _check(path: Path, first: int, data: bytes, scan: _Scan, *, last: bool) -> bool:
    """True if the segment ends in a torn tail (only the last segment may); raise if the damage
    is anything else."""
    damage = scan.damage
    if damage is None:
        return False
    seq = first + len(scan.records)
    # Where the intact prefix ends (a group or record boundary): what a repair keeps.
    intact = f"; intact up to byte {damage.offset}"
    if not last:
        raise JournalCorruptError(
            path, damage.at, seq, f"{damage.reason} in an older segment{intact}"
        )
    found = _trailer_after(data, damage.offset)
    if found is not None:
        raise JournalCorruptError(
            path,
            damage.at,
            seq,
            f"{damage.reason}, followed by a complete group at byte {found}{intact}",
        )
    if scan.version == 1 and not damage.cut_short:
        raise JournalCorruptError(path, damage.at, seq, f"{damage.reason} (format 1){intact}")
    return True


def _read_segment(path: Path, first: int, *, last: bool) -> tuple[bytes, _Scan]:
    data = path.read_bytes()
    scan = _scan(data, first)
    _check(path, first, data, scan, last=last)
    return data, scan


def _move_aside(path: Path, data: bytes, offset: int) -> Path:
    """Copy `data[offset:]` to `<segment>.torn-<UTC time>` (durably), then cut the segment."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.torn-{stamp}")
    n = 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.torn-{stamp}-{n}")
    with aside.open("xb") as f:
        f.write(data[offset:])
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(path.parent)
    with path.open("r+b") as f:
        f.truncate(offset)
        f.flush()
        _sync(f.fileno())
    return aside


def read_journal(directory: Path, seq: int) -> Iterator[tuple[int, bytes]]:
    """(seq, payload) of every record with seq ≥ `seq`, in order, read-only: a torn tail is
    skipped, not moved (the writer may still be appending); other damage raises."""
    segments = list_segments(Path(directory))
    if segments and max(seq, 1) < segments[0][0]:
        path = segments[0][1]
        raise JournalCorruptError(path, 0, seq, f"segments before seq {segments[0][0]} missing")
    for i, (first, path) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else None
        if nxt is not None and nxt <= seq:
            continue
        data, scan = _read_segment(path, first, last=nxt is None)
        records = scan.records
        if nxt is not None and first + len(records) != nxt:
            raise JournalCorruptError(
                path,
                scan.end,
                first + len(records),
                f"segment ends at seq {first + len(records) - 1} but the next starts at {nxt}",
            )
        for j in range(max(0, seq - first), len(records)):
            start, length = records[j]
            yield first + j, data[start : start + length]


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment, oldest first."""
    out = []
    for path in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
        stem = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if stem.isdigit():
            out.append((int(stem), path))
    return sorted(out)


class PendingGroup:
    """A group of `Journal.begin_group`, written by the native writer thread (or already
    written); `wait()` blocks, without the GIL, until it is synced and returns its last seq.
    An OSError of the write or the sync is raised by every call of `wait()`."""

    def __init__(
        self, journal: Journal, write: _native.GroupWrite | None, last: int, size: int = 0
    ) -> None:
        self._journal = journal
        self._write = write
        self._last = last
        self._settled = write is None
        if write is None and size:
            journal._written(last, size)

    @property
    def seconds(self) -> float | None:
        """How long the writer thread took to write and sync the group, once waited for
        (None for a group written in Python)."""
        return None if self._write is None else self._write.seconds

    def done(self) -> bool:
        """True once the group's write has finished (well or not): `wait()` will not block."""
        return self._settled or (self._write is not None and self._write.done())

    def wait(self) -> int:
        if not self._settled:
            assert self._write is not None
            size = self._write.wait()
            self._settled = True
            self._journal._written(self._last, size)
        return self._last


class Journal:
    """The single writer. Opening one repairs a torn tail, so other processes (the indexer,
    `--verify-journal`) read with `read_journal`, which never writes."""

    def __init__(self, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._size = 0
        self._pending: PendingGroup | None = None
        self.last_seq = 0
        self._open_tail()

    # ------------------------------------------------------------------ segments

    def segments(self) -> list[tuple[int, Path]]:
        """(first seq, path) of every segment, oldest first."""
        return list_segments(self.directory)

    def _open_tail(self) -> None:
        segments = self.segments()
        if not segments:
            self.last_seq = 0
            return
        first, path = segments[-1]
        data = path.read_bytes()
        scan = _scan(data, first)
        if _check(path, first, data, scan, last=True):
            assert scan.damage is not None
            aside = _move_aside(path, data, scan.end) if data else None
            log.warning(
                "journal_torn_tail_moved",
                segment=path.name,
                offset=scan.end,
                moved_bytes=len(data) - scan.end,
                moved_to=None if aside is None else aside.name,
                reason=scan.damage.reason,
                kept_records=len(scan.records),
            )
        self.last_seq = first + len(scan.records) - 1
        if scan.version == 1:
            if scan.end == 0:  # nothing usable: the segment starts over in format 2
                path.unlink()
                _fsync_dir(self.directory)
            return  # format 1 is never appended to: the next group rolls a new segment
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = scan.end
        if scan.end == 0:  # the header itself was torn
            self._write_header(first)

    def _write_header(self, first_seq: int) -> None:
        assert self._fd is not None
        header = _segment_header(first_seq)
        os.write(self._fd, header)
        _sync(self._fd)
        self._size = len(header)

    def _roll(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / f"{_PREFIX}{first_seq:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        _fsync_dir(self.directory)  # the new file's name must survive a crash too
        # Written with the first group's fsync: a crash before it leaves a torn header.
        header = _segment_header(first_seq)
        os.write(self._fd, header)
        self._size = len(header)

    # ------------------------------------------------------------------ writing

    def append_group(self, payloads: Sequence[bytes]) -> int:
        """Append records with seqs last_seq+1… and their trailer, fsync once (group commit);
        returns the new last seq. Only after this returns may any of them be acknowledged."""
        return self.begin_group(payloads).wait()

    def begin_group(self, payloads: Sequence[bytes], notify_fd: int | None = None) -> PendingGroup:
        """Start `append_group`'s write and return at once; its `wait()` returns the new last
        seq once the group is synced. The engine applies the group meanwhile: natively the
        write runs on a thread of its own that needs no GIL, so it starts right away, and
        when it is done it writes a byte to `notify_fd` if given (an event loop's wake-up;
        a group written here in Python is done on return). One group at a time: a group
        begun while another is pending waits for that one first."""
        if self._pending is not None:
            self._pending.wait()
        if not payloads:
            return PendingGroup(self, None, self.last_seq, 0)
        if self._fd is None or self._size >= self.segment_bytes:
            self._roll(self.last_seq + 1)
        assert self._fd is not None
        last = self.last_seq + len(payloads)
        if type(payloads) is list:
            write = _native.start_group(self._fd, payloads, last, notify_fd)
            self._pending = PendingGroup(self, write, last)
            return self._pending
        buf = frame_records(payloads)
        buf += _trailer(len(payloads), len(buf), last)
        view = memoryview(buf)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        _sync(self._fd)
        return PendingGroup(self, None, last, len(buf))

    def _written(self, last: int, size: int) -> None:
        self._size += size
        self.last_seq = last
        self._pending = None

    def close(self) -> None:
        if self._pending is not None:  # never close the descriptor under the writer thread
            with contextlib.suppress(OSError):
                self._pending.wait()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ reading

    def read_from(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) of every record with seq ≥ `seq`, in order."""
        return read_journal(self.directory, seq)
