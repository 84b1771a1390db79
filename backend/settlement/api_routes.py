"""`POST /v1/withdrawals` and `GET /v1/accounts/{address}/withdrawals` (SPEC §9).

Mounted by `backend.api.app.create_app`. POST body
`{withdrawal: {trader, token, amount, nonce, expiry}, signature}` → parse strictly, verify the
EIP-712 signature, refuse an expiry less than a minute ahead (EXPIRED), have the engine reserve
the amount (journaled) → 200 `{withdrawalHash, withdrawalId, status: "reserved"}`. Failures
answer through the API's one `DexError` handler: INVALID_SIGNATURE (401), INVALID_ORDER
(malformed fields), EXPIRED (400), NONCE_REUSED (409), INSUFFICIENT_BALANCE (422),
ACCOUNT_EXITING (403), ENGINE_UNAVAILABLE.
The settlement worker then submits `withdraw` on chain; the GET shows its progress:
`reserved → submitted → confirmed | failed` (or `rejected`), the transaction and its block,
and `indexed` once the indexer has seen the `Withdrawn` event (`debited`: the engine's ledger
has been debited — the reservation is consumed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from backend.api.answers import WithdrawalRequested, WithdrawalsAnswer
from backend.api.deps import ctx, parse_address_param, read_json_object, require_keys
from backend.api.openapi import BODY, EDGE, ENGINE, PARAMS, PRIVATE, SESSION, errors
from backend.api.responses import Json
from backend.api.schemas import WithdrawalBody, body_schema
from backend.api.sessions import require_trader
from backend.db.models import ChainEvent, Withdrawal, WithdrawalSettlement
from backend.db.models.indexer import IndexerCommand
from backend.domain.errors import ErrorCode as E
from backend.eip712.messages import Withdrawal as WithdrawalMessage
from backend.eip712.signed import check
from backend.settlement.withdrawals import request_withdrawal, withdrawal_id_for

router = APIRouter(prefix="/v1", tags=["withdrawals"])

WITHDRAWN = "Withdrawn"
DEBIT = "debit"
DONE = "done"


@router.post(
    "/withdrawals",
    summary="Request a signed withdrawal",
    operation_id="request_withdrawal",
    response_model=WithdrawalRequested,
    responses=errors(
        *EDGE,
        *BODY,
        E.RATE_LIMITER_UNAVAILABLE,
        E.INVALID_ORDER,
        E.EXPIRED,
        E.NONCE_REUSED,
        E.INSUFFICIENT_BALANCE,
        E.ACCOUNT_EXITING,
        *ENGINE,
    ),
    openapi_extra=body_schema(WithdrawalBody),
    description=(
        "401 INVALID_SIGNATURE, 409 NONCE_REUSED (the nonce names another withdrawal), "
        "422 INSUFFICIENT_BALANCE (more than `available`), 403 ACCOUNT_EXITING (the trader "
        "requested an exit: use `exitWithdraw`). Re-posting the same signed withdrawal answers "
        "its current status."
    ),
)
async def post_withdrawal(request: Request) -> Response:
    api = ctx(request)
    body = await read_json_object(request)
    require_keys(body, ("withdrawal", "signature"))
    signed = check(WithdrawalMessage, body["withdrawal"], body["signature"], api.domain)
    outcome = await request_withdrawal(
        api.engine,
        api.sessions,
        signed.message,
        signed.signature,
        domain=api.domain,
        timeout=api.settings.api_engine_timeout_s,
        signed=signed,
    )
    return Json(
        {
            "withdrawalHash": "0x" + outcome.withdrawal_hash.hex(),
            "withdrawalId": outcome.withdrawal_id,
            "status": outcome.status.value,
        }
    )


@dataclass(frozen=True, slots=True)
class Indexed:
    block: int
    debited: bool


def _hex(raw: bytes | None) -> str | None:
    return None if raw is None else "0x" + bytes(raw).hex()


def account_withdrawals(
    session: Session, trader: str, limit: int, before_id: int | None
) -> list[tuple[Withdrawal, WithdrawalSettlement | None, Indexed | None]]:
    q = (
        select(Withdrawal, WithdrawalSettlement)
        .outerjoin(WithdrawalSettlement, WithdrawalSettlement.withdrawal_id == Withdrawal.id)
        .where(Withdrawal.trader == trader)
    )
    if before_id is not None:
        q = q.where(Withdrawal.id < before_id)
    rows: Sequence[tuple[Withdrawal, WithdrawalSettlement | None]] = [
        (w, s) for w, s in session.execute(q.order_by(Withdrawal.id.desc()).limit(limit))
    ]
    tx_hashes = [bytes(s.tx_hash) for _, s in rows if s is not None and s.tx_hash is not None]
    events: dict[bytes, ChainEvent] = {}
    debited: set[tuple[bytes, int]] = set()
    if tx_hashes:
        for ev in session.scalars(
            select(ChainEvent).where(
                ChainEvent.event == WITHDRAWN, ChainEvent.tx_hash.in_(tx_hashes)
            )
        ):
            events[bytes(ev.tx_hash)] = ev
        if events:
            for cmd in session.scalars(
                select(IndexerCommand).where(
                    IndexerCommand.kind == DEBIT,
                    IndexerCommand.block_hash.in_([e.block_hash for e in events.values()]),
                )
            ):
                if cmd.status == DONE:
                    debited.add((bytes(cmd.block_hash), cmd.log_index))
    out: list[tuple[Withdrawal, WithdrawalSettlement | None, Indexed | None]] = []
    for w, s in rows:
        seen = events.get(bytes(s.tx_hash)) if s is not None and s.tx_hash is not None else None
        indexed = (
            None
            if seen is None
            else Indexed(seen.block_number, (bytes(seen.block_hash), seen.log_index) in debited)
        )
        out.append((w, s, indexed))
    return out


def withdrawal_row(
    w: Withdrawal, s: WithdrawalSettlement | None, indexed: Indexed | None
) -> dict[str, Any]:
    status = w.status if s is None else s.status
    return {
        "id": w.id,
        "withdrawalId": withdrawal_id_for(w.trader, int(w.nonce)),
        "withdrawalHash": _hex(w.withdrawal_hash),
        "token": w.token,
        "amount": str(w.amount),
        "nonce": str(w.nonce),
        "status": status.value,
        "rejectCode": w.reject_code,
        "txHash": None if s is None else _hex(s.tx_hash),
        "block": None if s is None else s.block_number,
        "failureReason": None if s is None else s.failure_reason,
        "indexed": None
        if indexed is None
        else {"block": indexed.block, "debited": indexed.debited},
        "seq": w.accepted_seq,
        "time": w.created_at.isoformat().replace("+00:00", "Z"),
    }


@router.get(
    "/accounts/{address}/withdrawals",
    summary="Withdrawals with their state, tx hash and block",
    operation_id="list_withdrawals",
    response_model=WithdrawalsAnswer,
    responses=errors(*EDGE, *PARAMS, *SESSION),
    openapi_extra=PRIVATE,
    description=(
        "`status`: `reserved` (the engine holds the amount) → `submitted` (the operator sent "
        "`withdraw`, `txHash`) → `confirmed` (mined `confirmations` deep, `block`) or `failed` "
        "(`failureReason`); `rejected` with `rejectCode` if the engine refused it. `indexed` "
        "is set once the indexer saw the `Withdrawn` event; `debited` once the engine's ledger "
        "was debited (`total` and `locked` no longer include it)."
    ),
)
async def withdrawals(
    request: Request,
    address: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="Only withdrawals with an id below this."),
) -> Response:
    c = ctx(request)
    trader = parse_address_param(address)
    require_trader(request, trader)
    rows = await c.db(lambda s: account_withdrawals(s, trader, limit, before))
    return Json({"address": trader, "withdrawals": [withdrawal_row(*r) for r in rows]})
