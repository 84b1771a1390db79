"""Withdrawal intake: verify the trader's signed `Withdrawal`, have the engine reserve it.

`request_withdrawal` is what `POST /v1/withdrawals` calls (`api_routes.py`). The engine journals
`ReserveWithdrawal` before answering, then its persister writes the `withdrawals` row
(`reserved` or `rejected`); the worker's tick submits `withdraw` for reserved rows
(`sender.send_withdrawal`), the indexer confirms `Withdrawn` and debits the engine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.db.models import TraderExit
from backend.db.models import Withdrawal as WithdrawalRow
from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import WithdrawalStatus
from backend.eip712.domain import Domain
from backend.eip712.messages import Withdrawal
from backend.eip712.recover import verify
from backend.eip712.signed import Signed
from backend.engine.client import EngineClient, Intake
from backend.matching import events as ev
from backend.matching.commands import ReserveWithdrawal

EXISTING_POLL_S = 0.02


def withdrawal_id_for(trader: str, nonce: int) -> str:
    """The engine's reservation id of a signed withdrawal; the indexer's `Debit` for the
    `Withdrawn` event names the same id (`indexer.projection.withdrawal_id_for`)."""
    return f"{to_checksum_address(trader)}:{nonce}"


@dataclass(frozen=True, slots=True)
class WithdrawalOutcome:
    withdrawal_hash: bytes
    withdrawal_id: str
    status: WithdrawalStatus
    seq: int | None
    """Engine sequence number of the reservation (None: an earlier identical request)."""


def _existing(factory: sessionmaker[Session], trader: str, nonce: int) -> WithdrawalRow | None:
    with factory() as session:
        return session.scalar(
            select(WithdrawalRow).where(
                WithdrawalRow.trader == trader, WithdrawalRow.nonce == nonce
            )
        )


def _repost(existing: WithdrawalRow, digest: bytes, wid: str) -> WithdrawalOutcome:
    """The answer to a withdrawal whose (trader, nonce) already has a row."""
    if bytes(existing.withdrawal_hash) != digest:
        raise DexError(
            ErrorCode.NONCE_REUSED,
            f"withdrawal nonce {existing.nonce} of {existing.trader} is already used",
            nonce=str(existing.nonce),
        )
    if existing.status is WithdrawalStatus.REJECTED:
        code = ErrorCode[existing.reject_code or "INVALID_REQUEST"]
        raise DexError(code, "this withdrawal was rejected", withdrawal_id=wid)
    return WithdrawalOutcome(digest, wid, existing.status, None)  # idempotent re-post


async def _wait_existing(
    factory: sessionmaker[Session], trader: str, nonce: int, timeout: float
) -> WithdrawalRow | None:
    deadline = time.monotonic() + timeout
    while True:
        row = await asyncio.to_thread(_existing, factory, trader, nonce)
        if row is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(EXISTING_POLL_S)


def _exiting(factory: sessionmaker[Session], trader: str) -> bool:
    with factory() as session:
        return session.get(TraderExit, trader) is not None


WITHDRAWAL_MIN_VALIDITY_S = 60
"""A withdrawal must stay valid this long after it is requested: the worker needs the time to
submit it before the contract refuses it (`WithdrawalExpired`)."""


async def request_withdrawal(
    engine_client: EngineClient,
    session_factory: sessionmaker[Session],
    withdrawal: Withdrawal,
    signature: bytes,
    *,
    domain: Domain,
    timeout: float = 2.0,
    signed: Signed[Withdrawal] | None = None,
) -> WithdrawalOutcome:
    """Verifies and reserves; raises `DexError` with INVALID_SIGNATURE, NONCE_REUSED,
    EXPIRED, ACCOUNT_EXITING or INSUFFICIENT_BALANCE (the engine's code) — or
    ENGINE_UNAVAILABLE."""
    # INVALID_SIGNATURE; `signed`: the API's check of this withdrawal, already hashed and recovered
    digest = verify(withdrawal, signature, domain) if signed is None else signed.verified()
    trader = to_checksum_address(withdrawal.trader)
    wid = withdrawal_id_for(trader, withdrawal.nonce)
    existing = await asyncio.to_thread(_existing, session_factory, trader, withdrawal.nonce)
    if existing is not None:
        return _repost(existing, digest, wid)
    now = int(time.time())
    if withdrawal.expiry < now + WITHDRAWAL_MIN_VALIDITY_S:
        raise DexError(
            ErrorCode.EXPIRED,
            f"withdrawal.expiry: {withdrawal.expiry} leaves less than {WITHDRAWAL_MIN_VALIDITY_S}"
            f" s to execute it on chain (now {now}); sign an expiry further ahead",
            field="withdrawal.expiry",
        )
    if await asyncio.to_thread(_exiting, session_factory, trader):
        raise DexError(ErrorCode.ACCOUNT_EXITING, f"{trader} requested an exit", trader=trader)
    command = ReserveWithdrawal(
        seq=0,
        now=0,
        trader=trader,
        token=to_checksum_address(withdrawal.token),
        amount=withdrawal.amount,
        withdrawal_id=wid,
    )
    intake = Intake(
        signature=signature, signed_hash=digest, nonce=withdrawal.nonce, expiry=withdrawal.expiry
    )
    outcome = await engine_client.submit(command, timeout=timeout, intake=intake)
    for event in outcome.events:
        if isinstance(event, ev.WithdrawalReserved):
            return WithdrawalOutcome(digest, wid, WithdrawalStatus.RESERVED, outcome.seq)
        if isinstance(event, ev.CommandRejected):
            if event.code is ErrorCode.INVALID_REQUEST and withdrawal.amount > 0:
                # The engine holds a reservation under this id that its persister has not
                # written yet (a re-post right after the first): decide once the row is there.
                row = await _wait_existing(session_factory, trader, withdrawal.nonce, timeout)
                if row is not None:
                    return _repost(row, digest, wid)
                raise DexError(
                    ErrorCode.NONCE_REUSED,
                    f"withdrawal nonce {withdrawal.nonce} of {trader} is already used",
                    nonce=str(withdrawal.nonce),
                )
            raise DexError(event.code, event.message, withdrawal_id=wid)
    raise DexError(ErrorCode.INVALID_REQUEST, "the engine did not decide the withdrawal")
