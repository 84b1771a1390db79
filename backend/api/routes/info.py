"""`GET /v1/info`, `/health`, `/ready`, `/metrics`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from backend.api.answers import HealthAnswer, InfoAnswer, ReadyAnswer
from backend.api.deps import ctx
from backend.api.openapi import EDGE, errors
from backend.api.responses import Json
from backend.eip712.messages import EIP712_TYPES
from backend.matching.market import MAX_FEE_BPS

router = APIRouter()

READINESS_TIMEOUT_S = 2.0


@router.get(
    "/v1/info",
    summary="Chain, Exchange contract, EIP-712 domain and types, fee caps",
    operation_id="get_info",
    response_model=InfoAnswer,
    responses=errors(*EDGE),
)
async def info(request: Request) -> Response:
    c = ctx(request)
    now = time.time()
    return Json(
        {
            "chainId": c.domain.chain_id,
            "exchangeAddress": c.domain.verifying_contract,
            "eip712": {"domain": c.domain.as_dict(), "types": EIP712_TYPES},
            "feeCaps": {"maxMakerFeeBps": MAX_FEE_BPS, "maxTakerFeeBps": MAX_FEE_BPS},
            "cancelDelaySeconds": c.settings.cancel_delay_s,
            "serverTime": int(now),
            "serverTimeMs": int(now * 1000),
        }
    )


@router.get("/health", summary="Liveness: the process answers", response_model=HealthAnswer)
async def health() -> Response:
    return Json({"status": "ok"})


@router.get(
    "/ready",
    summary="Readiness: database, Redis and engine answer",
    response_model=ReadyAnswer,
    responses={503: {"model": ReadyAnswer, "description": "a dependency is down"}},
)
async def ready(request: Request) -> Response:
    checks: dict[str, Any] = {}
    ok = True
    for name, check in ctx(request).readiness.items():
        try:
            await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
            checks[name] = "ok"
        except Exception as exc:
            ok = False
            checks[name] = f"down: {type(exc).__name__}"
    return Json(
        {"status": "ok" if ok else "down", "checks": checks}, status_code=200 if ok else 503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    body, content_type = ctx(request).metrics.render()
    return Response(body, media_type=content_type)
