"""Signed order intake and order state: place, cancel, cancel-all, look up (SPEC §9, §11).

Intake is: parse strictly → verify the EIP-712 signature against the configured domain (both
in `eip712.signed.check`, native) → the per-trader rate limit → submit to the engine with a
short timeout → answer with the engine's outcome (or 202 + the order hash when the engine is
slow; the outcome follows on the WebSocket and `GET /v1/orders/{hash}`). The API never
decides an order's fate itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from opentelemetry.trace import SpanKind
from starlette.responses import Response

from backend import tracing
from backend.api import queries
from backend.api.answers import CancelAllAnswer, CancelAnswer, OrderAnswer, OrdersAnswer
from backend.api.catalog import MarketView
from backend.api.deps import (
    ApiContext,
    ctx,
    note_rate_decision,
    parse_address_param,
    parse_hash_param,
    read_json_object,
    require_keys,
)
from backend.api.openapi import BODY, EDGE, ENGINE, PARAMS, PRIVATE, errors
from backend.api.orders_outcome import cancel_answer, place_answer, stored_answer
from backend.api.ratelimit import Decision, LimiterUnavailableError, hit_within
from backend.api.responses import Json
from backend.api.schemas import (
    CancelAllBody,
    CancelBody,
    OrderOutcome,
    PlaceOrderBody,
    body_schema,
)
from backend.api.serializers import hex0x, order_row
from backend.api.sessions import require_trader
from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import OrderStatus, TimeInForce
from backend.eip712.messages import Cancel
from backend.eip712.messages import CancelAll as CancelAllMessage
from backend.eip712.messages import Order as OrderMessage
from backend.eip712.signed import check
from backend.engine.client import (
    EngineOutcomeUnknownError,
    EngineUnavailableError,
    Intake,
    Outcome,
)
from backend.matching.commands import CancelAll, CancelOrder, Command, PlaceOrder
from backend.matching.events import CancelAllApplied

router = APIRouter(prefix="/v1", tags=["orders"])

CLIENT_ORDER_ID_MAX = 64
STORED_ANSWER_WAIT_S = 1.0

E = ErrorCode
PLACE_ERRORS = errors(
    *EDGE, *BODY, E.RATE_LIMITER_UNAVAILABLE, E.INVALID_ORDER, E.INVALID_TICK, E.INVALID_LOT,
    E.EXPIRED, E.FEE_BOUND_TOO_LOW, E.UNKNOWN_MARKET, E.NONCE_REUSED, E.ORDER_CANCELLED,
    E.DUPLICATE_CLIENT_ORDER_ID, E.ACCOUNT_EXITING, E.INSUFFICIENT_BALANCE,
    E.PRICE_OUT_OF_BAND, E.ORDER_TOO_LARGE, E.POST_ONLY_WOULD_TAKE, E.FOK_NOT_FILLABLE,
    E.MARKET_NOT_ACCEPTING, *ENGINE,
)  # fmt: skip


def _client_order_id(value: Any) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= CLIENT_ORDER_ID_MAX
        or not value.isascii()
        or not value.isprintable()
    ):
        raise DexError(
            ErrorCode.INVALID_ORDER,
            f"clientOrderId: must be 1 to {CLIENT_ORDER_ID_MAX} printable ASCII characters",
            field="clientOrderId",
        )
    return value


async def submit_command(c: ApiContext, command: Command, intake: Intake) -> Outcome | None:
    """The engine's outcome, or None when the command went out but no answer came (slow engine,
    or it died mid-request: the command may be journaled → 202); an engine that could not take
    it at all is ENGINE_UNAVAILABLE (503: nothing was sent, retry)."""
    started = time.perf_counter()
    try:
        timeout = c.settings.api_engine_timeout_s
        if tracing.enabled():
            return await _traced_submit(c, command, intake, timeout)
        return await c.engine.submit(command, timeout=timeout, intake=intake)
    except (EngineOutcomeUnknownError, TimeoutError):
        return None
    except EngineUnavailableError as exc:
        # A re-post of the same signed order is idempotent, so the client can simply retry.
        raise DexError(ErrorCode.ENGINE_UNAVAILABLE, f"engine unavailable: {exc}") from None
    finally:
        c.metrics.engine_latency.observe(time.perf_counter() - started)


async def _traced_submit(
    c: ApiContext, command: Command, intake: Intake, timeout: float
) -> Outcome | None:
    with tracing.tracer().start_as_current_span(
        f"engine {type(command).__name__}", kind=SpanKind.CLIENT
    ) as span:
        order_hash = getattr(command, "order_hash", None)
        if isinstance(order_hash, bytes):
            span.set_attribute("hybridex.order_hash", "0x" + order_hash.hex())
        outcome = await c.engine.submit(command, timeout=timeout, intake=intake)
        if outcome is not None:
            span.set_attribute("hybridex.engine_seq", outcome.seq)
        return outcome


def _check_fee_bound(order: OrderMessage, market: MarketView) -> None:
    """The contract refuses a fill whose fee exceeds the order's signed `maxFeeBps`, so an
    order that could be charged more would trade off chain and never settle: refuse it here.
    A post-only order is always the maker; any other order may be either side."""
    if order.timeInForce is TimeInForce.POST_ONLY:
        required = market.maker_fee_bps
    else:
        required = max(market.maker_fee_bps, market.taker_fee_bps)
    if order.maxFeeBps < required:
        raise DexError(
            E.FEE_BOUND_TOO_LOW,
            f"order.maxFeeBps: {order.maxFeeBps} is below the {required} bps market "
            f"{market.market_id} may charge this order; sign maxFeeBps of at least {required}",
            field="order.maxFeeBps",
            required=str(required),
        )


def refused(c: ApiContext, exc: DexError) -> DexError:
    c.metrics.rejections.labels(exc.code.name).inc()
    return exc


@dataclass(frozen=True, slots=True)
class PreparedPlace:
    """A signed order that passed every check the API makes: what to submit, what to answer."""

    command: PlaceOrder
    intake: Intake
    amount: int

    @property
    def trader(self) -> str:
        return self.command.trader


@dataclass(frozen=True, slots=True)
class PreparedCancel:
    command: CancelOrder
    intake: Intake


Reply = tuple[int, dict[str, Any]]
"""An answer: HTTP status and JSON body, exactly as the single-order endpoints answer."""


async def prepare_place(c: ApiContext, body: Any) -> PreparedPlace:
    """Parse strictly, find the market, verify the signature; refusals raise DexError."""
    if not isinstance(body, dict):
        raise DexError(ErrorCode.INVALID_REQUEST, "an order item must be a JSON object")
    require_keys(body, ("order", "signature"), ("clientOrderId",))
    signed = check(OrderMessage, body["order"], body["signature"], c.domain)
    order, signature = signed.message, signed.signature
    client_order_id = _client_order_id(body.get("clientOrderId"))
    market = await c.markets.by_pair(order.baseToken, order.quoteToken)
    _check_fee_bound(order, market)
    order_hash = signed.verified()
    command = PlaceOrder(
        0, 0, order_hash, order.trader, market.market_id, order.side, order.price,
        order.amount, order.timeInForce, order.nonce, order.expiry, client_order_id,
    )  # fmt: skip
    intake = Intake(signature=signature, max_fee_bps=order.maxFeeBps)
    return PreparedPlace(command, intake, order.amount)


async def trader_limit(c: ApiContext, trader: str, orders: int = 1) -> Decision:
    """The per-trader bucket, `orders` tokens at once (see `require_allowed`); an unavailable
    limiter refuses, like every order path."""
    try:
        decision = await hit_within(
            c.limiter, trader, c.rules.trader, c.settings.api_rate_limiter_timeout_s, orders
        )
    except LimiterUnavailableError:  # orders fail closed (middleware.py)
        raise limiter_closed(c) from None
    return decision


def limiter_closed(c: ApiContext) -> DexError:
    """The refusal of an order when the limiter cannot answer (orders fail closed)."""
    c.metrics.limiter_failures.labels("closed").inc()
    return DexError(
        ErrorCode.RATE_LIMITER_UNAVAILABLE,
        "the rate limiter is unavailable; orders are refused until it returns "
        "(cancels still pass): retry shortly",
    )


def require_allowed(decision: Decision, trader: str, orders: int = 1) -> None:
    if not decision.allowed:
        what = "too many orders" if orders == 1 else f"{orders} orders are more than allowed"
        raise DexError(
            ErrorCode.RATE_LIMITED,
            f"{what} from {trader}; retry in {decision.retry_after_s} s",
            retry_after=decision.retry_after_s,
        )


async def submit_place(c: ApiContext, prepared: PreparedPlace) -> Reply:
    """Submit to the engine and answer; an order the engine refuses raises DexError."""
    return await place_reply(
        c, prepared, await submit_command(c, prepared.command, prepared.intake)
    )


def submit_outcome(result: Outcome | BaseException) -> Outcome | None:
    """What `submit_command` makes of one of `submit_many`'s results: the outcome, None when it is
    unknown (202), or the DexError it raises."""
    if isinstance(result, Outcome):
        return result
    if isinstance(result, EngineOutcomeUnknownError | TimeoutError):
        return None
    if isinstance(result, EngineUnavailableError):
        raise DexError(ErrorCode.ENGINE_UNAVAILABLE, f"engine unavailable: {result}") from None
    raise result


async def place_reply(c: ApiContext, prepared: PreparedPlace, outcome: Outcome | None) -> Reply:
    """The answer to an order the engine answered with `outcome` (None: no answer in time)."""
    command = prepared.command
    order_hash = command.order_hash
    pending = {"orderHash": hex0x(order_hash), "status": "pending"}
    if outcome is None:
        c.metrics.orders.labels("pending").inc()
        return 202, pending
    try:
        answer = place_answer(order_hash, prepared.amount, command.market_id, outcome)
    except DexError as exc:
        c.metrics.orders.labels("rejected").inc()
        raise refused(c, exc) from None
    if answer is None:  # a re-post of an accepted order: answer from its stored state
        answer = await _stored(c, order_hash)
        if answer is None:
            c.metrics.orders.labels("pending").inc()
            return 202, pending
    c.metrics.orders.labels(answer["status"]).inc()
    return 200, answer


@router.post(
    "/orders",
    summary="Place a signed order",
    response_model=OrderOutcome,
    responses={202: {"model": OrderOutcome, "description": "engine slow: status pending"},
               **PLACE_ERRORS},
    openapi_extra=body_schema(PlaceOrderBody),
)  # fmt: skip
async def place_order(request: Request) -> Response:
    c = ctx(request)
    try:
        prepared = await prepare_place(c, await read_json_object(request))
        decision = await trader_limit(c, prepared.trader)
        note_rate_decision(request, decision)
        require_allowed(decision, prepared.trader)
    except DexError as exc:
        raise refused(c, exc) from None
    status, answer = await submit_place(c, prepared)
    return Json(answer, status_code=status)


async def _stored(c: ApiContext, order_hash: bytes) -> dict[str, Any] | None:
    """The stored answer of an accepted order; the persister may lag the engine a little."""
    deadline = time.monotonic() + STORED_ANSWER_WAIT_S
    while True:
        answer = await c.db(lambda s: stored_answer(s, order_hash))
        if answer is not None or time.monotonic() >= deadline:
            return answer
        await asyncio.sleep(0.02)


@router.get(
    "/orders/{order_hash}",
    summary="One order's state",
    response_model=OrderAnswer,
    # another trader's order answers ORDER_NOT_FOUND, never SESSION_FORBIDDEN
    responses=errors(
        *EDGE,
        *PARAMS,
        E.SESSION_REQUIRED,
        E.SESSION_INVALID,
        E.INVALID_SIGNATURE,
        E.ORDER_NOT_FOUND,
    ),
    openapi_extra=PRIVATE,
)
async def get_order(request: Request, order_hash: str) -> Response:
    c = ctx(request)
    h = parse_hash_param(order_hash)
    row = await c.db(lambda s: queries.order_by_hash(s, h))
    if row is None:
        raise DexError(ErrorCode.ORDER_NOT_FOUND, f"no order {order_hash}")
    try:
        require_trader(request, row.trader)
    except DexError as exc:
        if exc.code is not ErrorCode.SESSION_FORBIDDEN:
            raise
        # another trader's order: answer as for an unknown hash, so existence is not leaked
        raise DexError(ErrorCode.ORDER_NOT_FOUND, f"no order {order_hash}") from None
    market = await c.markets.by_id(row.market_id)
    return Json(order_row(row, market.base.address, market.quote.address))


@router.get(
    "/orders",
    summary="A trader's orders (optionally in one market), newest first",
    response_model=OrdersAnswer,
    responses=errors(
        *EDGE,
        *PARAMS,
        E.SESSION_REQUIRED,
        E.SESSION_INVALID,
        E.SESSION_FORBIDDEN,
        E.INVALID_SIGNATURE,
        E.UNKNOWN_MARKET,
    ),
    openapi_extra=PRIVATE,
)
async def list_orders(
    request: Request,
    *,
    trader: Annotated[str | None, Query(description="0x address (any case)")] = None,
    market: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    before: Annotated[
        int | None, Query(ge=1, description="Only orders accepted before this seq.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    c = ctx(request)
    if trader is None:
        # a market's orders are every trader's private data: the public view is the book
        raise DexError(
            ErrorCode.INVALID_REQUEST,
            "trader is required (orders are private; a market's public view is its book)",
        )
    who = parse_address_param(trader, "trader")
    require_trader(request, who)
    if market is not None:
        await c.markets.by_id(market)
    rows = await c.db(
        lambda s: queries.orders(
            s, trader=who, market_id=market, status=status, before_seq=before, limit=limit
        )
    )
    views = {m.market_id: m for m in await c.markets.all()}
    out = []
    for row in rows:
        m = views.get(row.market_id)
        base, quote = (None, None) if m is None else (m.base.address, m.quote.address)
        out.append(order_row(row, base, quote))
    return Json({"orders": out})


@router.delete(
    "/orders/{order_hash}",
    summary="Cancel an order with a signed Cancel",
    response_model=CancelAnswer,
    responses={
        202: {"model": CancelAnswer, "description": "engine slow: status pending"},
        **errors(*EDGE, *BODY, E.ORDER_NOT_FOUND, *ENGINE),
    },
    openapi_extra=body_schema(CancelBody),
)
async def cancel_order(request: Request, order_hash: str) -> Response:
    c = ctx(request)
    try:
        h = parse_hash_param(order_hash)
        prepared = prepare_cancel(c, await read_json_object(request), h)
    except DexError as exc:
        raise refused(c, exc) from None
    status, answer = await submit_cancel(c, prepared)
    return Json(answer, status_code=status)


def prepare_cancel(c: ApiContext, body: Any, path_hash: bytes | None = None) -> PreparedCancel:
    """A signed Cancel, checked; `path_hash` is the order hash of the DELETE's path."""
    if not isinstance(body, dict):
        raise DexError(ErrorCode.INVALID_REQUEST, "a cancel item must be a JSON object")
    require_keys(body, ("cancel", "signature"))
    signed = check(Cancel, body["cancel"], body["signature"], c.domain)
    cancel, signature = signed.message, signed.signature
    if path_hash is not None and cancel.orderHash != path_hash:
        raise DexError(
            ErrorCode.INVALID_REQUEST,
            "cancel.orderHash: must equal the order hash in the path",
            field="cancel.orderHash",
        )
    cancel_hash = signed.verified()
    return PreparedCancel(
        CancelOrder(0, 0, cancel.orderHash, cancel.trader),
        Intake(signature=signature, signed_hash=cancel_hash),
    )


