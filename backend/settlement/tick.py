"""One settlement tick: follow transactions, form the next batch, say what to send.

The same function drives the Celery beat task and `hybridex dev`'s in-process loop; senders
are passed in so that Celery enqueues (after commit) and dev calls directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from backend.db.models import SettlementBatch, Withdrawal, WithdrawalSettlement
from backend.domain.types import BatchStatus, WithdrawalStatus
from backend.settlement.batcher import form_batch
from backend.settlement.context import SettlementContext
from backend.settlement.monitor import follow_up

MAX_WITHDRAWALS_PER_TICK = 50


@dataclass
class TickResult:
    followed: dict[str, int] = field(default_factory=dict)
    formed: int | None = None
    send_batch: int | None = None
    send_withdrawals: list[int] = field(default_factory=list)


def due_work(ctx: SettlementContext) -> tuple[int | None, list[int]]:
    """The lowest pending batch, and reserved withdrawals not yet submitted."""
    with ctx.factory() as session:
        batch_id = session.scalar(
            select(SettlementBatch.batch_id)
            .where(SettlementBatch.status == BatchStatus.PENDING)
            .order_by(SettlementBatch.batch_id)
            .limit(1)
        )
        withdrawals = list(
            session.scalars(
                select(Withdrawal.id)
                .outerjoin(
                    WithdrawalSettlement, WithdrawalSettlement.withdrawal_id == Withdrawal.id
                )
                .where(
                    Withdrawal.status == WithdrawalStatus.RESERVED,
                    WithdrawalSettlement.withdrawal_id.is_(None),
                )
                .order_by(Withdrawal.id)
                .limit(MAX_WITHDRAWALS_PER_TICK)
            )
        )
    return batch_id, withdrawals


def run_tick(
    ctx: SettlementContext,
    send_batch: Callable[[int], object],
    send_withdrawal: Callable[[int], object],
) -> TickResult:
    result = TickResult()
    result.followed = follow_up(ctx)
    result.formed = form_batch(ctx)
    result.send_batch, result.send_withdrawals = due_work(ctx)
    if result.send_batch is not None:
        send_batch(result.send_batch)
    for wid in result.send_withdrawals:
        send_withdrawal(wid)
    return result
