"""Bulk writes on PostgreSQL: one statement per table, whatever the number of rows.

`UnnestInsert` (`INSERT … SELECT * FROM unnest(…) ON CONFLICT …`) and `UnnestUpdate`
(`UPDATE … FROM unnest(…)`) send each column as ONE array parameter. Their SQL text
depends on the columns only, so psycopg converts it once and PostgreSQL prepares it (psycopg's
prepare threshold). The executemany they replace cost a Bind/Execute a row in SQLAlchemy, in
psycopg and in the server; SQLAlchemy's multi-row INSERT ("insertmanyvalues") saves the
server's part, but its text changes with the row count, so psycopg parses every one again.

Each column's array is built in one pass (`_Column`): the checks of `backend.db.types` (uint256
range and int type, exact byte lengths, checksummed addresses, enum members) run per column
with C-level builtins, numbers and strings go as one text array literal, bytes and addresses as
a prebuilt binary array; a column holding any other value goes through its SQLAlchemy bind
processor value by value, so it is refused as any other write would refuse it. Per-value bind
processors and psycopg's per-element binary list dumping were ~2/3 of the persister's CPU.

An ON CONFLICT DO UPDATE refuses to touch a row twice, so rows whose stored keys repeat are
written one statement a row, in order (as an executemany would); an UPDATE … FROM would apply
one of several rows of a key, so `UnnestUpdate`'s caller passes each key once (the persister
folds its rows per key).
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Boolean, Column, Dialect, Integer, String, Table
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ColumnElementColumnDefault

from backend.db.types import (
    U256,
    UINT256_MAX,
    Address,
    FixedBytes,
    IntEnumType,
    StrEnumType,
    checksum_address,
)

Row = Mapping[str, Any]


_NONE = type(None)
_BOOL_TEXT = {True: "t", False: "f"}
_NULL_ELEMENT = struct.pack(">i", -1)


class _ByteaArray(bytes):
    """A `bytea[]` already in PostgreSQL's binary array format (sent as is)."""


class _VarcharArray(bytes):
    """A `varchar[]` already in PostgreSQL's binary array format (sent as is)."""


class _PrebuiltDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Buffer) -> Buffer:
        return obj


class _ByteaArrayDumper(_PrebuiltDumper):
    oid = 1001  # bytea[]


class _VarcharArrayDumper(_PrebuiltDumper):
    oid = 1015  # varchar[]


# On the default map, which every connection opened afterwards copies; a connection opened
# before this module was imported (a pool's, say) gets them on its first bulk write (`_run`).
psycopg.adapters.register_dumper(_ByteaArray, _ByteaArrayDumper)
psycopg.adapters.register_dumper(_VarcharArray, _VarcharArrayDumper)
_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # driver connections known to have them


def _run(session: Session, sql: str, params: dict[str, Any]) -> None:
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert driver is not None  # a checked-out connection has its driver connection
    if driver not in _READY:
        driver.adapters.register_dumper(_ByteaArray, _ByteaArrayDumper)
        driver.adapters.register_dumper(_VarcharArray, _VarcharArrayDumper)
        _READY.add(driver)
    connection.exec_driver_sql(sql, params)


def _binary_array(element_oid: int, values: list[bytes | None], nulls: bool) -> bytes:
    """`values` as a one-dimensional binary array: a header, then each element's length
    (-1: NULL) and bytes."""
    if not values:
        return struct.pack(">iiI", 0, 0, element_oid)
    header = struct.pack(">iiIii", 1, int(nulls), element_oid, len(values), 1)
    return header + b"".join(
        _NULL_ELEMENT if v is None else struct.pack(">i", len(v)) + v for v in values
    )


