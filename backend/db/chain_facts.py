"""Facts about the Exchange read back from what the indexer recorded (`chain_events`)."""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from backend.db.models.indexer import ChainEvent

FEE_RECIPIENT_SET = "FeeRecipientSet"


def fee_recipient(session: Session, *, before: tuple[int, int] | None = None) -> str | None:
    """The contract's fee recipient after its latest `FeeRecipientSet` (strictly before
    `(block, log index)` when given), or None if the indexer has seen none there (it started
    after the deployment and every change of recipient)."""
    q = select(ChainEvent.args).where(ChainEvent.event == FEE_RECIPIENT_SET)
    if before is not None:
        q = q.where(tuple_(ChainEvent.block_number, ChainEvent.log_index) < before)
    args = session.scalar(
        q.order_by(ChainEvent.block_number.desc(), ChainEvent.log_index.desc()).limit(1)
    )
    return None if args is None else str(args["feeRecipient"])
