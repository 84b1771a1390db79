"""Persistence: column types, models (one writer per table), sessions and migrations."""

from backend.db.base import Base, metadata
from backend.db.session import insert_ignore, make_engine, session_factory, unit_of_work, upsert

__all__ = [
    "Base",
    "insert_ignore",
    "make_engine",
    "metadata",
    "session_factory",
    "unit_of_work",
    "upsert",
]
