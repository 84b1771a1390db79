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

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from backend.api.answers import BatchAnswer
from backend.api.deps import ApiContext, ctx, note_rate_decision, read_json_object, require_keys
from backend.api.errors import http_status
from backend.api.middleware import client_ip
from backend.api.openapi import BODY, EDGE, ENGINE, errors
from backend.api.ratelimit import Decision, LimiterUnavailableError, hit_within
from backend.api.responses import Json
from backend.api.routes.orders import (
    PreparedCancel,
    PreparedPlace,
    Reply,
    cancel_reply,
    limiter_closed,
    place_reply,
    prepare_cancel,
    prepare_place,
    refused,
    require_allowed,
    submit_outcome,
    trader_limit,
)
from backend.api.schemas import BatchBody, body_schema
from backend.domain.errors import DexError, ErrorCode
from backend.engine.client import Outcome

router = APIRouter(prefix="/v1", tags=["orders"])

MAX_ITEMS: Final = 50
Note = Callable[[Decision], None]
Answered = Callable[[PreparedPlace | PreparedCancel, Reply], None]
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


async def _charge(
    c: ApiContext, ip: str | None, items: int, orders: Counter[str], note: Note
) -> None:
    """Every bucket the batch draws on, for all its items at once; raises to refuse it whole.
    `ip`: the client address whose bucket the edge charged one token (None: a WebSocket, whose
    messages have their own bucket)."""
    if ip is not None and items > 1:
        try:
            decision = await hit_within(
                c.limiter, ip, c.rules.ip, c.settings.api_rate_limiter_timeout_s, items - 1
            )
        except LimiterUnavailableError:
            if orders:  # orders fail closed; a batch of cancels passes (middleware.py)
                raise limiter_closed(c) from None
            c.metrics.limiter_failures.labels("open").inc()
        else:
            note(decision)
            if not decision.allowed:
                raise DexError(
                    E.RATE_LIMITED,
                    f"a batch of {items} items is more than this address may send now; "
                    f"retry in {decision.retry_after_s} s",
                    retry_after=decision.retry_after_s,
                )
    for trader, n in orders.items():
        decision = await trader_limit(c, trader, n)
        note(decision)
        require_allowed(decision, trader, n)


Prepared = PreparedPlace | PreparedCancel | Reply
"""A batch item checked: what to submit, or its refusal."""


async def prepare_batch(
    c: ApiContext, items: Any, *, ip: str | None, note: Note = lambda _: None
) -> list[Prepared]:
    """Every item checked and the limits charged for the whole batch, nothing sent yet; a
    DexError refuses the batch whole."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise DexError(
            E.INVALID_REQUEST,
            f"items: a list of 1 to {MAX_ITEMS} signed orders and cancels",
            field="items",
        )
    # Every item checked before anything is sent: the limits see the whole batch.
    prepared = [await _prepare(c, item) for item in items]
    orders = Counter(p.trader for p in prepared if isinstance(p, PreparedPlace))
    await _charge(c, ip, len(items), orders, note)
    return prepared


async def apply_batch(
    c: ApiContext, prepared: list[Prepared], *, answered: Answered = lambda _p, _r: None
) -> list[dict[str, Any]]:
    """Send a prepared batch and answer each item in order. Until its first await it only
    queues the commands on the engine connection, so batches (and single orders) started
    one after another reach the engine in that order."""
    sendable = [p for p in prepared if isinstance(p, PreparedPlace | PreparedCancel)]
    outcomes = iter(await _submit_all(c, sendable))
    results = []
    for p in prepared:  # in the order sent: the engine applied them in this order
        try:
            if isinstance(p, PreparedPlace):
                status, answer = await place_reply(c, p, submit_outcome(next(outcomes)))
                answered(p, (status, answer))
            elif isinstance(p, PreparedCancel):
                status, answer = cancel_reply(c, p, submit_outcome(next(outcomes)))
                answered(p, (status, answer))
            else:
                status, answer = p
        except DexError as exc:  # the engine refused it (counted where it was raised)
            status, answer = error_reply(c, exc, counted=True)
        results.append({"status": status, "body": answer})
    return results


async def run_batch(
    c: ApiContext,
    items: Any,
    *,
    ip: str | None,
    note: Note = lambda _: None,
    answered: Answered = lambda _p, _r: None,
) -> list[dict[str, Any]]:
    """The answers of a batch's items, in order; a DexError refuses the batch whole (nothing
    was applied). `answered(prepared, reply)` sees each item the engine answered."""
    prepared = await prepare_batch(c, items, ip=ip, note=note)
    return await apply_batch(c, prepared, answered=answered)


async def _submit_all(
    c: ApiContext, sendable: list[PreparedPlace | PreparedCancel]
) -> list[Outcome | BaseException]:
    """Every item's command in flight at once, in order, on the worker's one engine connection
    (`BatchEngineClient.submit_many`): the engine takes them in that order and group-commits
    them, so a batch costs about one round trip rather than one per item."""
    if not sendable:
        return []
    timeout = c.settings.api_engine_timeout_s
    many = getattr(c.engine, "submit_many", None)
    started = time.perf_counter()
    try:
        if many is not None:
            results: list[Outcome | BaseException] = await many(
                [(p.command, p.intake) for p in sendable], timeout=timeout
            )
            return results
        out: list[Outcome | BaseException] = []
        for p in sendable:  # an engine client without submit_many: one after the other
            try:
                out.append(await c.engine.submit(p.command, timeout=timeout, intake=p.intake))
            except Exception as exc:  # the same results submit_many would give
                out.append(exc)
        return out
    finally:
        c.metrics.engine_latency.observe(time.perf_counter() - started)


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
        results = await run_batch(
            c,
            body["items"],
            ip=client_ip(request.scope),
            note=lambda decision: note_rate_decision(request, decision),
        )
    except DexError as exc:
        raise refused(c, exc) from None
    return Json({"results": results})
