"""Engine events → database rows, idempotently by command seq, off the hot path (SPEC §5).

The engine loop pushes each applied group; a background thread writes everything it has
queued in ONE transaction together with the `engine_cursors` row `persister`, so a restart
re-persists exactly the commands after the cursor (`EngineService` replays them from an older
snapshot if needed). The writes are idempotent anyway: orders by hash (state updates guarded
by `updated_seq`), fills insert-ignore by `(seq, fill_index)`, balances upserted with an
`updated_seq` guard, signed cancels / withdrawals / exits insert-ignore by their natural keys.

Decisions:
- Rejected orders are not stored: the engine keeps no trace of them (the same signed order may
  come back), a row would spend `(trader, nonce)`, and an unknown market would break the FK.
  Callers get the rejection in the `Outcome` and on the `orders:{address}` feed.
- Tokens and markets come from the journal too: `AddMarket` carries its tokens' symbol and
  decimals in its `Intake`. A balance in a token never listed gets a placeholder token row
  (symbol `UNKNOWN`, 18 decimals; replaced when a market lists it) rather than wedging the
  persister on a foreign key.
- A command without a signature in its intake (tests, operator commands) stores a zero
  signature.
- The event stream (docs/events.md): with `stream=True` the same pass that folds the rows
  builds the stream's events (one per engine event, stable ids `eng-<seq>-<index>`), written
  to the outbox in the same transaction (one COPY on PostgreSQL on a batch's first attempt,
  insert-ignore on a retry); without it, nothing.
- Cost: each table is one statement per transaction on PostgreSQL (`backend.db.bulk`: each
  column one array built and checked in one pass, `unnest`ed; an executemany elsewhere),
  statements built once per dialect, and a `WriteCache` (tokens known to exist, signed
  amounts of open orders) saves the placeholder insert and the amount read-back of most groups.
- A transaction starts at most every `MIN_WRITE_INTERVAL_S` (10 ms), taking every group
  applied meanwhile: at 800 commands/s that cut the engine process's CPU by ~30% and
  PostgreSQL's by ~40% a command against a transaction per group; the stored state lags the
  engine by that much more.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Dialect, Table, bindparam, create_engine, select
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from backend.db.bulk import UnnestInsert, UnnestUpdate
from backend.db.models import (
    Balance,
    EngineCursor,
    EngineSnapshot,
    Fill,
    Market,
    Order,
    SignedCancel,
    Token,
    TraderExit,
    Withdrawal,
)
from backend.db.session import (
    insert_ignore,
    insert_ignore_statement,
    session_factory,
    unit_of_work,
    upsert,
    upsert_statement,
)
from backend.domain.types import ZERO_ADDRESS, OrderStatus, WithdrawalStatus
from backend.eip712.messages import MAX_FEE_BPS
from backend.engine.client import Intake
from backend.engine.records import Applied
from backend.matching import events as ev
from backend.matching.commands import (
    AddMarket,
    CancelAll,
    CancelOrder,
    FreezeTrader,
    MarketSpec,
    PlaceOrder,
    ReserveWithdrawal,
)
from backend.stream import outbox
from backend.stream.events import engine_events
from backend.stream.outbox import StreamEvent

log = structlog.get_logger(__name__)

CURSOR_NAME = "persister"
NO_SIGNATURE = b"\x00" * 65
MAX_BATCH = 5_000
# Transactions start at most this often: below full load the engine commits small groups, and a
# transaction per group costs the engine process and PostgreSQL (its commit) far more per
# command than one every few groups. Acknowledgements never wait for the persister.
MIN_WRITE_INTERVAL_S = 0.01
LAG_WARNING = 50_000


def read_cursor(factory: sessionmaker[Session], name: str = CURSOR_NAME) -> int:
    with factory() as session:
        seq = session.scalar(select(EngineCursor.seq).where(EngineCursor.name == name))
    return int(seq or 0)


def record_snapshot(factory: sessionmaker[Session], seq: int, state_hash: str) -> None:
    """The snapshot's body lives in its file; the table records (seq, state_hash) for audits."""
    row = {"seq": seq, "state_hash": bytes.fromhex(state_hash), "payload": b""}
    with unit_of_work(factory) as session:
        insert_ignore(session=session, target=EngineSnapshot, rows=[row], conflict=["seq"])


