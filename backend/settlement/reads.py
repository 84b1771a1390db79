"""Reads of the settlement tables shared by the worker's feed and the API."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import Session

from backend.db.models import Fill, FillSettlement, SettlementBatch, SettlementTransaction


def latest_batch_transactions(session: Session, batch_ids: Collection[int]) -> dict[int, bytes]:
    """batch id → hash of its newest transaction (a replacement supersedes the stuck one)."""
    if not batch_ids:
        return {}
    tx = SettlementTransaction
    latest: dict[int, bytes] = {}
    for batch_id, tx_hash in session.execute(
        select(tx.batch_id, tx.tx_hash).where(tx.batch_id.in_(batch_ids)).order_by(tx.id)
    ):
        if batch_id is not None:
            latest[batch_id] = bytes(tx_hash)  # ordered by id: the last one wins
    return latest


def claimed_floor(session: Session) -> tuple[int, int] | None:
    """`(seq, fill_index)` below which every fill is claimed, or None (look from the start).

    The newest batch that claimed fills took the first unclaimed ones in `(seq, fill_index)`
    order, so everything before its first fill was claimed then; claims are never removed and
    the engine persists fills in seq order, so it still is. Without this bound every tick's
    search for unclaimed fills walks every fill ever matched (~1 s a tick per million fills).
    A bound too low is only slower, never wrong.
    """
    newest = session.scalar(
        select(SettlementBatch.batch_id)
        .where(SettlementBatch.fill_count > 0)
        .order_by(SettlementBatch.batch_id.desc())
        .limit(1)
    )
    if newest is None:
        return None
    first = session.execute(
        select(Fill.seq, Fill.fill_index)
        .join(FillSettlement, FillSettlement.fill_id == Fill.id)
        .where(FillSettlement.batch_id == newest)
        .order_by(Fill.seq, Fill.fill_index)
        .limit(1)
    ).first()
    return None if first is None else (int(first[0]), int(first[1]))


def unclaimed(floor: tuple[int, int] | None) -> list[ColumnElement[bool]]:
    """WHERE terms of the unclaimed fills, given `claimed_floor` (outer join on the claims)."""
    terms: list[ColumnElement[bool]] = [FillSettlement.fill_id.is_(None)]
    if floor is not None:
        terms.append(tuple_(Fill.seq, Fill.fill_index) >= tuple_(*floor))
    return terms
