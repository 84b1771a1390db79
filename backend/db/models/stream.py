"""The event stream's transactional outbox. Writers: the engine's persister, the settlement
worker and the indexer, each in the same transaction as its own rows; `hybridex relay`
publishes the rows to the broker and deletes them once the broker has acknowledged them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, auto_id, created_at


class StreamOutbox(Base):
    """One event not yet acknowledged by the broker. `id` orders the rows of one writer in its
    commit order (each writer's transactions are sequential), which is the order the relay
    publishes them in; `event_id` is the event's stable id, the consumers' deduplication key."""

    __tablename__ = "stream_outbox"

    id: Mapped[int] = auto_id()
    event_id: Mapped[str] = mapped_column(String(120), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(SmallInteger())
    partition_key: Mapped[str] = mapped_column(String(120))
    payload: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = created_at()
