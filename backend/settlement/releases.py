"""A withdrawal that failed for good gives its funds back: the engine's `ReleaseWithdrawal`.

A withdrawal fails for good when its simulation reverts for a reason of its own, when it
reverts on chain, or when another transaction of the operator key took its nonce. The worker
marks it `failed` and, in the same unit of work, owes the release (`owe_release`); each tick
sends what is owed (`send_releases`) through the engine, which journals the release before
answering. Without it the amount stayed locked until the trader used the exit hatch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db.models import Withdrawal, WithdrawalRelease
from backend.db.session import insert_ignore, unit_of_work
from backend.domain.errors import DexError
from backend.engine.client import Outcome
from backend.matching import events as ev
from backend.matching.commands import Command, ReleaseWithdrawal
from backend.settlement import metrics
from backend.settlement.withdrawals import withdrawal_id_for

log = structlog.get_logger(__name__)

EngineSubmit = Callable[[Command], Outcome]
"""Journal and apply one command in the engine (blocking); raises like `EngineClient.submit`."""
PENDING, DONE = "pending", "done"
MAX_RELEASES_PER_TICK = 100
ENGINE_TIMEOUT_S = 10.0


def owe_release(session: Session, withdrawal_id: int) -> None:
    """Record, in the caller's unit of work, that `withdrawal_id` must be released."""
    insert_ignore(
        session=session,
        target=WithdrawalRelease,
        rows=[{"withdrawal_id": withdrawal_id, "status": PENDING}],
        conflict=["withdrawal_id"],
    )


def send_releases(factory: sessionmaker[Session], engine: EngineSubmit | None) -> int:
    """Send every owed release; returns how many the engine answered. An engine that cannot be
    reached leaves them owed for the next tick (a re-send is harmless)."""
    with factory() as session:
        owed = session.execute(
            select(WithdrawalRelease.withdrawal_id, Withdrawal.trader, Withdrawal.nonce)
            .join(Withdrawal, Withdrawal.id == WithdrawalRelease.withdrawal_id)
            .where(WithdrawalRelease.status == PENDING)
            .order_by(WithdrawalRelease.withdrawal_id)
            .limit(MAX_RELEASES_PER_TICK)
        ).all()
    metrics.RELEASES_OWED.set(len(owed))
    if not owed:
        return 0
    if engine is None:
        log.error("withdrawal_releases_owed_without_engine", owed=len(owed))
        return 0
    answered = 0
    for withdrawal_id, trader, nonce in owed:
        command = ReleaseWithdrawal(
            seq=0, now=0, withdrawal_id=withdrawal_id_for(trader, int(nonce))
        )
        try:
            outcome = engine(command)
        except DexError as exc:  # unreachable, or no answer: owed still
            log.warning(
                "withdrawal_release_not_sent", withdrawal_id=withdrawal_id, error=exc.message
            )
            break
        code = "applied"
        for e in outcome.events:
            if isinstance(e, ev.CommandRejected):
                code = e.code.name
        with unit_of_work(factory) as session:
            session.execute(
                update(WithdrawalRelease)
                .where(WithdrawalRelease.withdrawal_id == withdrawal_id)
                .values(status=DONE, engine_seq=outcome.seq, outcome=code)
            )
        log.info(
            "withdrawal_released",
            withdrawal_id=withdrawal_id,
            reservation=command.withdrawal_id,
            seq=outcome.seq,
            outcome=code,
        )
        answered += 1
    return answered


def tcp_submitter(settings: Settings) -> EngineSubmit:
    """`hybridex worker`'s way to the engine process: one short connection per release (they
    are rare), from the task's thread, as the settlement role (ReleaseWithdrawal, RevertFill).
    Raises ConfigurationError now when that role's key is not set."""
    from backend.engine.auth import Role
    from backend.engine.tcp_client import TcpEngineClient

    TcpEngineClient.from_settings(settings, Role.SETTLEMENT)  # refuse to start without a key

    def submit(command: Command) -> Outcome:
        async def go() -> Outcome:
            client = TcpEngineClient.from_settings(settings, Role.SETTLEMENT)
            try:
                return await client.submit(command, timeout=ENGINE_TIMEOUT_S)
            finally:
                await client.close()

        return asyncio.run(go())

    return submit