async def submit_cancel(c: ApiContext, prepared: PreparedCancel) -> Reply:
    return cancel_reply(c, prepared, await submit_command(c, prepared.command, prepared.intake))


def cancel_reply(c: ApiContext, prepared: PreparedCancel, outcome: Outcome | None) -> Reply:
    h = prepared.command.order_hash
    if outcome is None:
        return 202, {"orderHash": hex0x(h), "status": "pending"}
    try:
        return 200, cancel_answer(h, outcome)
    except DexError as exc:
        raise refused(c, exc) from None


@router.post(
    "/orders/cancel-all",
    summary="Cancel every order below a nonce, in one market or all (zero token addresses)",
    response_model=CancelAllAnswer,
    responses={
        202: {"model": CancelAllAnswer, "description": "engine slow: status pending"},
        **errors(*EDGE, *BODY, E.UNKNOWN_MARKET, *ENGINE),
    },
    openapi_extra=body_schema(CancelAllBody),
)
async def cancel_all(request: Request) -> Response:
    c = ctx(request)
    try:
        prepared = await prepare_cancel_all(c, await read_json_object(request))
    except DexError as exc:
        raise refused(c, exc) from None
    status, answer = await submit_cancel_all(c, prepared)
    return Json(answer, status_code=status)


@dataclass(frozen=True, slots=True)
class PreparedCancelAll:
    command: CancelAll
    intake: Intake
    signed_hash: bytes


