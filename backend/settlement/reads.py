"""Reads of the settlement tables shared by the worker's feed and the API."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import SettlementTransaction


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
