"""Read-only queries of the API (it writes no table). Each takes `session` first and returns
plain rows; arithmetic on amounts happens in Python (SQLite's encoding is text)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backend.db import chain_facts, models
from backend.domain.types import FillStatus, OrderStatus
from backend.settlement.reads import claimed_floor, latest_batch_transactions, unclaimed

NOT_SETTLED = (FillStatus.MATCHED, FillStatus.SUBMITTED, FillStatus.FAILED)
"""Claimed fills whose effect is not on chain (failed ones never will be: the ledgers differ)."""
MAX_WINDOW_FILLS = 100_000
"""Fills read to compute one ticker / candle range (a bound on work per request)."""


def order_by_hash(session: Session, order_hash: bytes) -> models.Order | None:
    return session.get(models.Order, order_hash)


def orders(
    session: Session,
    *,
    trader: str | None,
    market_id: str | None,
    status: OrderStatus | None,
    before_seq: int | None,
    limit: int,
) -> Sequence[models.Order]:
    q = select(models.Order)
    if trader is not None:
        q = q.where(models.Order.trader == trader)
    if market_id is not None:
        q = q.where(models.Order.market_id == market_id)
    if status is not None:
        q = q.where(models.Order.status == status)
    if before_seq is not None:
        q = q.where(models.Order.accepted_seq < before_seq)
    q = q.order_by(models.Order.accepted_seq.desc(), models.Order.order_hash).limit(limit)
    return session.scalars(q).all()


def taker_fills_of(session: Session, order_hash: bytes, seq: int) -> Sequence[models.Fill]:
    """The fills an order made as it arrived (those of the command that placed it)."""
    q = (
        select(models.Fill)
        .where(models.Fill.taker_order_hash == order_hash, models.Fill.seq == seq)
        .order_by(models.Fill.fill_index)
    )
    return session.scalars(q).all()


def recent_trades(
    session: Session, market_id: str, limit: int, before_id: int | None
) -> Sequence[models.Fill]:
    q = select(models.Fill).where(models.Fill.market_id == market_id)
    if before_id is not None:
        q = q.where(models.Fill.id < before_id)
    return session.scalars(q.order_by(models.Fill.id.desc()).limit(limit)).all()


def trades_between(
    session: Session, market_id: str, start: datetime, end: datetime
) -> Sequence[tuple[int, int, datetime]]:
    """(price, amount, time) of the market's fills in [start, end), oldest first."""
    q = (
        select(models.Fill.price, models.Fill.amount, models.Fill.created_at)
        .where(
            models.Fill.market_id == market_id,
            models.Fill.created_at >= start,
            models.Fill.created_at < end,
        )
        .order_by(models.Fill.id)
        .limit(MAX_WINDOW_FILLS)
    )
    return [(p, a, t) for p, a, t in session.execute(q)]


def last_trade(session: Session, market_id: str) -> models.Fill | None:
    q = select(models.Fill).where(models.Fill.market_id == market_id)
    return session.scalars(q.order_by(models.Fill.id.desc()).limit(1)).first()


AccountFill = tuple[
    models.Fill, models.FillSettlement | None, models.SettlementBatch | None, bytes | None
]
"""A fill, its settlement state, its batch, and the batch's latest broadcast transaction
(so a `submitted` fill already shows the hash to look for; a replacement changes it)."""


def account_fills(
    session: Session, trader: str, limit: int, before_id: int | None
) -> list[AccountFill]:
    q = (
        select(models.Fill, models.FillSettlement, models.SettlementBatch)
        .outerjoin(models.FillSettlement, models.FillSettlement.fill_id == models.Fill.id)
        .outerjoin(
            models.SettlementBatch,
            models.SettlementBatch.batch_id == models.FillSettlement.batch_id,
        )
        .where(or_(models.Fill.maker_trader == trader, models.Fill.taker_trader == trader))
    )
    if before_id is not None:
        q = q.where(models.Fill.id < before_id)
    q = q.order_by(models.Fill.id.desc()).limit(limit)
    rows = [(f, s, b) for f, s, b in session.execute(q)]
    in_flight = {b.batch_id for _, _, b in rows if b is not None and b.settled_tx_hash is None}
    latest = latest_batch_transactions(session, in_flight)
    return [(f, s, b, latest.get(b.batch_id) if b is not None else None) for f, s, b in rows]


def deposits(
    session: Session, trader: str, limit: int, before_id: int | None
) -> Sequence[models.Deposit]:
    q = select(models.Deposit).where(models.Deposit.trader == trader)
    if before_id is not None:
        q = q.where(models.Deposit.id < before_id)
    return session.scalars(q.order_by(models.Deposit.id.desc()).limit(limit)).all()


def indexed_head(session: Session) -> int | None:
    """The highest block the indexer has committed (its `exchange` cursor), if any."""
    row = session.get(models.IndexerCursor, "exchange")
    return None if row is None else row.block_number


def pending_settlement(
    session: Session, trader: str, *, fee_recipient: str | None = None
) -> dict[str, int]:
    """Per token, the net change that the trader's fills not yet settled on chain will make to
    their on-chain balance: what they receive (minus fees) less what they give. Signed. For
    the fee recipient (the contract's, as last indexed, else `fee_recipient`) the fees of
    every fill not yet settled count too.

    Two bounded reads, not a walk over every fill the trader ever made: the unclaimed fills
    (above the settlement's `claimed_floor`) and the claimed ones not `settled` (by status)."""
    recipient = chain_facts.fee_recipient(session) or fee_recipient
    f, fs = models.Fill, models.FillSettlement
    on_claim = fs.fill_id == f.id
    base = select(f, models.Market.base_token, models.Market.quote_token).join(
        models.Market, models.Market.id == f.market_id
    )
    reads = [
        base.outerjoin(fs, on_claim).where(*unclaimed(claimed_floor(session))),
        base.join(fs, on_claim).where(fs.status.in_(NOT_SETTLED)),
    ]
    out: dict[str, int] = {}
    for read in reads:
        q = (
            read
            if trader == recipient
            else read.where(or_(f.maker_trader == trader, f.taker_trader == trader))
        )
        for fill, base_token, quote_token in session.execute(q):
            for who, token, delta in fill.balance_deltas(base_token, quote_token, recipient):
                if who == trader:
                    out[token] = out.get(token, 0) + delta
    return out


def balances(
    session: Session, trader: str
) -> tuple[Sequence[models.Balance], Sequence[models.ChainBalance]]:
    engine_rows = session.scalars(
        select(models.Balance).where(models.Balance.trader == trader)
    ).all()
    chain_rows = session.scalars(
        select(models.ChainBalance).where(models.ChainBalance.trader == trader)
    ).all()
    return engine_rows, chain_rows


def tokens(session: Session) -> dict[str, models.Token]:
    return {t.address: t for t in session.scalars(select(models.Token))}