def _market_row(spec: MarketSpec) -> dict[str, Any]:
    breaker = spec.breaker_move_bps > 0 and spec.breaker_window_s > 0
    return {
        "id": spec.market_id,
        "base_token": spec.base_token,
        "quote_token": spec.quote_token,
        "tick_size": spec.tick_size,
        "lot_size": spec.lot_size,
        "min_amount": spec.min_amount,
        "max_amount": spec.max_amount or None,
        "max_notional": spec.max_notional or None,
        "maker_fee_bps": spec.maker_fee_bps,
        "taker_fee_bps": spec.taker_fee_bps,
        "price_band_bps": spec.price_band_bps or None,
        "breaker_move_bps": spec.breaker_move_bps if breaker else None,
        "breaker_window_s": spec.breaker_window_s if breaker else None,
        "state": spec.state,
    }


class _Rows:
    """Everything one transaction writes, collected from a run of applied commands."""

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.events: list[StreamEvent] = []  # the stream's events, when `stream`
        self.tokens: dict[str, dict[str, Any]] = {}
        self.placeholder_tokens: set[str] = set()
        self.markets: dict[str, dict[str, Any]] = {}
        self.market_states: dict[str, Any] = {}
        self.orders: dict[bytes, dict[str, Any]] = {}
        self.order_updates: dict[bytes, tuple[OrderStatus, int, int]] = {}  # status, remaining
        self.closed_reverts: list[tuple[bytes, int, int]] = []  # hash, reverted amount, seq
        self.reopened: set[bytes] = set()  # orders a revert made whole again may read `open`
        self.fills: list[dict[str, Any]] = []
        self.balances: dict[tuple[str, str], dict[str, Any]] = {}
        self.cancels: dict[bytes, dict[str, Any]] = {}
        self.withdrawals: dict[bytes, dict[str, Any]] = {}
        self.exits: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, MarketSpec] = {}

    def add(self, item: Applied) -> None:
        command, intake, seq = item.command, item.intake, item.command.seq
        signature = (intake.signature if intake else None) or NO_SIGNATURE
        if self.stream:
            engine_events(seq, item.events, self.events)
        for e in item.events:
            if isinstance(e, ev.BalanceChanged):
                self.placeholder_tokens.add(e.token)
                self.balances[e.trader, e.token] = {
                    "trader": e.trader, "token": e.token, "total": e.total,
                    "locked": e.locked, "updated_seq": seq,
                }  # fmt: skip
            elif isinstance(e, ev.OrderAccepted):
                assert isinstance(command, PlaceOrder)
                self.orders[e.order_hash] = {
                    "order_hash": e.order_hash, "trader": e.trader, "market_id": e.market_id,
                    "side": e.side, "price": e.price, "amount": e.amount,
                    "time_in_force": e.time_in_force, "nonce": e.nonce, "expiry": e.expiry,
                    "signature": signature, "client_order_id": e.client_order_id,
                    "max_fee_bps": MAX_FEE_BPS if intake is None or intake.max_fee_bps is None
                    else intake.max_fee_bps,
                    "status": OrderStatus.OPEN, "filled": 0, "reject_code": None,
                    "accepted_seq": seq, "updated_seq": seq,
                }  # fmt: skip
            elif isinstance(e, ev.Fill):
                self.fills.append({
                    "seq": seq, "fill_index": e.fill_index, "market_id": e.market_id,
                    "maker_order_hash": e.maker_hash, "taker_order_hash": e.taker_hash,
                    "maker_trader": e.maker_trader, "taker_trader": e.taker_trader,
                    "taker_side": e.taker_side, "price": e.price, "amount": e.amount,
                    "quote_amount": e.quote_amount, "maker_fee": e.maker_fee,
                    "taker_fee": e.taker_fee,
                })  # fmt: skip
                for h, remaining in (
                    (e.maker_hash, e.maker_remaining),
                    (e.taker_hash, e.taker_remaining),
                ):
                    status = OrderStatus.PARTIALLY_FILLED if remaining else OrderStatus.FILLED
                    self.order_updates[h] = (status, remaining, seq)
            elif isinstance(e, ev.FillReverted):
                for h, left in (
                    (e.maker_hash, e.maker_remaining),
                    (e.taker_hash, e.taker_remaining),
                ):
                    if left is None:  # closed: its filled amount drops, read back later
                        self.closed_reverts.append((h, e.amount, seq))
                    else:  # open again for the reverted amount: filled = amount - remaining
                        self.order_updates[h] = (OrderStatus.PARTIALLY_FILLED, left, seq)
                        self.reopened.add(h)
            elif isinstance(e, ev.OrderCancelled):
                expired = e.reason is ev.CancelReason.EXPIRED
                status = OrderStatus.EXPIRED if expired else OrderStatus.CANCELLED
                self.order_updates[e.order_hash] = (status, e.remaining, seq)
            elif isinstance(e, ev.MarketAdded):
                assert isinstance(command, AddMarket)
                self.specs[e.market_id] = command.spec
                self.markets[e.market_id] = _market_row(command.spec)
                self.placeholder_tokens.update((command.spec.base_token, command.spec.quote_token))
            elif isinstance(e, ev.MarketStateChanged):
                self.market_states[e.market_id] = e.new
            elif isinstance(e, ev.WithdrawalReserved):
                self._withdrawal(item, WithdrawalStatus.RESERVED, None)
            elif isinstance(e, ev.CommandRejected) and isinstance(command, ReserveWithdrawal):
                self._withdrawal(item, WithdrawalStatus.REJECTED, e.code.name)
            elif isinstance(e, ev.TraderFrozen):
                block = intake.effective_block if intake and intake.effective_block else 0
                self.exits[e.trader] = {
                    "trader": e.trader, "effective_block": block, "frozen_seq": seq,
                }  # fmt: skip
        if intake is not None:
            for t in intake.tokens:
                self.tokens[t.address] = {
                    "address": t.address, "symbol": t.symbol, "decimals": t.decimals,
                }  # fmt: skip
            self._signed_cancel(item, intake)
        if isinstance(command, FreezeTrader):
            pass  # the exit row comes from the TraderFrozen event

    def _signed_cancel(self, item: Applied, intake: Intake) -> None:
        command = item.command
        if intake.signature is None or intake.signed_hash is None:
            return
        row: dict[str, Any] = {
            "cancel_hash": intake.signed_hash, "trader": None, "signature": intake.signature,
            "accepted_seq": command.seq, "order_hash": None, "base_token": None,
            "quote_token": None, "nonce_below": None,
        }  # fmt: skip
        if isinstance(command, CancelOrder):
            h = command.order_hash
            applied = any(
                isinstance(e, ev.OrderCancelled) and e.order_hash == h for e in item.events
            )
            row.update(kind="cancel", trader=command.trader, order_hash=h, effective=applied)
        elif isinstance(command, CancelAll):
            row.update(
                effective=any(type(e) is ev.CancelAllApplied for e in item.events),
                kind="cancel_all",
                trader=command.trader,
                base_token=intake.base_token or ZERO_ADDRESS,
                quote_token=intake.quote_token or ZERO_ADDRESS,
                nonce_below=command.nonce_below,
            )
        else:
            return
        self.cancels[intake.signed_hash] = row

    def _withdrawal(self, item: Applied, status: WithdrawalStatus, code: str | None) -> None:
        command, intake = item.command, item.intake
        assert isinstance(command, ReserveWithdrawal)
        if intake is None or intake.signed_hash is None:
            log.warning("withdrawal_without_intake", seq=command.seq)
            return
        self.placeholder_tokens.add(command.token)
        self.withdrawals[intake.signed_hash] = {
            "withdrawal_hash": intake.signed_hash, "trader": command.trader,
            "token": command.token, "amount": command.amount, "nonce": intake.nonce or 0,
            "expiry": intake.expiry or 0,
            "signature": intake.signature or NO_SIGNATURE, "status": status,
            "reject_code": code, "accepted_seq": command.seq,
        }  # fmt: skip


