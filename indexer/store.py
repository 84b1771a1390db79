"""The indexer's writes (ponder's database actions): blocks, events, deposits, cursors.

Every function takes `*, session` and never commits: the daemon wraps one sync step (a
backfill chunk, or a realtime poll) with its projection and cursor in one `unit_of_work`.
Writes are idempotent per `(block_hash, log_index)` (`INSERT … ON CONFLICT DO NOTHING`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb
from sqlalchemy import (
    Dialect,
    Row,
    Table,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    table,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from backend.db.models.indexer import (
    ChainBalance,
    ChainBlock,
    ChainEvent,
    Deposit,
    IndexerCommand,
    IndexerCursor,
)
from backend.db.models.reference import Token
from backend.db.session import upsert
from backend.db.types import Address
from backend.domain.types import DepositStatus
from indexer.events import ChainLog, args_to_json
from indexer.rpc import BlockHeader

HEAD_CURSOR = "exchange"
CONFIRMED_CURSOR = "exchange:confirmed"

_CHECKED: dict[str, str] = {}


class CheckedAddress(Address):
    """`Address` (same validation, same stored form) that remembers the values it validated.

    A chunk binds the same few thousand trader and token addresses thousands of times, and
    each EIP-55 check costs two keccaks — most of a bulk insert's time otherwise.
    """

    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        hit = _CHECKED.get(value)
        if hit is None:
            hit = super().process_bind_param(value, dialect)
            assert hit is not None
            if len(_CHECKED) >= 100_000:
                _CHECKED.clear()
            _CHECKED[value] = hit
        return hit


def bulk_table(model: type[Any]) -> TableClause:
    """`model`'s table for bulk Core statements: the same columns and types, `Address`
    columns as `CheckedAddress`."""
    t: Table = model.__table__
    return table(
        t.name,
        *(
            column(c.name, CheckedAddress() if isinstance(c.type, Address) else c.type)
            for c in t.columns
        ),
    )


EVENTS = bulk_table(ChainEvent)
DEPOSITS = bulk_table(Deposit)
BALANCES = bulk_table(ChainBalance)
COMMANDS = bulk_table(IndexerCommand)


def _dialect_insert(session: Session, target: TableClause) -> postgresql.Insert | sqlite.Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


@dataclass(frozen=True, slots=True)
class Cursor:
    number: int
    hash: bytes


def load_cursor(*, session: Session, name: str) -> Cursor | None:
    row = session.get(IndexerCursor, name)
    return None if row is None else Cursor(row.block_number, row.block_hash)


def cursor_chain_id(*, session: Session) -> int | None:
    row = session.get(IndexerCursor, HEAD_CURSOR)
    return None if row is None else row.chain_id


def set_cursor(*, session: Session, name: str, chain_id: int, number: int, hash_: bytes) -> None:
    upsert(
        session=session,
        target=IndexerCursor,
        rows=[{"name": name, "chain_id": chain_id, "block_number": number, "block_hash": hash_}],
        conflict=["name"],
    )


def known_tokens(*, session: Session) -> set[str]:
    return set(session.scalars(select(Token.address)))


def save_blocks(*, session: Session, headers: Sequence[BlockHeader]) -> None:
    if not headers:
        return
    numbers = [h.number for h in headers]
    session.execute(delete(ChainBlock).where(ChainBlock.number.in_(numbers)))
    session.execute(
        insert(ChainBlock),
        [
            {
                "number": h.number,
                "hash": h.hash,
                "parent_hash": h.parent_hash,
                "timestamp": h.timestamp,
            }
            for h in headers
        ],
    )


def load_window(*, session: Session, top: int, size: int) -> list[BlockHeader]:
    """The stored headers linked by parent hash that end at `top` (newest last)."""
    rows = session.scalars(
        select(ChainBlock)
        .where(ChainBlock.number <= top, ChainBlock.number > top - size - 1)
        .order_by(ChainBlock.number.desc())
    ).all()
    out: list[BlockHeader] = []
    for row in rows:
        header = BlockHeader(row.number, row.hash, row.parent_hash, row.timestamp)
        if out and not (header.number == out[-1].number - 1 and header.hash == out[-1].parent_hash):
            break
        if not out and header.number != top:
            break
        out.append(header)
    out.reverse()
    return out


def prune_blocks(*, session: Session, below: int) -> None:
    session.execute(delete(ChainBlock).where(ChainBlock.number < below))


def save_events(
    *, session: Session, logs: Sequence[ChainLog], tokens: set[str], above: int | None = None
) -> int:
    """Stores the events and the deposits among them; returns how many events were new.

    `above`: every log is in a block above this one (a backfill chunk after its cursor) —
    tables holding nothing above it are written by COPY (`insert_new(fresh=True)`).
    """
    if not logs:
        return 0
    events_fresh = deposits_fresh = False
    if above is not None and session.get_bind().dialect.name == "postgresql":
        events_fresh = nothing_above(session=session, table=EVENTS, number=above, where={})
        deposits_fresh = nothing_above(
            session=session,
            table=DEPOSITS,
            number=above,
            where={"status": [s.value for s in DepositStatus]},
        )
    new = insert_new(
        session=session,
        table=EVENTS,
        fresh=events_fresh,
        key=("block_hash", "log_index"),
        rows=[
            {
                "block_hash": e.block_hash,
                "log_index": e.log_index,
                "block_number": e.block_number,
                "tx_hash": e.tx_hash,
                "event": e.name,
                "address": e.address,
                "args": args_to_json(e.args),
            }
            for e in logs
        ],
    )
    deposits = [
        {
            "block_hash": e.block_hash,
            "log_index": e.log_index,
            "tx_hash": e.tx_hash,
            "block_number": e.block_number,
            "trader": e.args["trader"],
            "token": e.args["token"],
            "amount": e.args["amount"],
            "status": DepositStatus.SEEN,
        }
        for e in logs
        if e.name == "Deposited" and e.args["token"] in tokens
    ]
    insert_new(
        session=session,
        table=DEPOSITS,
        rows=deposits,
        key=("block_hash", "log_index"),
        fresh=deposits_fresh,
    )
    return len(new)


def delete_above(*, session: Session, number: int, orphan: bool = True) -> None:
    """Forgets what blocks above `number` wrote (a reorg, or a re-sync from `number + 1`).

    On a reorg (`orphan`) deposits are kept as history, marked `orphaned`; the projection has
    already decided what the engine must undo. On a re-sync the blocks are the same chain:
    `seen` deposits are dropped (they come back) and credited ones kept as they are.
    """
    session.execute(delete(ChainEvent).where(ChainEvent.block_number > number))
    session.execute(delete(ChainBlock).where(ChainBlock.number > number))
    if not orphan:
        session.execute(
            delete(Deposit).where(
                Deposit.block_number > number, Deposit.status == DepositStatus.SEEN
            )
        )
        return
    session.execute(
        update(Deposit)
        .where(Deposit.block_number > number, Deposit.status != DepositStatus.ORPHANED)
        .values(status=DepositStatus.ORPHANED)
    )


def seen_deposits(*, session: Session) -> int:
    """Deposits seen and not yet credited."""
    q = select(func.count()).select_from(Deposit).where(Deposit.status == DepositStatus.SEEN)
    return int(session.scalar(q) or 0)


class StoredEvent(NamedTuple):
    """An event as `events_between` reads it back: `args` in their stored JSON form."""

    block_hash: bytes
    log_index: int
    block_number: int
    event: str
    args: dict[str, Any]
    tx_hash: bytes


def as_stored(logs: Iterable[ChainLog]) -> list[StoredEvent]:
    """`logs` as `events_between` would return them once stored (same order given)."""
    return [
        StoredEvent(
            e.block_hash, e.log_index, e.block_number, e.name, args_to_json(e.args), e.tx_hash
        )
        for e in logs
    ]


def events_between(
    *, session: Session, after: int, upto: int, names: Sequence[str]
) -> Sequence[Row[tuple[bytes, int, int, str, dict[str, Any], bytes]]]:
    """(block_hash, log_index, block_number, event, args, tx_hash) of the `names` events in blocks
    (after, upto], in chain order — plain rows, no ORM objects (one chunk holds thousands)."""
    return session.execute(
        select(
            ChainEvent.block_hash,
            ChainEvent.log_index,
            ChainEvent.block_number,
            ChainEvent.event,
            ChainEvent.args,
            ChainEvent.tx_hash,
        )
        .where(
            ChainEvent.block_number > after,
            ChainEvent.block_number <= upto,
            ChainEvent.event.in_(list(names)),
        )
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).all()


def insert_new(
    *,
    session: Session,
    table: TableClause,
    rows: Sequence[Mapping[str, Any]],
    key: str | tuple[str, ...],
    fresh: bool = False,
) -> set[Any]:
    """`INSERT … ON CONFLICT (key) DO NOTHING` of every row in one statement; returns the keys
    actually inserted (a value, or a tuple for a composite key), so that the caller applies
    side effects — balance deltas — for new rows only.

    PostgreSQL: one array per column through `unnest` (`_unnest`), a statement of a few
    parameters whatever the number of rows; elsewhere an executemany, sent as multi-row VALUES
    by SQLAlchemy's insertmanyvalues. `fresh`: the caller has checked that no row of these
    can exist yet (`nothing_above`), so PostgreSQL gets a binary COPY instead — about a third
    of the cost per row, and every row is new.
    """
    if not rows:
        return set()
    names = (key,) if isinstance(key, str) else key
    if session.get_bind().dialect.name == "postgresql":
        if fresh:
            _copy(session, table, rows)
            if isinstance(key, str):
                return {r[key] for r in rows}
            return {tuple(r[n] for n in names) for r in rows}
        sql, params = _unnest(session, table, rows)
        keys = ", ".join(names)
        result = session.connection().exec_driver_sql(
            f"{sql} ON CONFLICT ({keys}) DO NOTHING RETURNING {keys}", params
        )
        found = result.all()
    else:
        stmt = (
            _dialect_insert(session, table)
            .on_conflict_do_nothing(index_elements=list(names))
            .returning(*(table.c[n] for n in names))
        )
        found = session.execute(stmt, list(rows)).all()
    if isinstance(key, str):
        return {r[0] for r in found}
    return {tuple(r) for r in found}


def nothing_above(
    *, session: Session, table: TableClause, number: int, where: Mapping[str, Sequence[str]]
) -> bool:
    """No row of `table` has `block_number > number` (among rows whose `where` columns hold
    one of the listed values). An index probe: `block_number` is indexed in chain_events and
    indexer_commands, and leads after `status` in deposits (list every status).

    Rows above the head cursor exist only after a re-sync or a reorg (credited and orphaned
    deposits are kept as history); a backfill chunk above an empty range can be COPYed.
    """
    c = table.c
    q = select(c.block_number).where(c.block_number > number)
    for name, values in where.items():
        q = q.where(c[name].in_(list(values)))
    return session.execute(q.limit(1)).first() is None


def _copy(session: Session, table: TableClause, rows: Sequence[Mapping[str, Any]]) -> None:
    """Binary `COPY table FROM STDIN` of `rows` (PostgreSQL), every value through its column
    type's bind processor, as `_unnest` does."""
    dialect = session.get_bind().dialect
    names = list(rows[0])
    types = [_array_type(table, name, dialect) for name in names]
    columns = [[row[name] for row in rows] for name in names]
    for n, (sql_type, process) in enumerate(types):
        if process is not None:
            columns[n] = [process(v) for v in columns[n]]
        if sql_type == "JSONB":  # a str (already serialised) is sent as is, not re-encoded
            columns[n] = [Jsonb(v, dumps=str) if isinstance(v, str) else v for v in columns[n]]
    quote = dialect.identifier_preparer.quote
    columns_sql = ", ".join(quote(n) for n in names)
    sql = f"COPY {quote(table.name)} ({columns_sql}) FROM STDIN (FORMAT BINARY)"
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types([_copy_type(sql_type) for sql_type, _ in types])
        for values in zip(*columns, strict=True):
            copy.write_row(values)


