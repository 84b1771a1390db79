"""One consistent read of everything reconciliation needs from the database.

The read is a single snapshot (REPEATABLE READ on PostgreSQL, one read transaction on SQLite),
so the engine's ledger, its fills and the indexer's outbox are all as of the same moment:
the persister writes balances, fills and its cursor in one transaction, the indexer its
commands and its confirmed cursor in another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from backend.db import chain_facts
from backend.db.models import (
    Balance,
    ChainBalance,
    ChainEvent,
    EngineCursor,
    Fill,
    FillRevert,
    FillSettlement,
    IndexerCursor,
    Market,
    SettlementBatch,
)
from backend.db.models.indexer import IndexerCommand
from backend.domain.types import FillStatus
from backend.engine.persister import CURSOR_NAME as PERSISTER_CURSOR
from backend.settlement.reads import claimed_floor, unclaimed

CONFIRMED_CURSOR = "exchange:confirmed"  # indexer.store.CONFIRMED_CURSOR
EFFECT_SIGN = {"credit": 1, "debit": -1, "exit_debit": -1, "reverse_credit": -1, "reverse_debit": 1}
"""What each balance command of the indexer's outbox does to the engine's ledger."""
IN_FLIGHT = ("pending", "submitted")
APPLIED = ("applied", "orphaned:applied")

Pair = tuple[str, str]  # (trader, token)


@dataclass(frozen=True, slots=True)
class ChainEffect:
    """A confirmed on-chain deposit or withdrawal the ledger does not hold (yet, or ever)."""

    command_id: int
    kind: str
    trader: str
    token: str
    delta: int
    """Its signed effect on the engine's ledger once applied."""
    block_number: int
    outcome: str | None
    """None while in flight; the engine's refusal code once refused."""
    unanswered: bool = False
    """In flight with no engine answer recorded: the engine may have applied it, and the
    persister stored it, before the indexer records the answer."""


@dataclass(frozen=True, slots=True)
class UnsettledFill:
    fill_id: int
    seq: int
    status: FillStatus
    failure_reason: str | None
    deltas: list[tuple[str, str, int]]


@dataclass(frozen=True, slots=True)
class BatchCheck:
    """A `BatchSettled` event at or below the block, beside what the worker recorded."""

    batch_id: int
    block_number: int
    chain_fill_count: int
    chain_fills_hash: bytes
    recorded_fill_count: int | None
    """Fills the worker's batch holds that did not fail; None: no such batch recorded."""
    recorded_fills_hash: bytes | None


@dataclass
class LedgerView:
    block: int
    """The indexer's confirmed height: every Exchange event at or below it has its command."""
    persister_seq: int
    fee_recipient: str | None
    ledger: dict[Pair, int] = field(default_factory=dict)
    """The engine's `total` (available + locked) per (trader, token)."""
    chain_holders: set[Pair] = field(default_factory=set)
    """Every pair the indexer saw hold a balance in the contract."""
    in_flight: list[ChainEffect] = field(default_factory=list)
    refused: list[ChainEffect] = field(default_factory=list)
    unsettled: list[UnsettledFill] = field(default_factory=list)
    """Fills the ledger holds that the chain had not applied at `block` (batch above it)."""
    failed: list[UnsettledFill] = field(default_factory=list)
    """Fills the ledger holds that the chain refused, with nothing compensating them."""
    reverted: int = 0
    """Failed fills the ledger no longer holds: their RevertFill is persisted."""
    tokens: set[str] = field(default_factory=set)
    batches: list[BatchCheck] = field(default_factory=list)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session over one snapshot of the database."""
    with engine.connect() as raw:
        conn = raw
        if engine.dialect.name == "postgresql":
            conn = raw.execution_options(isolation_level="REPEATABLE READ")
            conn.begin()
        else:
            # pysqlite runs a SELECT outside any transaction: BEGIN makes the reads one snapshot.
            conn.exec_driver_sql("BEGIN")
        try:
            with Session(bind=conn) as session:
                yield session
        finally:
            conn.rollback()


def confirmed_block(session: Session) -> int | None:
    cursor = session.get(IndexerCursor, CONFIRMED_CURSOR)
    return None if cursor is None else int(cursor.block_number)


def read_balance_rows(session: Session) -> tuple[int, dict[Pair, tuple[int, int, int]]]:
    """(persister cursor, (total, locked, updated_seq) per (trader, token)): what the live
    engine's ledger is compared with."""
    seq = session.scalar(select(EngineCursor.seq).where(EngineCursor.name == PERSISTER_CURSOR))
    rows = session.execute(select(Balance.trader, Balance.token, Balance.total, Balance.locked,
                                  Balance.updated_seq))  # fmt: skip
    return int(seq or 0), {(t, k): (int(v), int(lk), int(u)) for t, k, v, lk, u in rows}


