"""Celery tasks: thin, id-taking, idempotent. State lives in the database; each task re-reads
it and advances it by compare-and-set, so a duplicate or re-delivered message is harmless."""

from __future__ import annotations

from typing import Any

import structlog
from opentelemetry.trace import Span
from sqlalchemy import select

from backend import tracing
from backend.db.models import SettlementBatch, SettlementTransaction
from backend.domain.errors import RetryableError
from backend.settlement import sender
from backend.settlement.celery_app import app
from backend.settlement.context import SettlementContext, get_context
from backend.settlement.tick import next_batch, run_tick

log = structlog.get_logger(__name__)

RETRY_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (RetryableError,),
    "retry_backoff": 0.5,
    "retry_backoff_max": 10,
    "retry_jitter": True,
    "max_retries": 5,
}
SEND_EXPIRES_S = 60.0


@app.task(name="settlement.send_batch", **RETRY_OPTIONS)  # type: ignore[untyped-decorator]
def send_batch(batch_id: int) -> str:
    """Sends batch `batch_id`; once it is submitted (committed), enqueues the next due batch —
    the in-process tick's form-and-send loop, one task per batch."""
    ctx = get_context()
    with tracing.tracer().start_as_current_span("settlement send_batch") as span:
        span.set_attribute("hybridex.batch_id", int(batch_id))
        outcome = sender.send_batch(ctx, int(batch_id))
        span.set_attribute("hybridex.outcome", outcome)
        if tracing.enabled() and outcome == "submitted":
            _record_batch(ctx, int(batch_id), span)
    log.debug("task_send_batch", batch_id=batch_id, outcome=outcome)
    if outcome == "submitted":
        following = next_batch(ctx)
        if following is not None:
            send_batch.apply_async((following,), expires=SEND_EXPIRES_S)
    return outcome


def _record_batch(ctx: SettlementContext, batch_id: int, span: Span) -> None:
    """The submitted batch's fill count and transaction on its span (one read, traced only)."""
    with ctx.factory() as session:
        batch = session.get(SettlementBatch, batch_id)
        tx = session.scalar(
            select(SettlementTransaction.tx_hash)
            .where(SettlementTransaction.batch_id == batch_id)
            .order_by(SettlementTransaction.id.desc())
            .limit(1)
        )
    if batch is not None:
        span.set_attribute("hybridex.fill_count", batch.fill_count)
    if tx is not None:
        span.set_attribute("hybridex.tx_hash", "0x" + bytes(tx).hex())


@app.task(name="settlement.send_withdrawal", **RETRY_OPTIONS)  # type: ignore[untyped-decorator]
def send_withdrawal(withdrawal_id: int) -> str:
    return sender.send_withdrawal(get_context(), int(withdrawal_id))


@app.task(name="settlement.tick", **{**RETRY_OPTIONS, "max_retries": 0})  # type: ignore[untyped-decorator]
def tick() -> None:
    ctx = get_context()
    run_tick(
        ctx,
        lambda batch_id: send_batch.apply_async((batch_id,), expires=SEND_EXPIRES_S),
        lambda wid: send_withdrawal.apply_async((wid,), expires=SEND_EXPIRES_S),
    )