AMOUNT_CACHE_SIZE = 200_000


class WriteCache:
    """What one persister remembers between transactions to skip reads; never needed for
    correctness (a cold cache costs a query, not a wrong row).

    - `tokens`: addresses known to have a row (committed), so a group does not re-insert
      placeholders for tokens it merely touches. Added by `committed()` only.
    - `amounts`: order hash → signed amount (immutable: the hash commits to it), for `filled`
      of orders accepted in an earlier group; bounded, oldest first out, terminal ones dropped.
    """

    def __init__(self, max_amounts: int = AMOUNT_CACHE_SIZE) -> None:
        self.tokens: set[str] = set()
        self.amounts: dict[bytes, int] = {}
        self.max_amounts = max_amounts
        self._pending_tokens: set[str] = set()

    def remember(self, order_hash: bytes, amount: int) -> None:
        self.amounts[order_hash] = amount
        while len(self.amounts) > self.max_amounts:
            del self.amounts[next(iter(self.amounts))]

    def written_tokens(self, tokens: set[str]) -> None:
        """Tokens the current transaction makes sure exist (known once it commits)."""
        self._pending_tokens = tokens

    def committed(self) -> None:
        self.tokens |= self._pending_tokens
        self._pending_tokens = set()


_TERMINAL = frozenset((OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED))


