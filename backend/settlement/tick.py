"""One settlement tick: observe the backlog, follow transactions, form and send batches.

The same function drives the Celery beat task and `hybridex dev`'s in-process loop; senders
are passed in so that Celery enqueues (after commit) and dev calls directly. A tick forms and
sends batch after batch while the sender accepts them (a sender that answers anything but
`"submitted"` — an enqueued task, `in_flight_full`, … — ends the loop), so a burst of fills
leaves in several batches at once, up to `max_in_flight_txs` transactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from backend import tracing
from backend.db.models import (
    Fill,
    FillSettlement,
    Market,
    SettlementBatch,
    Withdrawal,
    WithdrawalSettlement,
)
from backend.domain.errors import RetryableError
from backend.domain.types import BatchStatus, FillStatus, WithdrawalStatus
from backend.settlement import metrics
from backend.settlement.batcher import form_batch
from backend.settlement.context import SettlementContext
from backend.settlement.fill_reverts import send_reverts
from backend.settlement.monitor import follow_up
from backend.settlement.reads import claimed_floor, unclaimed
from backend.settlement.releases import send_releases
from backend.settlement.revert import rpc_guard

log = structlog.get_logger("backend.settlement")

MAX_WITHDRAWALS_PER_TICK = 50
UNSETTLED = (FillStatus.MATCHED, FillStatus.SUBMITTED)
SUBMITTED = "submitted"


@dataclass
class TickResult:
    followed: dict[str, int] = field(default_factory=dict)
    formed: list[int] = field(default_factory=list)
    sent_batches: list[int] = field(default_factory=list)
    send_withdrawals: list[int] = field(default_factory=list)
    released: int = 0
    """Failed withdrawals whose funds the engine released this tick."""
    reverted: int = 0
    """Failed fills the engine undid this tick."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Fills neither settled nor failed (unclaimed, `matched` or `submitted`)."""

    oldest: datetime | None
    exposure: dict[str, int]
    """Token → base units moving in those fills (base token: amount; quote token: quote)."""


def unsettled_backlog(session: Session) -> Backlog:
    """Two bounded reads instead of one over every fill ever matched: the unclaimed fills
    (above `claimed_floor`) and the claimed ones still `matched` / `submitted` (by status)."""
    # Both reads from one snapshot: under READ COMMITTED a batch claiming fills between them
    # made those fills count twice (unclaimed in the first read, claimed in the second).
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    parts: list[tuple[bool, list[ColumnElement[bool]]]] = [
        (False, unclaimed(claimed_floor(session))),
        (True, [FillSettlement.status.in_(UNSETTLED)]),
    ]
    exposure: dict[str, int] = defaultdict(int)
    oldest: datetime | None = None
    for claimed, where in parts:
        if session.get_bind().dialect.name == "postgresql":
            q = select(
                Market.base_token,
                Market.quote_token,
                func.min(Fill.created_at),
                func.sum(Fill.amount),
                func.sum(Fill.quote_amount),
            ).group_by(Market.base_token, Market.quote_token)
        else:  # SQLite keeps U256 as text: its sum() would go through floats, so add exactly here
            q = select(
                Market.base_token,
                Market.quote_token,
                Fill.created_at,
                Fill.amount,
                Fill.quote_amount,
            )
        q = q.select_from(Fill).join(Market, Market.id == Fill.market_id)
        on_claim = FillSettlement.fill_id == Fill.id
        q = q.join(FillSettlement, on_claim) if claimed else q.outerjoin(FillSettlement, on_claim)
        q = q.where(*where)
        for base, quote, first, amount, quote_amount in session.execute(q).all():
            exposure[base] += int(amount)
            exposure[quote] += int(quote_amount)
            oldest = first if oldest is None else min(oldest, first)
    return Backlog(oldest=oldest, exposure=dict(exposure))


def observe_backlog(ctx: SettlementContext, *, now: datetime | None = None) -> Backlog:
    """Sets the backlog gauges from the database (no node call: they keep moving while the
    node is down — which is when `oldest_unsettled_seconds` must alert)."""
    with ctx.factory() as session:
        backlog = unsettled_backlog(session)
    now = now or datetime.now(UTC)
    age = 0.0 if backlog.oldest is None else max(0.0, (now - backlog.oldest).total_seconds())
    metrics.OLDEST_UNSETTLED.set(age)
    metrics.set_exposure(backlog.exposure)
    return backlog


def observe_operator_balance(ctx: SettlementContext) -> int | None:
    """Sets the operator's ETH balance gauge; a node that does not answer leaves it as it was
    (the indexer's and the sender's alerts already say the node is down)."""
    metrics.OPERATOR_BALANCE_ALERT.set(ctx.settings.operator_balance_alert_wei)
    try:
        with rpc_guard("eth_getBalance"):
            balance = int(ctx.w3.eth.get_balance(ctx.sender))
    except RetryableError as exc:
        log.warning("operator_balance_unread", error=str(exc))
        return None
    metrics.OPERATOR_BALANCE.set(balance)
    return balance


def lowest_pending_batch(ctx: SettlementContext) -> int | None:
    with ctx.factory() as session:
        return session.scalar(
            select(SettlementBatch.batch_id)
            .where(SettlementBatch.status == BatchStatus.PENDING)
            .order_by(SettlementBatch.batch_id)
            .limit(1)
        )


def next_batch(ctx: SettlementContext) -> int | None:
    """Forms a batch if one is due, and names the lowest `pending` one (the one to send)."""
    form_batch(ctx)
    return lowest_pending_batch(ctx)


def due_withdrawals(ctx: SettlementContext) -> list[int]:
    """Reserved withdrawals not yet submitted."""
    with ctx.factory() as session:
        return list(
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


def run_tick(
    ctx: SettlementContext,
    send_batch: Callable[[int], object],
    send_withdrawal: Callable[[int], object],
) -> TickResult:
    with tracing.tracer().start_as_current_span("settlement tick") as span:
        result = _tick(ctx, send_batch, send_withdrawal)
        span.set_attribute("hybridex.batches_sent", len(result.sent_batches))
        span.set_attribute("hybridex.withdrawals_sent", len(result.send_withdrawals))
    return result


def _tick(
    ctx: SettlementContext,
    send_batch: Callable[[int], object],
    send_withdrawal: Callable[[int], object],
) -> TickResult:
    result = TickResult()
    metrics.LAST_TICK.set_to_current_time()
    observe_backlog(ctx)
    observe_operator_balance(ctx)
    result.followed = follow_up(ctx)
    for _ in range(ctx.settings.max_in_flight_txs):
        formed = form_batch(ctx)
        if formed is not None:
            result.formed.append(formed)
        batch_id = lowest_pending_batch(ctx)
        if batch_id is None:
            break
        result.sent_batches.append(batch_id)
        if send_batch(batch_id) != SUBMITTED:
            break
    result.send_withdrawals = due_withdrawals(ctx)
    for wid in result.send_withdrawals:
        send_withdrawal(wid)
    result.released = send_releases(ctx.factory, ctx.engine)
    result.reverted = send_reverts(ctx.factory, ctx.engine)
    return result
