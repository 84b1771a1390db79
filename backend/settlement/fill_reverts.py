"""A fill the chain refused for good is undone in the engine: its `RevertFill`.

Settlement marks a fill `failed` when the contract's simulation refuses it for a reason of its
own (the trader exited or withdrew in between, a token transfer reverts, ...). The policy is
automatic: in the same unit of work the worker owes the revert (`owe_reverts`), and each tick
sends what is owed (`send_reverts`) through the engine, which journals it before answering.
The engine gives both sides back what they gave, takes back what they got, returns both fees
from the fee account, and offers still-open orders again for the reverted amount.

Reverts go latest fill first: when a trader already sold what a refused fill gave them, the
later fill fails on chain too, and must be undone first. Until then the engine refuses the
earlier revert (INSUFFICIENT_BALANCE, nothing changed); it stays `waiting` and is tried again
every tick, with a gauge and a log line, and reconcile lists the fill as `failed_fill`.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import Fill, FillRevert
from backend.db.session import insert_ignore, unit_of_work
from backend.domain.errors import DexError, ErrorCode
from backend.matching import events as ev
from backend.matching.commands import RevertFill
from backend.settlement import metrics
from backend.settlement.releases import EngineSubmit

log = structlog.get_logger(__name__)

PENDING, WAITING, DONE = "pending", "waiting", "done"
MAX_REVERTS_PER_TICK = 100
APPLIED = "applied"


def owe_reverts(session: Session, fill_ids: Sequence[int]) -> None:
    """Record, in the caller's unit of work, that these fills must be reverted."""
    if fill_ids:
        insert_ignore(
            session=session,
            target=FillRevert,
            rows=[{"fill_id": f, "status": PENDING, "attempts": 0} for f in fill_ids],
            conflict=["fill_id"],
        )


def revert_command(fill: Fill) -> RevertFill:
    return RevertFill(
        seq=0,
        now=0,
        fill_seq=int(fill.seq),
        fill_index=int(fill.fill_index),
        market_id=fill.market_id,
        maker_hash=bytes(fill.maker_order_hash),
        maker_trader=fill.maker_trader,
        taker_hash=bytes(fill.taker_order_hash),
        taker_trader=fill.taker_trader,
        taker_side=fill.taker_side,
        price=int(fill.price),
        amount=int(fill.amount),
        quote_amount=int(fill.quote_amount),
        maker_fee=int(fill.maker_fee),
        taker_fee=int(fill.taker_fee),
    )


def send_reverts(factory: sessionmaker[Session], engine: EngineSubmit | None) -> int:
    """Send every owed revert, latest fill first; returns how many the engine applied. An
    engine that cannot be reached leaves them owed for the next tick (a re-send is refused
    by the engine as FILL_ALREADY_REVERTED, which counts as done)."""
    with factory() as session:
        owed = (
            session.execute(
                select(Fill)
                .join(FillRevert, FillRevert.fill_id == Fill.id)
                .where(FillRevert.status != DONE)
                .order_by(Fill.seq.desc(), Fill.fill_index.desc())
                .limit(MAX_REVERTS_PER_TICK)
            )
            .scalars()
            .all()
        )
        session.expunge_all()
    if not owed:
        metrics.REVERTS_OWED.set(0)
        return 0
    if engine is None:
        metrics.REVERTS_OWED.set(len(owed))
        log.error("fill_reverts_owed_without_engine", owed=len(owed))
        return 0
    applied = waiting = 0
    for fill in owed:
        command = revert_command(fill)
        try:
            outcome = engine(command)
        except DexError as exc:  # unreachable, or no answer: owed still
            log.warning("fill_revert_not_sent", fill_id=fill.id, error=exc.message)
            waiting = len(owed) - applied
            break
        code, status = APPLIED, DONE
        for e in outcome.events:
            if isinstance(e, ev.CommandRejected):
                code = e.code.name
                # Not yet: a trader spent the proceeds; the later fills' reverts come first.
                status = WAITING if e.code is ErrorCode.INSUFFICIENT_BALANCE else DONE
        with unit_of_work(factory) as session:
            session.execute(
                update(FillRevert)
                .where(FillRevert.fill_id == fill.id)
                .values(
                    status=status,
                    engine_seq=outcome.seq,
                    outcome=code,
                    attempts=FillRevert.attempts + 1,
                )
            )
        if status == WAITING:
            waiting += 1
            log.warning("fill_revert_waiting", fill_id=fill.id, seq=fill.seq, outcome=code)
        elif code in (APPLIED, ErrorCode.FILL_ALREADY_REVERTED.name):
            applied += 1
            metrics.FILLS_REVERTED.inc()
            log.info("fill_reverted", fill_id=fill.id, seq=fill.seq, engine_seq=outcome.seq)
        else:  # the engine cannot undo it at all: the operator's (runbook: failed fills)
            log.error("fill_revert_refused", fill_id=fill.id, seq=fill.seq, outcome=code)
    metrics.REVERTS_OWED.set(waiting)
    return applied
