"""Operator endpoints, behind the operator's bearer token (`HYBRIDEX_ADMIN_TOKEN`)."""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from backend.api.answers import ReconciliationAnswer
from backend.api.deps import ctx
from backend.api.openapi import EDGE, OPERATOR, errors
from backend.api.responses import Json
from backend.db.models import ReconciliationRun
from backend.domain.errors import DexError, ErrorCode

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _authorize(request: Request) -> None:
    token = ctx(request).settings.admin_token
    given = request.headers.get("authorization", "")
    expected = "" if token is None else f"Bearer {token.get_secret_value()}"
    # Constant-time, and no token configured means no access at all (never an open endpoint).
    if token is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise DexError(
            ErrorCode.ADMIN_UNAUTHORIZED,
            "operator endpoints need `Authorization: Bearer <HYBRIDEX_ADMIN_TOKEN>`",
        )


def _latest(session: Session) -> ReconciliationRun | None:
    return session.scalar(select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(1))


@router.get(
    "/reconciliation",
    summary="The latest reconciliation: accounts checked, discrepancies, block read",
    operation_id="get_reconciliation",
    response_model=ReconciliationAnswer,
    responses=errors(*EDGE, ErrorCode.ADMIN_UNAUTHORIZED, ErrorCode.RECONCILIATION_NOT_RUN),
    openapi_extra=OPERATOR,
    description=(
        "The report of the newest periodic reconciliation (the `hybridex reconcile --json` "
        "document) with when it ran and how long it took. Operator only."
    ),
)
async def reconciliation(request: Request) -> Response:
    _authorize(request)
    run = await ctx(request).db(_latest)
    if run is None:
        raise DexError(ErrorCode.RECONCILIATION_NOT_RUN, "no reconciliation has run yet")
    return Json(
        {
            "runId": run.id,
            "runAt": run.created_at.isoformat(),
            "durationMs": run.duration_ms,
            "clean": run.clean,
            **json.loads(run.report),
        }
    )
