"""The transactional outbox: how a writer adds events, and how the relay takes them out.

A writer calls `add(session, events)` inside the transaction that writes the rows the events
describe, so an event exists exactly when its rows do. The relay reads the oldest rows
(`pending`), publishes them, and `remove`s them once the broker has acknowledged them: the table
holds only what is not yet delivered, so it never needs pruning, and its size is the stream's
lag (`lag`).

Event ids are stable (made from what the event describes, not from the row): a writer that
retries a transaction writes the same ids, and `add` ignores an id already present, so a
consumer deduplicates by id and sees each event once in effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from backend.db.models.stream import StreamOutbox
from backend.db.session import insert_ignore_statement

_TABLE = cast(Table, StreamOutbox.__table__)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of the stream. `type` names its JSON Schema (`docs/events/<type>.v<version>.json`),
    `key` its partition (a market id or a trader address): order is kept per key. `payload` is
    JSON-ready (amounts as decimal strings, never floats)."""

    event_id: str
    type: str
    key: str
    payload: dict[str, Any]
    version: int = 1


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A row the relay read: the event as stored, and its row id (what `remove` takes)."""

    id: int
    event_id: str
    type: str
    version: int
    key: str
    payload: str  # the JSON text, published as it is
    created_at: datetime = field(compare=False)

    def envelope(self) -> bytes:
        """The published message: the event's id, type, version and key around its payload,
        as one JSON object (what the schemas in docs/events describe)."""
        head = json.dumps(
            {"id": self.event_id, "type": self.type, "version": self.version, "key": self.key},
            separators=(",", ":"),
        )
        return f'{head[:-1]},"data":{self.payload}}}'.encode()


def _no_float(value: Any) -> None:
    # type() identity rather than isinstance: this runs for every event the persister writes
    kind = type(value)
    if kind is float:
        raise TypeError("stream payloads carry amounts as decimal strings, never floats")
    if kind is dict:
        for v in value.values():
            if type(v) not in _SCALARS:
                _no_float(v)
    elif kind is list or kind is tuple:
        for v in value:
            if type(v) not in _SCALARS:
                _no_float(v)


_SCALARS = frozenset({str, int, bool, type(None)})


def encode_payload(payload: dict[str, Any]) -> str:
    """Compact, key-sorted JSON; refuses floats, so no amount is ever rounded on its way out."""
    _no_float(payload)
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


_COPY = "COPY stream_outbox (event_id, type, version, partition_key, payload) FROM STDIN"


def add(session: Session, events: Iterable[StreamEvent], *, fresh: bool = False) -> None:
    """Add `events` to the outbox in the caller's transaction; an event id already there is
    ignored (a retried transaction, a re-run task).

    `fresh`: the caller guarantees no id is there yet (the persister: its ids are made from seqs
    above the cursor it advances in the same transaction). On PostgreSQL the rows then go in by
    one COPY instead of an INSERT per row (docs/events.md "Cost"); a duplicate would fail the
    transaction rather than be ignored."""
    rows = [(e.event_id, e.type, e.version, e.key, encode_payload(e.payload)) for e in events]
    if not rows:
        return
    connection = session.connection()
    if fresh and connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(_COPY) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return
    stmt = insert_ignore_statement(session=session, target=StreamOutbox, conflict=["event_id"])
    keys = ("event_id", "type", "version", "partition_key", "payload")
    session.execute(stmt, [dict(zip(keys, row, strict=True)) for row in rows])


def pending(session: Session, limit: int) -> list[OutboxRow]:
    """The oldest `limit` rows, in id order (each writer's commit order)."""
    result = session.execute(select(_TABLE).order_by(_TABLE.c.id).limit(limit))
    return [
        OutboxRow(r.id, r.event_id, r.type, r.version, r.partition_key, r.payload, r.created_at)
        for r in result
    ]


def remove(session: Session, ids: Sequence[int]) -> None:
    """Delete rows the broker has acknowledged."""
    if ids:
        session.execute(delete(_TABLE).where(_TABLE.c.id.in_(list(ids))))


def lag(session: Session) -> tuple[int, float]:
    """(rows not yet delivered, age in seconds of the oldest): the stream's lag."""
    count, oldest = session.execute(select(func.count(), func.min(_TABLE.c.created_at))).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (datetime.now(UTC) - oldest).total_seconds())
