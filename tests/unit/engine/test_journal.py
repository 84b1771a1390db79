"""The journal: group commit, reopen, segment roll; torn final group vs corruption; format 1."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path
from unittest import mock

import pytest

from backend.engine.journal import Journal, JournalCorruptError, read_journal

TRAILER = 24  # u32 tag, u32 count, u32 bytes, u64 last seq, u32 crc
HEADER = 20  # magic, u64 first seq, u32 crc


def payloads(start: int, n: int) -> list[bytes]:
    return [f"cmd-{i}".encode() * (i % 7 + 1) for i in range(start, start + n)]


def group_bytes(start: int, n: int) -> int:
    return sum(8 + len(p) for p in payloads(start, n)) + TRAILER


def write(tmp_path: Path, groups: list[tuple[int, int]], **kw: int) -> Path:
    journal = Journal(tmp_path, **kw)
    for start, n in groups:
        assert journal.append_group(payloads(start, n)) == start + n - 1
    journal.close()
    return journal.segments()[-1][1]


def flip(path: Path, offset: int) -> bytes:
    """Flip one bit at `offset` (negative: from the end); returns the damaged bytes."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    return bytes(data)


def torn_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("*.torn-*"))


def test_group_commit_fsyncs_once_per_group(tmp_path: Path) -> None:
    """A list of payloads is written natively (one start_group call: records, trailer, one
    fdatasync on the writer thread); any other sequence by the Python path (one `_sync`).
    Both read back."""
    from backend import _native

    journal = Journal(tmp_path)
    native = mock.patch.object(_native, "start_group", wraps=_native.start_group)
    with native as start_group, mock.patch("backend.engine.journal._sync") as sync:
        assert journal.append_group(list(payloads(1, 100))) == 100
        assert journal.append_group(list(payloads(101, 5))) == 105
        assert journal.append_group(tuple(payloads(106, 3))) == 108
    assert start_group.call_count == 2
    assert sync.call_count == 1
    journal.close()
    assert [seq for seq, _ in read_journal(tmp_path, 1)] == list(range(1, 109))
    assert Journal(tmp_path).last_seq == 108


def test_begin_group_writes_while_the_caller_runs(tmp_path: Path) -> None:
    """`begin_group` returns before the group is durable and the writer thread needs no GIL:
    it finishes while this thread holds the GIL in a busy loop. The journal's position moves
    only once the group is waited for; a second group waits for the first."""
    journal = Journal(tmp_path)
    pending = journal.begin_group(list(payloads(1, 50)))
    assert journal.last_seq == 0
    deadline = time.monotonic() + 5
    while not pending._write.done() and time.monotonic() < deadline:  # type: ignore[union-attr]
        pass  # never releases the GIL (the interpreter may switch only at its interval)
    assert pending._write.done()  # type: ignore[union-attr]
    assert pending.wait() == 50
    assert pending.wait() == 50  # the same answer again
    assert journal.last_seq == 50
    first = journal.begin_group(list(payloads(51, 3)))
    second = journal.begin_group(list(payloads(54, 2)))  # waits for `first`
    assert journal.last_seq == 53
    assert first.wait() == 53
    assert second.wait() == 55
    journal.close()
    assert [seq for seq, _ in read_journal(tmp_path, 1)] == list(range(1, 56))


def test_the_writer_wakes_a_pipe_once_the_group_is_synced(tmp_path: Path) -> None:
    """With `notify_fd`, the writer thread writes one byte when the group is done: an event
    loop watching the pipe learns of the sync without a thread of its own."""
    journal = Journal(tmp_path)
    r, w = os.pipe()
    try:
        pending = journal.begin_group(list(payloads(1, 20)), notify_fd=w)
        assert os.read(r, 16) == b"\x01"  # blocks until the writer is done
        assert pending.done()
        assert pending.wait() == 20
        python = journal.begin_group(tuple(payloads(21, 2)), notify_fd=w)
        assert python.done()  # written in Python before begin_group returned: no byte
        assert python.wait() == 22
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 16)
    finally:
        os.close(r)
        os.close(w)
        journal.close()


