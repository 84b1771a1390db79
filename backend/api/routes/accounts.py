"""A trader's account: balances, fills with their settlement state, deposits — private: each
read needs the trader's signed Session (`backend.api.sessions`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from backend.api import queries
from backend.api.answers import BalancesAnswer, DepositsAnswer, FillsAnswer
from backend.api.deps import ctx, parse_address_param
from backend.api.openapi import EDGE, PARAMS, PRIVATE, SESSION, errors
from backend.api.responses import Json
from backend.api.serializers import account_fill, deposit_row
from backend.api.sessions import require_trader

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


def _balances(session: Session, trader: str, fee_recipient: str | None) -> list[dict[str, Any]]:
    engine_rows, chain_rows = queries.balances(session, trader)
    pending = queries.pending_settlement(session, trader, fee_recipient=fee_recipient)
    tokens = queries.tokens(session)
    held = {b.token: b for b in engine_rows}
    on_chain = {c.token: c for c in chain_rows}
    out = []
    for token in sorted(set(held) | set(on_chain) | set(pending)):
        b = held.get(token)
        c = on_chain.get(token)
        meta = tokens.get(token)
        total = 0 if b is None else b.total
        locked = 0 if b is None else b.locked
        out.append(
            {
                "token": token,
                "symbol": None if meta is None else meta.symbol,
                "decimals": None if meta is None else meta.decimals,
                "onChain": "0" if c is None else str(c.amount),
                "onChainBlock": None if c is None else c.block_number,
                "total": str(total),
                "available": str(total - locked),
                "locked": str(locked),
                "pendingSettlement": str(pending.get(token, 0)),
                "seq": None if b is None else b.updated_seq,
            }
        )
    return out


@router.get(
    "/{address}/balances",
    summary="Per token: onChain, available, locked, pendingSettlement",
    operation_id="get_balances",
    response_model=BalancesAnswer,
    responses=errors(*EDGE, *PARAMS, *SESSION),
    openapi_extra=PRIVATE,
    description=(
        "`total` = `available` + `locked` is the engine's ledger (deposits credited, fills "
        "applied); `locked` is reserved by open orders and withdrawals. `onChain` is the "
        "contract's balance as the indexer last saw it (at `onChainBlock`). "
        "`pendingSettlement` is the signed net change the trader's fills not yet settled on "
        "chain will make to `onChain` (received minus fees, less given): without deposits or "
        "withdrawals in flight, `total` = `onChain` + `pendingSettlement`."
    ),
)
async def balances(request: Request, address: str) -> Response:
    c = ctx(request)
    trader = parse_address_param(address)
    require_trader(request, trader)
    rows = await c.db(lambda s: _balances(s, trader, c.settings.fee_recipient))
    return Json({"address": trader, "balances": rows})


@router.get(
    "/{address}/fills",
    summary="Fills with settlement state, batch id and tx hash",
    operation_id="list_fills",
    response_model=FillsAnswer,
    responses=errors(*EDGE, *PARAMS, *SESSION),
    openapi_extra=PRIVATE,
)
async def fills(
    request: Request,
    address: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="Only fills with an id below this."),
) -> Response:
    c = ctx(request)
    trader = parse_address_param(address)
    require_trader(request, trader)
    rows = await c.db(lambda s: queries.account_fills(s, trader, limit, before))
    return Json({"address": trader, "fills": [account_fill(trader, *row) for row in rows]})


@router.get(
    "/{address}/deposits",
    summary="Deposits seen on chain and whether credited",
    operation_id="list_deposits",
    response_model=DepositsAnswer,
    responses=errors(*EDGE, *PARAMS, *SESSION),
    openapi_extra=PRIVATE,
    description=(
        "`seen` deposits carry `blockNumber` and `confirmationsLeft` (blocks still to come, as "
        "of the indexer's `indexedBlock`, before the engine credits them; 0 = due now); then "
        "`credited` with `creditedSeq`, or `orphaned` if a reorg removed the block."
    ),
)
async def deposits(
    request: Request,
    address: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1),
) -> Response:
    c = ctx(request)
    trader = parse_address_param(address)
    require_trader(request, trader)
    rows, head = await c.db(
        lambda s: (queries.deposits(s, trader, limit, before), queries.indexed_head(s))
    )
    conf = c.settings.confirmations
    return Json(
        {
            "address": trader,
            "indexedBlock": head,
            "confirmations": conf,
            "deposits": [deposit_row(r, indexed_head=head, confirmations=conf) for r in rows],
        }
    )
