"""Replay a journal directory from scratch (no snapshot, no consumers): the reference state."""

from __future__ import annotations

from pathlib import Path

from backend.engine.journal import Journal
from backend.engine.records import decode_record
from backend.matching.engine import Engine


def replay_from_scratch(journal_dir: Path, *, fee_recipient: str | None = None) -> tuple[int, str]:
    """(last seq, state_hash) after applying every journaled command to a fresh engine."""
    engine = Engine() if fee_recipient is None else Engine(fee_recipient=fee_recipient)
    journal = Journal(journal_dir)
    try:
        for _, payload in journal.read_from(1):
            engine.apply(decode_record(payload)[0])
    finally:
        journal.close()
    return engine.last_seq, engine.state_hash()
