"""Bulk writes on PostgreSQL: one statement per table, whatever the number of rows.

`UnnestInsert` (`INSERT … SELECT * FROM unnest(…) ON CONFLICT …`) and `UnnestUpdate`
(`UPDATE … FROM unnest(…)`) send each column as ONE binary array parameter. Their SQL text
depends on the columns only, so psycopg converts it once and PostgreSQL prepares it (psycopg's
prepare threshold). The executemany they replace cost a Bind/Execute a row in SQLAlchemy, in
psycopg and in the server; SQLAlchemy's multi-row INSERT ("insertmanyvalues") saves the
server's part, but its text changes with the row count, so psycopg parses every one again.

Values go through the columns' own SQLAlchemy bind processors, as in any other write: the
checks of `backend.db.types` hold. An ON CONFLICT DO UPDATE refuses to touch a row twice, so
rows whose stored keys repeat are written one statement a row, in order (as an executemany
would); an UPDATE … FROM would apply one of several rows of a key, so `UnnestUpdate`'s caller
passes each key once (the persister folds its rows per key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ColumnElementColumnDefault

Row = Mapping[str, Any]


class _Columns:
    """A table's SQL types, bind processors and `onupdate` expressions for one dialect."""

    def __init__(self, dialect: Dialect, table: Table) -> None:
        prep = dialect.identifier_preparer
        self.table = prep.format_table(table)
        self.quote = prep.quote
        self.types: dict[str, str] = {}
        self.processors: dict[str, Callable[[Any], Any] | None] = {}
        self.onupdate: dict[str, str] = {}
        for column in table.columns:
            self.types[column.name] = column.type.compile(dialect=dialect)
            impl = column.type.dialect_impl(dialect)
            self.processors[column.name] = impl.bind_processor(dialect)
            if isinstance(column.onupdate, ColumnElementColumnDefault):
                self.onupdate[column.name] = str(column.onupdate.arg.compile(dialect=dialect))

    def unnest(self, columns: Sequence[str]) -> str:
        return ", ".join(f"%(p{i})b::{self.types[c]}[]" for i, c in enumerate(columns))

    def arrays(
        self, rows: Sequence[Row], columns: Sequence[str], keys: Sequence[str]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for i, (column, key) in enumerate(zip(columns, keys, strict=True)):
            values = [row[key] for row in rows]
            process = self.processors[column]
            params[f"p{i}"] = values if process is None else [process(v) for v in values]
        return params


class UnnestInsert:
    """`INSERT INTO table (columns of the rows) SELECT * FROM unnest(arrays) ON CONFLICT
    (conflict)`: DO NOTHING, or with `update` DO UPDATE SET those columns (and the columns with
    an SQL `onupdate`, as `session.upsert_statement` does), guarded by `guard`: the stored row
    changes only when its `guard` column is lower than the new row's."""

    def __init__(
        self,
        dialect: Dialect,
        table: Table,
        *,
        conflict: Sequence[str],
        update: Sequence[str] = (),
        guard: str | None = None,
    ) -> None:
        self._columns = _Columns(dialect, table)
        q = self._columns.quote
        tail = f" ON CONFLICT ({', '.join(q(c) for c in conflict)})"
        if update:
            set_ = [f"{q(c)} = excluded.{q(c)}" for c in update]
            set_ += [
                f"{q(c)} = {sql}" for c, sql in self._columns.onupdate.items() if c not in update
            ]
            tail += " DO UPDATE SET " + ", ".join(set_)
            if guard is not None:
                tail += f" WHERE {self._columns.table}.{q(guard)} < excluded.{q(guard)}"
        else:
            tail += " DO NOTHING"
        self._tail = tail
        self._conflict = tuple(conflict) if update else ()
        self._sql: dict[tuple[str, ...], str] = {}

    def sql(self, columns: tuple[str, ...]) -> str:
        found = self._sql.get(columns)
        if found is None:
            c = self._columns
            names = ", ".join(c.quote(n) for n in columns)
            # identifiers only, each a column of the table (`c.types` has no other key)
            found = self._sql[columns] = (
                f"INSERT INTO {c.table} ({names}) SELECT * FROM unnest({c.unnest(columns)})"  # noqa: S608
                + self._tail
            )
        return found

    def execute(self, session: Session, rows: Sequence[Row]) -> None:
        """Write `rows` (all with the keys of the first: the columns written)."""
        if not rows:
            return
        columns = tuple(rows[0])
        params = self._columns.arrays(rows, columns, columns)
        if self._conflict and len(rows) > 1:
            keys = list(zip(*(params[f"p{columns.index(c)}"] for c in self._conflict), strict=True))
            if len(set(keys)) < len(keys):
                # Two rows of one key once stored (e.g. two spellings of an address): one
                # statement a row, in order, as an executemany would write them.
                for row in rows:
                    self.execute(session, [row])
                return
        session.connection().exec_driver_sql(self.sql(columns), params)


class UnnestUpdate:
    """`UPDATE table SET columns = new values (and the SQL `onupdate` columns) FROM
    unnest(arrays) WHERE key matches AND the stored `guard` is lower than the new one`: an
    executemany of `UPDATE … WHERE key = :key AND guard < :guard` in one statement.
    `params` maps each column (the key first) to the rows' key that holds its value."""

    def __init__(
        self, dialect: Dialect, table: Table, *, params: Mapping[str, str], guard: str
    ) -> None:
        c = self._columns = _Columns(dialect, table)
        q = c.quote
        self._names = tuple(params)
        self._keys = tuple(params.values())
        key, *changed = self._names
        if guard not in changed:
            raise ValueError(f"the guard {guard} must be one of the updated columns")
        set_ = [f"{q(n)} = u.{q(n)}" for n in changed]
        set_ += [f"{q(n)} = {sql}" for n, sql in c.onupdate.items() if n not in changed]
        alias = ", ".join(q(n) for n in self._names)
        self.sql = (  # identifiers only, each a column of the table
            f"UPDATE {c.table} SET {', '.join(set_)} FROM unnest({c.unnest(self._names)}) "  # noqa: S608
            f"AS u({alias}) WHERE {c.table}.{q(key)} = u.{q(key)} "
            f"AND {c.table}.{q(guard)} < u.{q(guard)}"
        )

    def execute(self, session: Session, rows: Sequence[Row]) -> None:
        if not rows:
            return
        params = self._columns.arrays(rows, self._names, self._keys)
        session.connection().exec_driver_sql(self.sql, params)