async def prepare_cancel_all(c: ApiContext, body: Any) -> PreparedCancelAll:
    if not isinstance(body, dict):
        raise DexError(ErrorCode.INVALID_REQUEST, "a cancel-all must be a JSON object")
    require_keys(body, ("cancelAll", "signature"))
    signed = check(CancelAllMessage, body["cancelAll"], body["signature"], c.domain)
    msg, signature = signed.message, signed.signature
    market_id = await c.markets.for_cancel_all(msg.baseToken, msg.quoteToken)
    signed_hash = signed.verified()
    intake = Intake(
        signature=signature,
        signed_hash=signed_hash,
        base_token=msg.baseToken,
        quote_token=msg.quoteToken,
    )
    return PreparedCancelAll(CancelAll(0, 0, msg.trader, market_id, msg.nonceBelow), intake,
                             signed_hash)  # fmt: skip


async def submit_cancel_all(c: ApiContext, prepared: PreparedCancelAll) -> Reply:
    command = prepared.command
    outcome = await submit_command(c, command, prepared.intake)
    base = {
        "trader": command.trader,
        "market": command.market_id,
        "nonceBelow": str(command.nonce_below),
        "hash": hex0x(prepared.signed_hash),
    }
    if outcome is None:
        return 202, {**base, "status": "pending"}
    cancelled = sum(e.cancelled for e in outcome.events if isinstance(e, CancelAllApplied))
    return 200, {**base, "status": "applied", "cancelled": cancelled, "seq": outcome.seq}
