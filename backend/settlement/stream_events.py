"""The settlement worker's events of the stream (docs/events.md): each state change of a fill
(`submitted`, `settled`, `failed`, back to `matched`) and of a withdraw transaction, written to
the outbox in the unit of work that changes the state, and only when the stream is configured
(`settings.stream_url`).

Each call reads back the rows that are now in `state` (in the caller's transaction, after its
update), so a re-run of a step emits the same events again and the outbox drops the repeats by
id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from backend.db.models import Fill, FillSettlement, Withdrawal, WithdrawalSettlement
from backend.domain.types import FillStatus
from backend.settlement.context import SettlementContext
from backend.settlement.withdrawals import withdrawal_id_for
from backend.stream import events, outbox
from backend.stream.outbox import StreamEvent


def enabled(ctx: SettlementContext) -> bool:
    return ctx.settings.stream_url is not None


def fill_states(
    ctx: SettlementContext,
    session: Any,
    state: FillStatus,
    *,
    batch_id: int | None = None,
    fill_ids: Sequence[int] | None = None,
    tx_hash: bytes | None = None,
    block: int | None = None,
    attempt: bytes | None = None,
) -> None:
    """Events for the fills of `batch_id` (or `fill_ids`) that are now in `state`."""
    if not enabled(ctx):
        return
    query = (
        select(
            Fill.seq,
            Fill.fill_index,
            Fill.market_id,
            Fill.maker_trader,
            Fill.taker_trader,
            FillSettlement.batch_id,
            FillSettlement.failure_reason,
        )
        .join(Fill, Fill.id == FillSettlement.fill_id)
        .where(FillSettlement.status == state)
        .order_by(Fill.seq, Fill.fill_index)
    )
    if fill_ids is not None:
        if not fill_ids:
            return
        query = query.where(FillSettlement.fill_id.in_(list(fill_ids)))
    else:
        query = query.where(FillSettlement.batch_id == batch_id)
    out: list[StreamEvent] = []
    for r in session.execute(query):
        out.extend(
            events.fill_state(
                seq=r.seq,
                fill_index=r.fill_index,
                market_id=r.market_id,
                maker_trader=r.maker_trader,
                taker_trader=r.taker_trader,
                state=str(state),
                batch_id=r.batch_id,
                tx_hash=tx_hash,
                block=block,
                reason=r.failure_reason if state is FillStatus.FAILED else None,
                attempt=attempt,
            )
        )
    outbox.add(session, out)


def withdrawal_state(ctx: SettlementContext, session: Any, withdrawal_id: int) -> None:
    """The event of a withdrawal's settlement row as it now is."""
    if not enabled(ctx):
        return
    session.flush()
    row = session.execute(
        select(Withdrawal, WithdrawalSettlement)
        .join(WithdrawalSettlement, WithdrawalSettlement.withdrawal_id == Withdrawal.id)
        .where(Withdrawal.id == withdrawal_id)
    ).first()
    if row is None:
        return
    w, s = row
    event = events.withdrawal_settlement(
        withdrawal_id=withdrawal_id_for(w.trader, int(w.nonce)),
        trader=w.trader,
        token=w.token,
        amount=int(w.amount),
        status=str(s.status),
        tx_hash=s.tx_hash,
        block=s.block_number,
        reason=s.failure_reason,
    )
    outbox.add(session, [event])