def _quote(value: str) -> str:
    r"""One text array element, quoted: only `\` and `"` are special inside the quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_all(values: list[str]) -> str:
    """`values` as a text array literal, each quoted (one join when none needs escaping)."""
    joined = '","'.join(values)
    if "\\" not in joined and joined.count('"') == 2 * (len(values) - 1):
        return '{"' + joined + '"}'
    return "{" + ",".join(map(_quote, values)) + "}"


def _element(value: Any) -> str:
    """A value of the slow path (already through its bind processor) as an array element."""
    if isinstance(value, bool):
        return _BOOL_TEXT[value]
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"no text array element for {type(value).__name__}: {value!r}")


def _ints(values: list[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _bools(values: list[bool]) -> str:
    return "{" + ",".join(map(_BOOL_TEXT.__getitem__, values)) + "}"


class _Column:
    """One column's values → one array parameter, checked per column, not per value.

    The fast path takes a column whose values all have the types the column's own bind
    processor passes through (`fast`), checks them in one pass of C-level builtins (`check`:
    range, lengths, members; `convert`: e.g. the cached checksum) and joins them into one
    parameter: a text array literal (`{…}`, numbers and strings: PostgreSQL parses it as the
    cast's type) or, for bytes and addresses, the binary array itself (half the bytes of hex
    text, and much less parsing on both sides). Any other value sends the whole column through
    the bind processor, value by value, so what it refuses, and its error, are the
    processor's; NULLs are NULL elements.
    """

    def __init__(self, column: Column[Any], dialect: Dialect) -> None:
        self.process = column.type.dialect_impl(dialect).bind_processor(dialect)
        self.fast: frozenset[type] = frozenset()
        self.check: Callable[[list[Any]], bool] | None = None  # False: some value is bad
        self.convert: Callable[[Any], Any] | None = None  # mapped over the fast values
        self.join: Callable[[list[Any]], Any] | None = None  # fast, NULL-free values → param
        self.element: Callable[[Any], str] = _element  # one value → text element
        self.binary: type[bytes] | None = None  # the prebuilt binary array's type
        kind = column.type
        if isinstance(kind, U256):
            self.fast, self.join, self.element = frozenset((int,)), _ints, str
            self.check = lambda v: min(v) >= 0 and max(v) <= UINT256_MAX
        elif isinstance(kind, FixedBytes):
            size, prefix = kind.length, struct.pack(">i", kind.length)
            header = struct.pack(">iiI", 1, 0, 17)
            self.fast, self.binary = frozenset((bytes,)), _ByteaArray
            self.check = lambda v: set(map(len, v)) == {size}
            self.join = lambda v: _ByteaArray(
                header + struct.pack(">ii", len(v), 1) + prefix + prefix.join(v)
            )
        elif isinstance(kind, Address):
            # checksummed: 42 ASCII characters, each length prefix the same
            prefix_s = struct.pack(">i", 42).decode("ascii")
            header = struct.pack(">iiI", 1, 0, 1043)
            self.fast, self.convert, self.binary = (
                frozenset((str,)),
                checksum_address,
                _VarcharArray,
            )
            self.join = lambda v: _VarcharArray(
                header
                + struct.pack(">ii", len(v), 1)
                + (prefix_s + prefix_s.join(v)).encode("ascii")
            )
        elif isinstance(kind, IntEnumType):
            members = frozenset(int(m) for m in kind.enum)
            self.fast, self.join, self.element = frozenset((kind.enum, int)), _ints, str
            self.convert, self.check = int, members.issuperset
        elif isinstance(kind, StrEnumType):
            values = frozenset(m.value for m in kind.enum)
            self.fast, self.join, self.element = frozenset((kind.enum, str)), _quote_all, _quote
            self.check = values.issuperset
        elif isinstance(kind, Boolean):
            self.fast, self.join = frozenset((bool,)), _bools
            self.element = _BOOL_TEXT.__getitem__
        elif isinstance(kind, Integer):
            self.fast, self.join, self.element = frozenset((int,)), _ints, str
        elif isinstance(kind, String) and self.process is None:
            self.fast, self.join, self.element = frozenset((str,)), _quote_all, _quote
        # `b`: binary (prebuilt, or psycopg's list of processed values); `t`: a text literal
        self.format = "t" if self.join is not None and self.binary is None else "b"

    def encode(self, values: list[Any]) -> tuple[list[Any], Any]:
        """The values as stored (checked, converted; NULLs None) and the array parameter."""
        types = set(map(type, values))
        nulls = _NONE in types
        if nulls:
            types.discard(_NONE)
        fast = types <= self.fast and self.join is not None
        if fast:
            present = [v for v in values if v is not None] if nulls else values
            if present and self.check is not None and not self.check(present):
                fast = False
            elif self.convert is not None and present:
                if nulls:
                    values = [None if v is None else self.convert(v) for v in values]
                else:
                    values = list(map(self.convert, values))
            if fast and not nulls and self.join is not None:
                return values, self.join(values)
        if not fast and self.process is not None:
            values = [None if v is None else self.process(v) for v in values]
            nulls = any(v is None for v in values)
        if self.join is None:
            return values, values
        if self.binary is _ByteaArray:
            return values, _ByteaArray(_binary_array(17, values, nulls))
        if self.binary is _VarcharArray:
            raw = [None if v is None else v.encode() for v in values]
            return values, _VarcharArray(_binary_array(1043, raw, nulls))
        element = self.element if fast else _element
        return values, "{" + ",".join("NULL" if v is None else element(v) for v in values) + "}"


class _Columns:
    """A table's SQL types, column encoders and `onupdate` expressions for one dialect."""

    def __init__(self, dialect: Dialect, table: Table) -> None:
        prep = dialect.identifier_preparer
        self.table = prep.format_table(table)
        self.quote = prep.quote
        self.types: dict[str, str] = {}
        self.columns: dict[str, _Column] = {}
        self.onupdate: dict[str, str] = {}
        for column in table.columns:
            self.types[column.name] = column.type.compile(dialect=dialect)
            self.columns[column.name] = _Column(column, dialect)
            if isinstance(column.onupdate, ColumnElementColumnDefault):
                self.onupdate[column.name] = str(column.onupdate.arg.compile(dialect=dialect))

    def unnest(self, columns: Sequence[str]) -> str:
        # a text literal is sent untyped (`t`): PostgreSQL reads it as the cast's array type
        return ", ".join(
            f"%(p{i}){self.columns[c].format}::{self.types[c]}[]" for i, c in enumerate(columns)
        )

    def arrays(
        self, rows: Sequence[Row], columns: Sequence[str], keys: Sequence[str]
    ) -> tuple[dict[str, Any], list[list[Any]]]:
        """The statement's parameters, and each column's values as stored (in `columns`'
        order)."""
        if len(keys) == 1:
            transposed: list[Any] = [[row[keys[0]] for row in rows]]
        else:
            transposed = list(zip(*map(itemgetter(*keys), rows), strict=True))
        params: dict[str, Any] = {}
        stored: list[list[Any]] = []
        for i, (name, values) in enumerate(zip(columns, transposed, strict=True)):
            checked, params[f"p{i}"] = self.columns[name].encode(list(values))
            stored.append(checked)
        return params, stored


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
        params, stored = self._columns.arrays(rows, columns, columns)
        if self._conflict and len(rows) > 1:
            keys = list(zip(*(stored[columns.index(c)] for c in self._conflict), strict=True))
            if len(set(keys)) < len(keys):
                # Two rows of one key once stored (e.g. two spellings of an address): one
                # statement a row, in order, as an executemany would write them.
                for row in rows:
                    self.execute(session, [row])
                return
        _run(session, self.sql(columns), params)


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
        params, _ = self._columns.arrays(rows, self._names, self._keys)
        _run(session, self.sql, params)
