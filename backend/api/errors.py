"""One mapping from `ErrorCode` to HTTP, and the handlers that answer every failure in one shape:
``{"error": {"code": "...", "message": "..."}}`` (SPEC §9).

Routes raise `DexError`; nothing else in the API chooses a status code. Bad input of any kind
(malformed JSON, FastAPI's own validation, unknown routes) answers 4xx in the same shape; only a
bug answers 500, and it is logged with its traceback.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from backend.domain.errors import DexError, ErrorCode

log = structlog.get_logger("backend.api")

STATUS_BY_CODE: Final[dict[ErrorCode, int]] = {
    # malformed or invalid request
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_ORDER: 400,
    ErrorCode.INVALID_TICK: 400,
    ErrorCode.INVALID_LOT: 400,
    ErrorCode.EXPIRED: 400,
    ErrorCode.FEE_BOUND_TOO_LOW: 400,
    ErrorCode.SCHEDULE_TOO_SOON: 400,
    # the signature does not prove the trader's consent
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.ADMIN_UNAUTHORIZED: 401,
    ErrorCode.SESSION_REQUIRED: 401,
    ErrorCode.SESSION_INVALID: 401,
    ErrorCode.SESSION_FORBIDDEN: 403,
    ErrorCode.ACCOUNT_EXITING: 403,
    ErrorCode.UNKNOWN_MARKET: 404,
    ErrorCode.ORDER_NOT_FOUND: 404,
    ErrorCode.RECONCILIATION_NOT_RUN: 404,
    # conflicts with the trader's earlier messages
    ErrorCode.NONCE_REUSED: 409,
    ErrorCode.ORDER_CANCELLED: 409,
    ErrorCode.DUPLICATE_CLIENT_ORDER_ID: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    # well-formed, signed, but refused by risk or matching rules
    ErrorCode.INSUFFICIENT_BALANCE: 422,
    ErrorCode.PRICE_OUT_OF_BAND: 422,
    ErrorCode.ORDER_TOO_LARGE: 422,
    ErrorCode.POST_ONLY_WOULD_TAKE: 422,
    ErrorCode.FOK_NOT_FILLABLE: 422,
    ErrorCode.MARKET_NOT_ACCEPTING: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.ENGINE_UNAVAILABLE: 503,
    ErrorCode.PERSISTENCE_LAGGING: 503,
    ErrorCode.RATE_LIMITER_UNAVAILABLE: 503,
    # the API's own engine key or allow-list is wrong: a deployment fault, not the caller's
    ErrorCode.ENGINE_UNAUTHENTICATED: 503,
    ErrorCode.ENGINE_FORBIDDEN: 503,
}
"""HTTP status of each code; any code not listed is a server fault (500)."""

INTERNAL = "INTERNAL"
REQUEST_ID_SCOPE_KEY = "hybridex.request_id"


def http_status(code: ErrorCode) -> int:
    return STATUS_BY_CODE.get(code, 500)


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        error_body(code, message), status_code=status, media_type="application/json",
        headers=headers,
    )  # fmt: skip


def dex_error_response(exc: DexError) -> Response:
    status = http_status(exc.code)
    headers: dict[str, str] = {}
    retry_after = exc.context.get("retry_after")
    if exc.code is ErrorCode.RATE_LIMITED and retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    if status >= 500:
        log.error("request_failed", code=exc.code.name, message=exc.message)
    return error_response(status, exc.code.name, exc.message, headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    async def on_dex_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DexError)
        return dex_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, ErrorCode.INVALID_REQUEST.name, _validation_message(exc))

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers: dict[str, Any] = dict(exc.headers or {})
        return error_response(
            exc.status_code, ErrorCode.INVALID_REQUEST.name, str(exc.detail), headers
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Answered outside the edge middleware (after its log context is gone): the id the
        # caller can quote comes from the scope.
        rid = request.scope.get(REQUEST_ID_SCOPE_KEY, b"").decode()
        log.exception("unhandled_error", error=type(exc).__name__, request_id=rid)
        headers = {"x-request-id": rid} if rid else None
        return error_response(500, INTERNAL, "internal error", headers)

    app.add_exception_handler(DexError, on_dex_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
