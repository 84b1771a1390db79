"""Declarative base, constraint naming convention and the column helpers every model shares.

Named constraints make migrations reproducible (Alembic can only drop what it can name) and
identical on PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, MetaData, func, text
from sqlalchemy.orm import DeclarativeBase, MappedColumn, mapped_column

from backend.db.types import UtcDateTime

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Base of every model; `Base.metadata` is Alembic's target."""

    metadata = metadata


# Portable server default: PostgreSQL and SQLite both spell "now, in UTC" this way (and
# autogenerate renders it verbatim, where `func.now()` would render as PostgreSQL's `now()`).
NOW = text("CURRENT_TIMESTAMP")

# SQLite only auto-increments an `INTEGER PRIMARY KEY` (the rowid); PostgreSQL gets BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def auto_id() -> MappedColumn[int]:
    """A surrogate 64-bit primary key filled in by the database."""
    return mapped_column(AutoId, primary_key=True, autoincrement=True)


def created_at() -> MappedColumn[datetime]:
    """Insert time (UTC), set by the database unless the writer supplies the command's time."""
    return mapped_column(UtcDateTime(), server_default=NOW, nullable=False)


def updated_at() -> MappedColumn[datetime]:
    """Last write time (UTC), refreshed on every ORM update."""
    return mapped_column(UtcDateTime(), server_default=NOW, onupdate=func.now(), nullable=False)