def test_a_failed_group_write_raises_on_every_wait(tmp_path: Path) -> None:
    """The write's OSError reaches the waiter (the engine then stops), every time it asks, and
    the journal's position does not move past the group."""
    journal = Journal(tmp_path)
    journal.append_group(list(payloads(1, 2)))
    assert journal._fd is not None
    os.close(journal._fd)
    journal._fd = os.open(os.devnull, os.O_RDONLY)  # a descriptor write(2) refuses
    pending = journal.begin_group(list(payloads(3, 2)))
    for _ in range(2):
        with pytest.raises(OSError, match="Bad file descriptor"):
            pending.wait()
    assert journal.last_seq == 2
    journal.close()


def test_reopen_continues_the_sequence_across_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=200)
    for start in range(1, 60, 10):
        journal.append_group(payloads(start, 10))
    journal.close()
    assert len(journal.segments()) > 3
    again = Journal(tmp_path, segment_bytes=200)
    assert again.last_seq == 60
    assert list(again.read_from(1)) == list(enumerate(payloads(1, 60), start=1))
    assert [s for s, _ in again.read_from(37)] == list(range(37, 61))
    again.append_group(payloads(61, 3))
    assert [s for s, _ in Journal(tmp_path).read_from(59)] == [59, 60, 61, 62, 63]


# ---------------------------------------------------------------------- torn final group


@pytest.mark.parametrize("keep", [1, 7, 8, 9, 30, -TRAILER, -1])
def test_torn_final_group_is_moved_aside_and_truncated(tmp_path: Path, keep: int) -> None:
    """A crash in the middle of the last group's write: any prefix of it, even one ending
    inside its trailer, is a torn group — cut, saved beside the segment, recovered."""
    path = write(tmp_path, [(1, 10), (11, 4)])
    data = path.read_bytes()
    last_group = group_bytes(11, 4)
    good = len(data) - last_group
    cut = good + (keep if keep >= 0 else last_group + keep)
    path.write_bytes(data[:cut])

    again = Journal(tmp_path)

    assert again.last_seq == 10
    assert path.read_bytes() == data[:good]
    (aside,) = torn_files(tmp_path)
    assert aside.name.startswith(path.name + ".torn-")
    assert aside.read_bytes() == data[good:cut]
    again.append_group(payloads(11, 4))
    again.close()
    assert list(Journal(tmp_path).read_from(1)) == list(enumerate(payloads(1, 14), start=1))


def test_zero_filled_final_group_is_a_torn_tail(tmp_path: Path) -> None:
    """A crash can leave the file extended over blocks that were never written (zeros)."""
    path = write(tmp_path, [(1, 10), (11, 4)])
    data = path.read_bytes()
    good = len(data) - group_bytes(11, 4)
    path.write_bytes(data[: good + 20] + b"\x00" * 4096)

    assert Journal(tmp_path).last_seq == 10
    assert path.read_bytes() == data[:good]
    assert len(torn_files(tmp_path)[0].read_bytes()) == 20 + 4096


def test_flipped_bit_in_the_final_trailer_is_a_torn_tail(tmp_path: Path) -> None:
    """Decision: a group counts as written only with an intact trailer. A damaged trailer with
    nothing after it is indistinguishable from a crash mid-write, so the group is moved aside
    (and start-up then refuses if a consumer had already stored it: see test_service)."""
    path = write(tmp_path, [(1, 10), (11, 4)])
    data = path.read_bytes()
    flip(path, -3)

    assert Journal(tmp_path).last_seq == 10
    assert path.read_bytes() == data[: len(data) - group_bytes(11, 4)]
    assert len(torn_files(tmp_path)) == 1


