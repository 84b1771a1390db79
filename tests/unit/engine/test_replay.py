"""`replay_from_scratch` (`hybridex engine --verify-journal`) only reads the journal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backend.engine.journal import Journal, JournalCorruptError
from backend.engine.records import encode_record
from backend.engine.replay import replay_from_scratch
from backend.matching.engine import Engine
from tests.unit.engine.helpers import setup, workload


def journal_of(directory: Path, n: int) -> tuple[int, str]:
    """Journal `n` stamped commands in groups of 50; the state after them."""
    engine, journal = Engine(), Journal(directory)
    commands = [c for c, _ in setup(4)] + [c for c, _ in workload(n, 4, seed=9)]
    stamped = [replace(c, seq=seq, now=1) for seq, c in enumerate(commands, start=1)]
    for i in range(0, len(stamped), 50):
        journal.append_group([encode_record(c) for c in stamped[i : i + 50]])
        for c in stamped[i : i + 50]:
            engine.apply(c)
    journal.close()
    return engine.last_seq, engine.state_hash()


def test_a_torn_tail_is_left_in_place(tmp_path: Path) -> None:
    seq, digest = journal_of(tmp_path, 200)
    (segment,) = tmp_path.glob("journal-*.log")
    data = segment.read_bytes()
    segment.write_bytes(data + data[30:90])  # a group being written: no trailer yet

    assert replay_from_scratch(tmp_path) == (seq, digest)
    assert segment.read_bytes() == data + data[30:90]
    assert list(tmp_path.glob("*.torn-*")) == []


def test_corruption_raises(tmp_path: Path) -> None:
    journal_of(tmp_path, 200)
    (segment,) = tmp_path.glob("journal-*.log")
    data = bytearray(segment.read_bytes())
    data[100] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError):
        replay_from_scratch(tmp_path)
