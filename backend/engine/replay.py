"""Replay a journal directory from scratch (no snapshot, no consumers): the reference state."""

from __future__ import annotations

from pathlib import Path

from backend.engine.journal import read_journal
from backend.engine.records import decode_record
from backend.matching import engine_class


def replay_from_scratch(
    journal_dir: Path, *, fee_recipient: str | None = None, engine: str | None = None
) -> tuple[int, str]:
    """(last seq, state_hash) after applying every journaled command to a fresh engine.

    Read-only (`read_journal`): safe beside a running engine, and on a copy under repair it
    neither moves a torn tail nor writes anything. `engine` names the engine kind ("native",
    "python"; default `HYBRIDEX_ENGINE`): a journal written by either replays in the other."""
    cls = engine_class(engine)
    replayed = cls() if fee_recipient is None else cls(fee_recipient)
    for _, payload in read_journal(Path(journal_dir), 1):
        replayed.apply(decode_record(payload)[0])
    return replayed.last_seq, replayed.state_hash()