class _Statements:
    """The persister's statements for one dialect, built once: on PostgreSQL one statement a
    table (`_unnest`), elsewhere (or with `bulk=False`) executemany without RETURNING."""

    # The tables written insert-or-ignore: (attribute, model, conflict key).
    _IGNORE: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
        ("markets", Market, ("id",)),
        ("orders", Order, ("order_hash",)),
        ("fills", Fill, ("seq", "fill_index")),
        ("cancels", SignedCancel, ("cancel_hash",)),
        ("withdrawals", Withdrawal, ("withdrawal_hash",)),
        ("exits", TraderExit, ("trader",)),
    )

    def __init__(self, session: Session, *, bulk: bool = True) -> None:
        self.markets: Any = None
        self.orders: Any = None
        self.fills: Any = None
        self.cancels: Any = None
        self.withdrawals: Any = None
        self.exits: Any = None
        for name, model, key in self._IGNORE:
            setattr(
                self, name, insert_ignore_statement(session=session, target=model, conflict=key)
            )
        self.balances: Any = upsert_statement(
            session=session,
            target=Balance,
            conflict=["trader", "token"],
            update=["total", "locked", "updated_seq"],
            where=lambda new: Balance.updated_seq < new.updated_seq,
        )
        self.cursor: Any = upsert_statement(
            session=session,
            target=EngineCursor,
            conflict=["name"],
            update=["seq"],
            where=lambda new: EngineCursor.seq < new.seq,
        )
        table = _table(Order)
        self.order_update: Any = (
            table.update()
            .where(table.c.order_hash == bindparam("b_hash"))
            .where(table.c.updated_seq < bindparam("b_seq"))
            .values(
                status=bindparam("b_status"),
                filled=bindparam("b_filled"),
                updated_seq=bindparam("b_seq"),
            )
        )
        dialect = session.get_bind().dialect
        if bulk and dialect.name == "postgresql":
            self._unnest(dialect)

    def _unnest(self, dialect: Dialect) -> None:
        """The same writes, one statement a table (`backend.db.bulk`): most of the persister's
        CPU and PostgreSQL's per command was the executemany's cost per row."""

        for name, model, key in self._IGNORE:
            setattr(self, name, UnnestInsert(dialect, _table(model), conflict=key))
        self.balances = UnnestInsert(
            dialect, _table(Balance), conflict=("trader", "token"),
            update=("total", "locked", "updated_seq"), guard="updated_seq",
        )  # fmt: skip
        self.cursor = UnnestInsert(
            dialect, _table(EngineCursor), conflict=("name",), update=("seq",), guard="seq"
        )
        self.order_update = UnnestUpdate(
            dialect, _table(Order), guard="updated_seq",
            params={"order_hash": "b_hash", "status": "b_status", "filled": "b_filled",
                    "updated_seq": "b_seq"},
        )  # fmt: skip


_STATEMENTS: dict[str, _Statements] = {}


def _statements(session: Session) -> _Statements:
    dialect = session.get_bind().dialect.name
    found = _STATEMENTS.get(dialect)
    if found is None:
        found = _STATEMENTS[dialect] = _Statements(session)
    return found