def _copy_type(sql_type: str) -> str:
    """psycopg's name of a compiled column type: `VARCHAR(42)` → `varchar`, `NUMERIC(78, 0)` →
    `numeric`."""
    return sql_type.split("(", 1)[0].strip().lower()


def upsert_balances(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """`chain_balances` rows (trader, token, amount, block_number) written as given (one row
    per (trader, token))."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        sql, params = _unnest(session, BALANCES, rows)
        session.connection().exec_driver_sql(
            f"{sql} ON CONFLICT (trader, token) DO UPDATE SET amount = excluded.amount, "
            "block_number = excluded.block_number",
            params,
        )
        return
    stmt = _dialect_insert(session, BALANCES)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["trader", "token"],
            set_={"amount": stmt.excluded.amount, "block_number": stmt.excluded.block_number},
        ),
        list(rows),
    )


def mark_commands_done(*, session: Session, results: Sequence[tuple[int, int, str]]) -> None:
    """`indexer_commands` rows `(id, engine seq, outcome)` → `done` with that seq and outcome:
    one `UPDATE … FROM unnest(…)` on PostgreSQL, an executemany elsewhere."""
    if not results:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(
            "UPDATE indexer_commands AS c SET status = 'done', engine_seq = v.seq, "
            "outcome = v.code, updated_at = now() "
            "FROM unnest(%(ids)b::bigint[], %(seqs)b::bigint[], %(codes)b::text[]) "
            "AS v(id, seq, code) WHERE c.id = v.id",
            {
                "ids": [i for i, _, _ in results],
                "seqs": [seq for _, seq, _ in results],
                "codes": [code for _, _, code in results],
            },
        )
        return
    session.execute(
        update(COMMANDS)
        .where(COMMANDS.c.id == bindparam("row_id"))
        .values(
            status="done",
            engine_seq=bindparam("seq"),
            outcome=bindparam("code"),
            updated_at=func.now(),
        ),
        [{"row_id": i, "seq": seq, "code": code} for i, seq, code in results],
    )


def set_command_status(
    *, session: Session, ids: Sequence[int], status: str, where_status: str | None = None
) -> None:
    """`indexer_commands` rows `ids` → `status` (only those in `where_status`, if given):
    one `id = ANY(array)` statement on PostgreSQL, bounded IN lists elsewhere."""
    if not ids:
        return
    c = COMMANDS.c
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(
            "UPDATE indexer_commands SET status = %(new)s, updated_at = now() "
            "WHERE id = ANY(%(ids)b::bigint[]) "
            "AND (%(old)s::text IS NULL OR status = %(old)s::text)",
            {"new": status, "old": where_status, "ids": list(ids)},
        )
        return
    for part in range(0, len(ids), 500):  # bounded IN lists (SQLite's variable limit)
        stmt = update(COMMANDS).where(c.id.in_(list(ids[part : part + 500])))
        if where_status is not None:
            stmt = stmt.where(c.status == where_status)
        session.execute(stmt.values(status=status, updated_at=func.now()))


def credit_deposits(*, session: Session, command_ids: Sequence[int]) -> None:
    """The `seen` deposits of the `credit` commands `command_ids` (recorded `done` with their
    seq) → `credited` with that seq: one join on PostgreSQL, bounded IN lists elsewhere."""
    if not command_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(
            "UPDATE deposits AS d SET status = %(credited)s, credited_seq = c.engine_seq, "
            "updated_at = now() FROM indexer_commands AS c "
            "WHERE c.id = ANY(%(ids)b::bigint[]) AND c.kind = 'credit' "
            "AND d.block_hash = c.block_hash AND d.log_index = c.log_index "
            "AND d.status = %(seen)s",
            {
                "credited": DepositStatus.CREDITED.value,
                "seen": DepositStatus.SEEN.value,
                "ids": list(command_ids),
            },
        )
        return
    for part in range(0, len(command_ids), 500):
        ids = list(command_ids[part : part + 500])
        session.execute(
            update(Deposit)
            .where(
                Deposit.block_hash == IndexerCommand.block_hash,
                Deposit.log_index == IndexerCommand.log_index,
                IndexerCommand.id.in_(ids),
                IndexerCommand.kind == "credit",
                Deposit.status == DepositStatus.SEEN,
            )
            .values(status=DepositStatus.CREDITED, credited_seq=IndexerCommand.engine_seq)
            .execution_options(synchronize_session=False)
        )


_ARRAY_TYPES: dict[tuple[str, str], tuple[str, Any]] = {}


def _unnest(
    session: Session, table: TableClause, rows: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, list[Any]]]:
    """`INSERT INTO table (cols) SELECT * FROM unnest(%(c0)b::type[], …)` and its parameters:
    one list per column of `rows[0]`, every value through the column type's bind processor
    (the same validation — EIP-55, exact byte lengths, uint256 range — as a Core insert)."""
    dialect = session.get_bind().dialect
    names = list(rows[0])
    params: dict[str, list[Any]] = {}
    casts: list[str] = []
    for n, name in enumerate(names):
        sql_type, process = _array_type(table, name, dialect)
        values = [row[name] for row in rows]
        params[f"c{n}"] = values if process is None else [process(v) for v in values]
        casts.append(f"%(c{n})b::{sql_type}[]")  # binary: no text escaping
    quote = dialect.identifier_preparer.quote  # names are the table's columns (_array_type)
    columns = ", ".join(quote(name) for name in names)
    into = f"INSERT INTO {quote(table.name)} ({columns})"
    sql = f"{into} SELECT * FROM unnest({', '.join(casts)})"  # noqa: S608 (quoted identifiers)
    return sql, params


def _array_type(table: TableClause, name: str, dialect: Dialect) -> tuple[str, Any]:
    """(SQL element type, bind processor or None) of `table.name` — cached per column."""
    cache_key = (table.name, name)
    hit = _ARRAY_TYPES.get(cache_key)
    if hit is None:
        typ = table.c[name].type
        hit = (typ.compile(dialect=dialect), typ.dialect_impl(dialect).bind_processor(dialect))
        _ARRAY_TYPES[cache_key] = hit
    return hit
