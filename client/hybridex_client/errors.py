"""The API's errors as exceptions: one base class with the stable code, the HTTP status and
the message; a subclass per family so callers can catch what they can act on."""

from __future__ import annotations

from typing import Any, Final


class HybridexError(Exception):
    """Any failure the client reports: an API error or a client-side protocol problem."""


class ApiError(HybridexError):
    """The API answered `{"error": {"code", "message"}}` with status `status`."""

    def __init__(
        self, code: str, message: str, status: int = 0, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.retry_after = retry_after
        """Seconds to wait before retrying (`Retry-After`), on 429 and some 503 answers."""


class InvalidRequestError(ApiError):
    """400: the request or a field of the signed message is malformed; fix it, do not retry."""


class AuthError(ApiError):
    """401/403: a bad signature, a missing/expired/foreign read Session, an exiting account."""


class NotFoundError(ApiError):
    """404: unknown market, order or route."""


class ConflictError(ApiError):
    """409: a reused nonce, an order below the CancelAll bar, a duplicate client order id."""


class RejectedError(ApiError):
    """422: the engine refused it (balance, price band, size, post-only, FOK, market state)."""


class RateLimitedError(ApiError):
    """429: wait `retry_after` seconds."""


class UnavailableError(ApiError):
    """503 (and 5xx): nothing was decided; retrying the same signed request is safe."""


class PendingError(HybridexError):
    """202: the request reached the engine but its outcome is not known yet."""

    def __init__(self, order_hash: str) -> None:
        super().__init__(f"{order_hash}: pending; follow it on orders: or GET /v1/orders/{{hash}}")
        self.order_hash = order_hash


BY_CODE: Final[dict[str, type[ApiError]]] = {
    "INVALID_REQUEST": InvalidRequestError,
    "INVALID_ORDER": InvalidRequestError,
    "INVALID_TICK": InvalidRequestError,
    "INVALID_LOT": InvalidRequestError,
    "EXPIRED": InvalidRequestError,
    "FEE_BOUND_TOO_LOW": InvalidRequestError,
    "PAYLOAD_TOO_LARGE": InvalidRequestError,
    "INVALID_SIGNATURE": AuthError,
    "SESSION_REQUIRED": AuthError,
    "SESSION_INVALID": AuthError,
    "SESSION_FORBIDDEN": AuthError,
    "ACCOUNT_EXITING": AuthError,
    "ADMIN_UNAUTHORIZED": AuthError,
    "UNKNOWN_MARKET": NotFoundError,
    "ORDER_NOT_FOUND": NotFoundError,
    "RECONCILIATION_NOT_RUN": NotFoundError,
    "NONCE_REUSED": ConflictError,
    "ORDER_CANCELLED": ConflictError,
    "DUPLICATE_CLIENT_ORDER_ID": ConflictError,
    "INSUFFICIENT_BALANCE": RejectedError,
    "PRICE_OUT_OF_BAND": RejectedError,
    "ORDER_TOO_LARGE": RejectedError,
    "POST_ONLY_WOULD_TAKE": RejectedError,
    "FOK_NOT_FILLABLE": RejectedError,
    "MARKET_NOT_ACCEPTING": RejectedError,
    "RATE_LIMITED": RateLimitedError,
    "TOO_MANY_CONNECTIONS": RateLimitedError,
    "ENGINE_UNAVAILABLE": UnavailableError,
    "PERSISTENCE_LAGGING": UnavailableError,
    "RATE_LIMITER_UNAVAILABLE": UnavailableError,
}
"""Known codes (docs/api.md "Errors"); an unknown code falls back to its status's class."""

BY_STATUS: Final[dict[int, type[ApiError]]] = {
    400: InvalidRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    422: RejectedError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_from(status: int, body: Any, headers: dict[str, str] | None = None) -> ApiError:
    """The exception for an error answer; tolerates a body that is not the API's shape
    (a proxy's HTML page, an empty body) by naming the status instead."""
    code, message = "HTTP_ERROR", f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", code))
        message = str(body["error"].get("message", message))
    retry_after = None
    raw = (headers or {}).get("retry-after")
    if raw is not None:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None
    cls = (
        BY_CODE.get(code)
        or BY_STATUS.get(status)
        or (UnavailableError if status >= 500 else ApiError)
    )
    return cls(code, message, status, retry_after=retry_after)