def test_torn_segment_header_after_a_roll(tmp_path: Path) -> None:
    """A crash right after a new segment was created: only part of its header is there."""
    write(tmp_path, [(1, 5)])
    roll = tmp_path / f"journal-{6:020d}.log"
    roll.write_bytes(b"HXJRN")

    again = Journal(tmp_path)

    assert again.last_seq == 5
    assert torn_files(tmp_path)[0].read_bytes() == b"HXJRN"
    again.append_group(payloads(6, 3))
    again.close()
    assert [s for s, _ in Journal(tmp_path).read_from(1)] == list(range(1, 9))


def test_a_reader_skips_a_group_still_being_written_and_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, [(1, 3), (4, 3)])
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # what a reader sees while the writer's write is in flight

    assert [s for s, _ in read_journal(tmp_path, 1)] == [1, 2, 3]
    assert path.read_bytes() == data[:-5]
    assert torn_files(tmp_path) == []


# ---------------------------------------------------------------------- corruption


def test_flipped_bit_in_an_early_record_raises_and_truncates_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, [(s, 50) for s in range(1, 5_000, 50)])
    offset = HEADER + 8 + len(payloads(1, 1)[0]) + 8 + 2  # inside record 2's payload
    damaged = flip(path, offset)

    with pytest.raises(JournalCorruptError) as info:
        Journal(tmp_path)

    assert info.value.segment == path
    assert info.value.seq == 1  # the damaged group's first seq: nothing of it is trusted
    assert info.value.offset == HEADER + 8 + len(payloads(1, 1)[0])  # record 2's header
    assert path.name in str(info.value)
    assert "runbook" in str(info.value)
    assert path.read_bytes() == damaged
    assert torn_files(tmp_path) == []
    with pytest.raises(JournalCorruptError):
        list(read_journal(tmp_path, 1))


def test_flipped_bit_in_the_last_complete_group_raises(tmp_path: Path) -> None:
    """Decision: damaged records under an intact trailer were fsynced (the trailer is the
    last byte of the write), so they may have been acknowledged: corruption, not a torn tail."""
    path = write(tmp_path, [(1, 10), (11, 4)])
    damaged = flip(path, -TRAILER - 3)

    with pytest.raises(JournalCorruptError) as info:
        Journal(tmp_path)

    assert info.value.seq == 11
    assert "complete group" in info.value.reason
    assert path.read_bytes() == damaged
    assert torn_files(tmp_path) == []


def test_damaged_length_in_an_early_record_raises(tmp_path: Path) -> None:
    """A flipped high bit in a length makes the record run past the end of the file — what
    a torn write looks like, except that complete groups follow."""
    path = write(tmp_path, [(1, 10), (11, 10), (21, 10)])
    damaged = flip(path, HEADER + 3)  # the top byte of record 1's length

    with pytest.raises(JournalCorruptError):
        Journal(tmp_path)
    assert path.read_bytes() == damaged


def test_seq_gap_in_a_trailer_raises(tmp_path: Path) -> None:
    path = write(tmp_path, [(1, 10), (11, 4), (15, 2)])
    data = bytearray(path.read_bytes())
    # Rewrite the middle group's trailer with an intact CRC but a last seq two too far.
    at = HEADER + group_bytes(1, 10) + group_bytes(11, 4) - TRAILER
    tag, count, nbytes, last, _ = struct.unpack_from("<IIIQI", data, at)
    assert (count, last) == (4, 14)
    fields = struct.pack("<IIIQ", tag, count, nbytes, 16)
    data[at : at + TRAILER] = fields + zlib.crc32(fields).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    with pytest.raises(JournalCorruptError) as info:
        Journal(tmp_path)
    assert "last seq 16" in info.value.reason
    assert info.value.seq == 11


def test_corruption_in_an_older_segment_raises(tmp_path: Path) -> None:
    write(tmp_path, [(s, 5) for s in range(1, 40, 5)], segment_bytes=100)
    _, first = Journal(tmp_path, segment_bytes=100).segments()[0]
    flip(first, -1)  # the end of an older segment: never a torn tail
    with pytest.raises(JournalCorruptError) as info:
        list(Journal(tmp_path, segment_bytes=100).read_from(1))
    assert info.value.segment == first


