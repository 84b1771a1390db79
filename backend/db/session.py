"""Engines, sessions and the unit of work: the only place that commits.

Repositories take `*, session` and never commit; the edge (a route, the engine's persister, a
task, the indexer loop) wraps one logical step in `unit_of_work()`, so fills + order state, or
chain events + cursor, land together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.base import Executable, ReadOnlyColumnCollection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import ColumnElementColumnDefault

SQLITE_BUSY_TIMEOUT_MS = 5_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings each dialect needs to behave like the other.

    SQLite: foreign keys on (off by default there), WAL so readers never block the single
    writer, and a busy timeout instead of instant "database is locked". PostgreSQL:
    `pool_pre_ping` so a restarted server costs a reconnect, not a failed request.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        in_memory = parsed.database in (None, "", ":memory:")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results are read after the unit ends)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit if the block completes, roll back (and re-raise) if it raises."""
    with factory() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


Target = type[DeclarativeBase] | Table


def _table(target: Target) -> Table:
    if isinstance(target, Table):
        return target
    table = target.__table__
    assert isinstance(table, Table)
    return table


def _insert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no ON CONFLICT support for dialect {dialect!r}")


def insert_ignore(
    *,
    session: Session,
    target: Target,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
) -> int:
    """`INSERT … ON CONFLICT (conflict) DO NOTHING`: idempotent writes keyed on a natural key.

    Returns how many rows were new.
    """
    if not rows:
        return 0
    table = _table(target)
    stmt = insert_ignore_statement(session=session, target=table, conflict=conflict)
    return _count(session, stmt.returning(*table.primary_key.columns), rows)


def insert_ignore_statement(
    *, session: Session, target: Target, conflict: Sequence[str]
) -> postgresql.Insert | sqlite.Insert:
    """The statement of `insert_ignore`, without RETURNING: `session.execute(stmt, rows)` then
    runs as the driver's executemany (pipelined on psycopg), cheaper than counting when the
    caller does not need to know which rows were new (bulk writers such as the persister)."""
    return _insert(session, _table(target)).on_conflict_do_nothing(index_elements=list(conflict))


def upsert(
    *,
    session: Session,
    target: Target,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    where: Callable[[ReadOnlyColumnCollection[str, Any]], ColumnElement[bool]] | None = None,
) -> int:
    """`INSERT … ON CONFLICT (conflict) DO UPDATE SET col = excluded.col`.

    `update` defaults to every column outside the conflict key that the rows supply; columns
    with an SQL `onupdate` (`updated_at`) are refreshed too, which ON CONFLICT would otherwise
    skip. `where` receives the proposed row (`excluded`) and guards the update — a
    compare-and-set, e.g. `lambda new: ChainBalance.block_number <= new.block_number`.
    Returns how many rows were inserted or updated (a row the guard refused is not counted).
    """
    if not rows:
        return 0
    table = _table(target)
    columns = update if update is not None else [c for c in rows[0] if c not in conflict]
    if not columns:
        return insert_ignore(session=session, target=table, rows=rows, conflict=conflict)
    stmt = upsert_statement(
        session=session, target=table, conflict=conflict, update=columns, where=where
    )
    return _count(session, stmt.returning(*table.primary_key.columns), rows)


def upsert_statement(
    *,
    session: Session,
    target: Target,
    conflict: Sequence[str],
    update: Sequence[str],
    where: Callable[[ReadOnlyColumnCollection[str, Any]], ColumnElement[bool]] | None = None,
) -> postgresql.Insert | sqlite.Insert:
    """The statement of `upsert` updating the columns `update` (non-empty), without RETURNING
    (see `insert_ignore_statement`)."""
    table = _table(target)
    stmt = _insert(session, table)
    set_: dict[str, Any] = {name: stmt.excluded[name] for name in update}
    for column in table.columns:
        onupdate = column.onupdate
        if column.name not in set_ and isinstance(onupdate, ColumnElementColumnDefault):
            set_[column.name] = onupdate.arg
    return stmt.on_conflict_do_update(
        index_elements=list(conflict),
        set_=set_,
        where=where(stmt.excluded) if where is not None else None,
    )


def _count(session: Session, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> int:
    """Rows written, counted from RETURNING: executemany rowcounts are unreliable on psycopg."""
    return len(session.execute(stmt, list(rows)).all())
