"""`POST /v1/withdrawals` (SPEC §9): mount with `app.include_router(router)`.

Body `{withdrawal: {trader, token, amount, nonce}, signature}` → parse strictly, verify the
EIP-712 signature, have the engine reserve the amount (journaled) → 200
`{withdrawalHash, withdrawalId, status: "reserved"}`. Failures answer through the API's one
`DexError` handler: INVALID_SIGNATURE, INVALID_ORDER (malformed fields), NONCE_REUSED,
INSUFFICIENT_BALANCE, ACCOUNT_EXITING, ENGINE_UNAVAILABLE. The settlement worker then submits
`withdraw` on chain; `GET /v1/accounts/{address}/withdrawals` shows its progress.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from backend.api.deps import ctx, read_json_object, require_keys
from backend.eip712.parsing import parse_signature, parse_withdrawal
from backend.settlement.withdrawals import request_withdrawal

router = APIRouter(prefix="/v1", tags=["withdrawals"])


@router.post("/withdrawals", summary="Request a signed withdrawal")
async def post_withdrawal(request: Request) -> dict[str, Any]:
    api = ctx(request)
    body = await read_json_object(request)
    require_keys(body, ("withdrawal", "signature"))
    withdrawal = parse_withdrawal(body["withdrawal"])
    signature = parse_signature(body["signature"])
    outcome = await request_withdrawal(
        api.engine,
        api.sessions,
        withdrawal,
        signature,
        domain=api.domain,
        timeout=api.settings.api_engine_timeout_s,
    )
    return {
        "withdrawalHash": "0x" + outcome.withdrawal_hash.hex(),
        "withdrawalId": outcome.withdrawal_id,
        "status": outcome.status.value,
    }