def test_missing_segment_raises(tmp_path: Path) -> None:
    write(tmp_path, [(s, 5) for s in range(1, 40, 5)], segment_bytes=100)
    segments = Journal(tmp_path, segment_bytes=100).segments()
    segments[1][1].unlink()
    with pytest.raises(JournalCorruptError, match="next starts at"):
        list(read_journal(tmp_path, 1))
    segments[0][1].unlink()
    with pytest.raises(JournalCorruptError, match="missing"):
        list(read_journal(tmp_path, 1))


# ---------------------------------------------------------------------- format 1


def write_v1(path: Path, records: list[bytes]) -> bytes:
    """A segment as journals wrote it before the group trailer: records only."""
    data = b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in records)
    path.write_bytes(data)
    return data


def test_format_1_journal_is_read_and_continued_in_format_2(tmp_path: Path) -> None:
    write_v1(tmp_path / f"journal-{1:020d}.log", payloads(1, 30))
    write_v1(tmp_path / f"journal-{31:020d}.log", payloads(31, 20))

    journal = Journal(tmp_path)
    assert journal.last_seq == 50
    assert list(journal.read_from(1)) == list(enumerate(payloads(1, 50), start=1))
    journal.append_group(payloads(51, 5))
    journal.close()

    segments = Journal(tmp_path).segments()
    assert [s for s, _ in segments] == [1, 31, 51]
    assert segments[-1][1].read_bytes()[:8] == b"HXJRNL02"
    assert list(read_journal(tmp_path, 1)) == list(enumerate(payloads(1, 55), start=1))


def test_format_1_final_record_cut_short_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / f"journal-{1:020d}.log"
    data = write_v1(path, payloads(1, 10))
    path.write_bytes(data[:-3])

    journal = Journal(tmp_path)

    assert journal.last_seq == 9
    assert len(torn_files(tmp_path)[0].read_bytes()) == 8 + len(payloads(10, 1)[0]) - 3
    journal.append_group(payloads(10, 1))
    journal.close()
    assert list(read_journal(tmp_path, 1)) == list(enumerate(payloads(1, 10), start=1))


def test_format_1_flipped_bit_in_an_early_record_raises(tmp_path: Path) -> None:
    path = tmp_path / f"journal-{1:020d}.log"
    write_v1(path, payloads(1, 100))
    damaged = flip(path, 8 + len(payloads(1, 1)[0]) + 8 + 1)

    with pytest.raises(JournalCorruptError) as info:
        Journal(tmp_path)
    assert info.value.seq == 2
    assert path.read_bytes() == damaged


@pytest.mark.parametrize("sizes", [[1], [7, 8, 9], [255, 256, 1000, 3], list(range(1, 40))])
def test_native_framing_is_the_reference_framing(sizes: list[int]) -> None:
    import os

    from backend import _native
    from backend.engine.journal import frame_records, frame_records_python

    payloads = [os.urandom(n) for n in sizes]
    assert frame_records(payloads) == frame_records_python(payloads)
    assert all(_native.crc32_of(p) == zlib.crc32(p) for p in payloads)
    with pytest.raises(ValueError, match="empty"):
        frame_records([b"x", b""])


def test_stamp_is_replace() -> None:
    import dataclasses

    from backend.domain.types import Side, TimeInForce
    from backend.engine.records import stamp
    from backend.matching import commands as c

    for cmd in (
        c.PlaceOrder(0, 0, b"h" * 32, "t", "m", Side.BUY, 5, 6, TimeInForce.IOC, 1, 0, "x"),
        c.CancelOrder(0, 0, b"h", "t"),
        c.SweepExpired(0, 0),
        c.Credit(3, 4, "t", "k", 10**70),
    ):
        stamped = stamp(cmd, 17, 1_700_000_000)
        assert stamped == dataclasses.replace(cmd, seq=17, now=1_700_000_000)
        assert stamped is not cmd
        assert cmd.seq in (0, 3)