def read_ledger(
    session: Session,
    *,
    block: int,
    last_batch_at: Callable[[int], int],
    fallback_fee_recipient: str | None,
) -> LedgerView:
    """Everything as of this snapshot; `last_batch_at(block)` is the contract's `lastBatchId`
    at `block`, so a batch the chain applied but the worker has not recorded yet is settled."""
    seq = session.scalar(select(EngineCursor.seq).where(EngineCursor.name == PERSISTER_CURSOR))
    recipient = chain_facts.fee_recipient(session) or fallback_fee_recipient
    view = LedgerView(block=block, persister_seq=int(seq or 0), fee_recipient=recipient)
    for b in session.scalars(select(Balance)):
        view.ledger[(b.trader, b.token)] = int(b.total)
    view.chain_holders = {
        (c.trader, c.token)
        for c in session.scalars(select(ChainBalance).where(ChainBalance.amount > 0))
    }
    view.tokens = {m.base_token for m in session.scalars(select(Market))} | {
        m.quote_token for m in session.scalars(select(Market))
    }
    _read_outbox(session, view)
    _read_fills(session, view, last_batch_at(block))
    _read_batches(session, view)
    return view


def _read_batches(session: Session, view: LedgerView) -> None:
    """Every settled batch on chain up to the block: its fill count and `fillsHash` against
    the batch the worker signed (only those the worker has not yet reconciled would be cheap
    to read, but a mismatch must never hide behind an earlier "settled")."""
    events = session.execute(
        select(ChainEvent.block_number, ChainEvent.args)
        .where(ChainEvent.event == "BatchSettled", ChainEvent.block_number <= view.block)
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).all()
    ids = [int(args["batchId"]) for _, args in events]
    recorded = {
        b.batch_id: b.fills_hash
        for b in session.scalars(select(SettlementBatch).where(SettlementBatch.batch_id.in_(ids)))
    }
    counts = dict(
        session.execute(
            select(FillSettlement.batch_id, func.count())
            .where(
                FillSettlement.batch_id.in_(ids),
                # a fill the chain skipped was sent in the batch (its fillsHash counts it)
                or_(FillSettlement.status != FillStatus.FAILED, FillSettlement.skipped_on_chain),
            )
            .group_by(FillSettlement.batch_id)
        ).all()
    )
    for block_number, args in events:
        batch_id = int(args["batchId"])
        known = batch_id in recorded
        fills_hash = recorded.get(batch_id)
        view.batches.append(
            BatchCheck(
                batch_id=batch_id,
                block_number=block_number,
                chain_fill_count=int(args["fillCount"]),
                chain_fills_hash=bytes.fromhex(str(args["fillsHash"]).removeprefix("0x")),
                recorded_fill_count=int(counts.get(batch_id, 0)) if known else None,
                recorded_fills_hash=None if fills_hash is None else bytes(fills_hash),
            )
        )


def _read_outbox(session: Session, view: LedgerView) -> None:
    """Balance commands the ledger does not reflect: in flight (not answered, or answered
    after the persister's cursor) and refused for good (not orphaned since)."""
    rows = session.scalars(
        select(IndexerCommand)
        .where(
            IndexerCommand.kind.in_(list(EFFECT_SIGN)),
            or_(
                IndexerCommand.status.in_(IN_FLIGHT),
                IndexerCommand.engine_seq > view.persister_seq,
                ~IndexerCommand.outcome.in_(APPLIED),
            ),
            IndexerCommand.status != "cancelled",
        )
        .order_by(IndexerCommand.id)
    )
    for row in rows:
        outcome = row.outcome
        if outcome is not None and outcome.startswith("orphaned"):
            continue  # neither the chain nor the ledger holds it
        c = row.command
        effect = ChainEffect(
            command_id=row.id,
            kind=row.kind,
            trader=c["trader"],
            token=c["token"],
            delta=EFFECT_SIGN[row.kind] * int(c["amount"]),
            block_number=row.block_number,
            outcome=None if row.status in IN_FLIGHT or outcome in APPLIED else outcome,
            unanswered=row.status in IN_FLIGHT,
        )
        (view.in_flight if effect.outcome is None else view.refused).append(effect)


def _read_fills(session: Session, view: LedgerView, last_batch: int) -> None:
    """Fills not applied on chain at `view.block`: unclaimed ones (bounded by the claimed
    floor, as the worker reads them), claimed ones in a batch above `last_batch`, and failed
    ones."""
    fs = FillSettlement
    base = select(Fill, Market.base_token, Market.quote_token, fs.status, fs.failure_reason).join(
        Market, Market.id == Fill.market_id
    )
    reads = [
        base.outerjoin(fs, fs.fill_id == Fill.id).where(*unclaimed(claimed_floor(session))),
        base.join(fs, fs.fill_id == Fill.id).where(
            or_(fs.batch_id > last_batch, fs.status == FillStatus.FAILED)
        ),
    ]
    # A failed fill whose revert the engine answered at or below the persister's cursor is
    # out of the ledger (a refusal as "already reverted" comes after the revert itself).
    done = {
        fill_id
        for fill_id, seq in session.execute(
            select(FillRevert.fill_id, FillRevert.engine_seq).where(
                FillRevert.status == "done",
                FillRevert.outcome.in_(("applied", "FILL_ALREADY_REVERTED")),
            )
        )
        if seq is not None and seq <= view.persister_seq
    }
    for read in reads:
        for fill, base_token, quote_token, status, reason in session.execute(read):
            if fill.id in done:
                view.reverted += 1
                continue
            item = UnsettledFill(
                fill_id=fill.id,
                seq=fill.seq,
                status=FillStatus.MATCHED if status is None else status,
                failure_reason=reason,
                deltas=fill.balance_deltas(base_token, quote_token, view.fee_recipient),
            )
            (view.failed if item.status is FillStatus.FAILED else view.unsettled).append(item)