def _many(session: Session, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if isinstance(stmt, UnnestInsert | UnnestUpdate):
        stmt.execute(session, rows)
    else:
        session.execute(stmt, rows)


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def write_batch(
    session: Session,
    items: Sequence[Applied],
    *,
    cursor_name: str,
    cache: WriteCache | None = None,
    stream: bool = False,
    first_attempt: bool = False,
) -> int:
    """Write the rows of `items` (already filtered to seq > cursor) and advance the cursor.

    Rows are folded per key first (one row per order, balance, cancel… per transaction), then
    every table is one executemany of plain dicts (the driver's batch path; psycopg pipelines
    it). Call `cache.committed()` once the transaction has committed. With `stream`, the
    events of `items` go to the stream's outbox in the same transaction. `first_attempt`: no
    earlier try of these items can have committed (their events are new: the outbox's fast
    path); a retry after a failed commit, whose outcome is unknown, must pass False.
    """
    cache = cache if cache is not None else WriteCache()
    stmts = _statements(session)
    rows = _Rows(stream)
    for item in items:
        rows.add(item)
    if rows.tokens:
        upsert(session=session, target=Token, rows=list(rows.tokens.values()), conflict=["address"])
    missing = rows.placeholder_tokens - cache.tokens - set(rows.tokens)
    if missing:
        placeholders = [{"address": a, "symbol": "UNKNOWN", "decimals": 18} for a in missing]
        if insert_ignore(session=session, target=Token, rows=placeholders, conflict=["address"]):
            log.warning("persister_placeholder_tokens", tokens=sorted(missing))
    cache.written_tokens(rows.placeholder_tokens | set(rows.tokens))
    _many(session, stmts.markets, list(rows.markets.values()))
    market = _table(Market)
    for market_id, state in rows.market_states.items():
        session.execute(market.update().where(market.c.id == market_id).values(state=state))
    _write_orders(session, rows, stmts, cache)
    _write_closed_reverts(session, rows)
    _many(session, stmts.fills, rows.fills)
    _many(session, stmts.balances, list(rows.balances.values()))
    _many(session, stmts.cancels, list(rows.cancels.values()))
    _many(session, stmts.withdrawals, list(rows.withdrawals.values()))
    _many(session, stmts.exits, list(rows.exits.values()))
    outbox.add(session, rows.events, fresh=first_attempt)
    last = items[-1].command.seq
    _many(session, stmts.cursor, [{"name": cursor_name, "seq": last}])
    return last


def _write_orders(session: Session, rows: _Rows, stmts: _Statements, cache: WriteCache) -> None:
    # Fold updates of orders accepted in this batch into their insert rows.
    updates: list[tuple[bytes, OrderStatus, int, int]] = []
    for h, (status, remaining, seq) in rows.order_updates.items():
        row = rows.orders.get(h)
        if row is not None:
            whole = h in rows.reopened and remaining == row["amount"]  # a revert made it whole
            row.update(
                status=OrderStatus.OPEN if whole else status,
                filled=row["amount"] - remaining,
                updated_seq=seq,
            )
        else:
            updates.append((h, status, remaining, seq))
    for h, row in rows.orders.items():
        if row["status"] not in _TERMINAL:
            cache.remember(h, row["amount"])
    _many(session, stmts.orders, list(rows.orders.values()))
    if not updates:
        return
    # `filled` is computed in Python from the signed amount (cached, else read back): U256
    # arithmetic in SQL is not portable (SQLite stores it as text).
    amounts: dict[bytes, int] = {}
    unknown: list[bytes] = []
    for u in updates:
        known = cache.amounts.get(u[0])
        if known is None:
            unknown.append(u[0])
        else:
            amounts[u[0]] = known
    if unknown:
        query = select(Order.order_hash, Order.amount).where(Order.order_hash.in_(unknown))
        for order_hash, signed_amount in session.execute(query):
            amounts[order_hash] = signed_amount
            cache.remember(order_hash, signed_amount)
    params: list[dict[str, Any]] = []
    for h, status, remaining, seq in updates:
        amount = amounts.get(h)
        if amount is None:
            continue
        whole = h in rows.reopened and remaining == amount  # a revert made it whole again
        params.append({
            "b_hash": h, "b_status": OrderStatus.OPEN if whole else status,
            "b_filled": amount - remaining, "b_seq": seq,
        })  # fmt: skip
        if status in _TERMINAL:
            cache.amounts.pop(h, None)
    if len(params) < len(updates):
        log.error("persister_order_missing", missing=len(updates) - len(params))
    _many(session, stmts.order_update, params)


def _write_closed_reverts(session: Session, rows: _Rows) -> None:
    """A reverted fill of a closed order: its `filled` drops by the reverted amount, and an
    order that was `filled` is now closed short of its amount: `cancelled`. Rare, so read back."""
    if not rows.closed_reverts:
        return
    table = _table(Order)
    for h, amount, seq in rows.closed_reverts:
        row = session.execute(
            select(Order.filled, Order.status).where(Order.order_hash == h)
        ).first()
        if row is None:
            log.error("persister_order_missing", order_hash=h.hex())
            continue
        filled, status = int(row[0]), OrderStatus(row[1])
        session.execute(
            table.update()
            .where(table.c.order_hash == h, table.c.updated_seq < seq)
            .values(
                filled=max(filled - amount, 0),
                status=OrderStatus.CANCELLED if status is OrderStatus.FILLED else status,
                updated_seq=seq,
            )
        )


def _own_connection(factory: sessionmaker[Session]) -> tuple[sessionmaker[Session], Any]:
    """On PostgreSQL, sessions on a connection of the persister's own, without the pool's
    ping before each transaction and rollback after it: three round trips make a transaction
    (BEGIN with the first statement, the statements, COMMIT) rather than five, which at a
    transaction every 10 ms is most of the persister's cost below full load. A dead connection
    fails its transaction, which `_write` retries on a new one. Elsewhere `factory` itself.

    Every write here is addressed by key, so the connection refuses sequential scans
    (`enable_seqscan = off`): the statements are prepared after a few runs, and the generic
    plan made while a table was still small (a hash join over a full scan of `orders`) stays
    in use until an ANALYZE, each transaction then reading the whole table."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, SqlEngine) or bind.dialect.name != "postgresql":
        return factory, None
    own = create_engine(
        bind.url,
        pool_pre_ping=False,
        pool_reset_on_return=None,
        pool_size=1,
        max_overflow=0,
        connect_args={"options": f"{bind.url.query.get('options', '')} -c enable_seqscan=off"},
    )
    return session_factory(own), own


class DbPersister:
    """A background thread writing applied commands to the database (an `EventSink`)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        cursor_name: str = CURSOR_NAME,
        min_interval_s: float = MIN_WRITE_INTERVAL_S,
        stream: bool = False,
    ) -> None:
        self.factory, self._own = _own_connection(factory)
        self.min_interval_s = min_interval_s
        self.cursor_name = cursor_name
        self.stream = stream  # write the event stream's outbox too (settings.stream_url set)
        self.persisted = read_cursor(factory, cursor_name)
        self._cache = WriteCache()
        self.pushed = self.persisted
        self._queue: queue.Queue[list[Applied] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="engine-persister", daemon=True)
        self._thread.start()

    def cursor(self) -> int:
        return self.persisted

    @property
    def lag(self) -> int:
        """Commands applied but not yet stored."""
        return self.pushed - self.persisted

    def push(self, batch: list[Applied]) -> None:
        if batch:
            self.pushed = max(self.pushed, batch[-1].command.seq)
            self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._own is not None:
            self._own.dispose()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything pushed so far is stored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.persisted < self.pushed and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        stop = False
        last_write = 0.0
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            wait = last_write + self.min_interval_s - time.monotonic()
            if wait > 0:  # let the next groups join this transaction
                time.sleep(wait)
            last_write = time.monotonic()
            items = list(first)
            while len(items) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                items.extend(more)
            items = [i for i in items if i.command.seq > self.persisted]
            if items:
                self._write(items)

    def _write(self, items: list[Applied]) -> None:
        delay = 0.1
        attempt = 0
        while True:
            start = time.perf_counter()
            attempt += 1
            try:
                with unit_of_work(self.factory) as session:
                    last = write_batch(
                        session,
                        items,
                        cursor_name=self.cursor_name,
                        cache=self._cache,
                        stream=self.stream,
                        first_attempt=attempt == 1,
                    )
            except Exception:
                # Retry the same batch forever: skipping it would lose fills.
                log.exception("persister_write_failed", seq=items[-1].command.seq, retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._cache.committed()
            self.persisted = last
            lag = self.lag
            log.debug(
                "persister_batch",
                seq=last,
                commands=len(items),
                lag=lag,
                duration_ms=round((time.perf_counter() - start) * 1000, 1),
            )
            if lag > LAG_WARNING:
                log.warning("persister_lagging", seq=last, lag=lag)
            return
