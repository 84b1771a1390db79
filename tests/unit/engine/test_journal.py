"""The journal: group commit, reopen, segment roll, torn tail, corruption."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from backend.engine.journal import Journal, JournalCorruptError


def payloads(start: int, n: int) -> list[bytes]:
    return [f"cmd-{i}".encode() * (i % 7 + 1) for i in range(start, start + n)]


def test_group_commit_fsyncs_once_per_group(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with mock.patch("backend.engine.journal._sync") as sync:
        assert journal.append_group(payloads(1, 100)) == 100
        assert journal.append_group(payloads(101, 5)) == 105
    assert sync.call_count == 2
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


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_torn_tail_is_truncated_on_open(tmp_path: Path, cut: int) -> None:
    journal = Journal(tmp_path)
    journal.append_group(payloads(1, 10))
    journal.append_group(payloads(11, 1))
    journal.close()
    ((_, path),) = journal.segments()
    size = path.stat().st_size
    last_record = 8 + len(payloads(11, 1)[0])
    with path.open("r+b") as f:  # a crash in the middle of the last group's write
        f.truncate(size - last_record + min(cut, last_record - 1))
    again = Journal(tmp_path)
    assert again.last_seq == 10
    assert path.stat().st_size == size - last_record
    again.append_group(payloads(11, 1))
    assert list(Journal(tmp_path).read_from(1)) == list(enumerate(payloads(1, 11), start=1))


def test_corrupted_crc_in_the_last_segment_drops_the_tail(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append_group(payloads(1, 5))
    journal.close()
    ((_, path),) = journal.segments()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert Journal(tmp_path).last_seq == 4


def test_corruption_in_an_older_segment_raises(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=100)
    for start in range(1, 40, 5):
        journal.append_group(payloads(start, 5))
    journal.close()
    _, first = journal.segments()[0]
    data = bytearray(first.read_bytes())
    data[10] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError):
        list(Journal(tmp_path, segment_bytes=100).read_from(1))
