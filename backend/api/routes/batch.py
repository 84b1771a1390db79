"""`POST /v1/orders/batch`: up to `MAX_ITEMS` signed orders and signed cancels in one request.

Each item goes through exactly what its single endpoint does (`orders.prepare_*` and
`orders.submit_*`) and gets the single endpoint's answer (status and body), in the order sent.
A bad item is answered with its error and never fails the others; the same signed order twice
(in one batch or across batches) is one order, the engine's duplicate check answering the
second from the stored state.

Rate limits count items: the client IP's bucket takes one token per item (the edge took the
first), and each trader's bucket one per order. A batch that any bucket cannot cover whole is
refused whole (429) before anything is applied. Cancels never fail on the limiter being down;
orders do (503), as on the single endpoints.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from backend.api.answers import BatchAnswer
from backend.api.deps import ApiContext, ctx, note_rate_decision, read_json_object, require_keys
from backend.api.errors import http_status
from backend.api.middleware import client_ip
from backend.api.openapi import BODY, EDGE, ENGINE, errors
from backend.api.ratelimit import LimiterUnavailableError, hit_within
from backend.api.responses import Json
from backend.api.routes.orders import (
    PreparedCancel,
    PreparedPlace,
    Reply,
    prepare_cancel,
    prepare_place,
    refused,
    require_allowed,
    submit_cancel,
    submit_place,
    trader_limit,
)
from backend.api.schemas import BatchBody, body_schema
from backend.domain.errors import DexError, ErrorCode

router = APIRouter(prefix="/v1", tags=["orders"])

MAX_ITEMS: Final = 50
E = ErrorCode


def error_reply(c: ApiContext, exc: DexError, *, counted: bool = False) -> Reply:
    """The single endpoint's error answer; `counted`: the refusal metric already has it."""
    if not counted:
        refused(c, exc)
    return http_status(exc.code), {"error": {"code": exc.code.name, "message": exc.message}}


async def _prepare(c: ApiContext, item: Any) -> PreparedPlace | PreparedCancel | Reply:
    try:
        if isinstance(item, dict) and "cancel" in item:
            return prepare_cancel(c, item)
        return await prepare_place(c, item)
    except DexError as exc:
        return error_reply(c, exc)


async def _charge(c: ApiContext, request: Request, items: list[Any], orders: Counter[str]) -> None:
    """Every bucket the batch draws on, for all its items at once; raises to refuse it whole."""
    if len(items) > 1:
        try:
            ip = await hit_within(
                c.limiter, client_ip(request.scope), c.rules.ip,
                c.settings.api_rate_limiter_timeout_s, len(items) - 1,
            )  # fmt: skip
        except LimiterUnavailableError:
            if orders:  # orders fail closed; a batch of cancels passes (middleware.py)
                c.metrics.limiter_failures.labels("closed").inc()
                raise DexError(
                    E.RATE_LIMITER_UNAVAILABLE,
                    "the rate limiter is unavailable; orders are refused until it returns "
                    "(cancels still pass): retry shortly",
                ) from None
            c.metrics.limiter_failures.labels("open").inc()
        else:
            note_rate_decision(request, ip)
            if not ip.allowed:
                raise DexError(
                    E.RATE_LIMITED,
                    f"a batch of {len(items)} items is more than this address may send now; "
                    f"retry in {ip.retry_after_s} s",
                    retry_after=ip.retry_after_s,
                )
    for trader, n in orders.items():
        decision = await trader_limit(c, trader, n)
        note_rate_decision(request, decision)
        require_allowed(decision, trader, n)


@router.post(
    "/orders/batch",
    summary="Place and cancel up to 50 signed orders in one request",
    response_model=BatchAnswer,
    responses=errors(*EDGE, *BODY, E.RATE_LIMITER_UNAVAILABLE, *ENGINE),
    openapi_extra=body_schema(BatchBody),
)
async def place_batch(request: Request) -> Response:
    c = ctx(request)
    try:
        body = await read_json_object(request)
        require_keys(body, ("items",))
        items = body["items"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            raise DexError(
                E.INVALID_REQUEST,
                f"items: a list of 1 to {MAX_ITEMS} signed orders and cancels",
                field="items",
            )
        # Every item checked before anything is sent: the limits see the whole batch.
        prepared = [await _prepare(c, item) for item in items]
        orders = Counter(p.trader for p in prepared if isinstance(p, PreparedPlace))
        await _charge(c, request, items, orders)
    except DexError as exc:
        raise refused(c, exc) from None
    results = []
    for p in prepared:  # in the order sent: the engine applies them in this order
        try:
            if isinstance(p, PreparedPlace):
                status, answer = await submit_place(c, p)
            elif isinstance(p, PreparedCancel):
                status, answer = await submit_cancel(c, p)
            else:
                status, answer = p
        except DexError as exc:  # the engine refused it (counted where it was raised)
            status, answer = error_reply(c, exc, counted=True)
        results.append({"status": status, "body": answer})
    return Json({"results": results})
