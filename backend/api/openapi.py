"""The OpenAPI document as the API really behaves (docs/api.md; SPEC §9).

Operation ids are the route functions' names (`place_order`), not FastAPI's path-derived
defaults, so generated clients get stable method names. Error answers are declared per route
by `ErrorCode` (`errors(...)`), their statuses taken from the one `STATUS_BY_CODE` mapping,
each code an example of its status. FastAPI's own 422 `HTTPValidationError` is dropped: bad
input answers 400 `INVALID_REQUEST` in the error body (`backend.api.errors`).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from backend.api.errors import http_status
from backend.api.schemas import ErrorBody, body_components
from backend.api.sessions import HEADER
from backend.domain.errors import ErrorCode

E = ErrorCode

SESSION_SCHEME: Final = "traderSession"
ADMIN_SCHEME: Final = "adminBearer"

SECURITY_SCHEMES: Final[dict[str, Any]] = {
    SESSION_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hybridex-Session",
        "description": 'base64url(JSON {session: {trader, scope: "read", expiry}, '
        "signature}): the trader's EIP-712 Session (docs/api.md, Private data)",
    },
    ADMIN_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "the operator's `HYBRIDEX_ADMIN_TOKEN`",
    },
}
assert SECURITY_SCHEMES[SESSION_SCHEME]["name"].lower() == HEADER

PRIVATE: Final[dict[str, Any]] = {"security": [{SESSION_SCHEME: []}, {ADMIN_SCHEME: []}]}
"""`openapi_extra` of a private read: the trader's session, or the operator's token."""
OPERATOR: Final[dict[str, Any]] = {"security": [{ADMIN_SCHEME: []}]}

# What every /v1 route can answer before it runs (middleware.py): the per-IP bucket.
EDGE: Final = (E.RATE_LIMITED,)
# A malformed query or path parameter.
PARAMS: Final = (E.INVALID_REQUEST,)
# A private read's session checks (sessions.py).
SESSION: Final = (E.SESSION_REQUIRED, E.SESSION_INVALID, E.SESSION_FORBIDDEN,
                  E.INVALID_SIGNATURE)  # fmt: skip
# A signed write on its way to the engine.
BODY: Final = (E.INVALID_REQUEST, E.PAYLOAD_TOO_LARGE, E.INVALID_SIGNATURE)
ENGINE: Final = (E.ENGINE_UNAVAILABLE, E.ENGINE_UNAUTHENTICATED, E.ENGINE_FORBIDDEN,
                 E.PERSISTENCE_LAGGING)  # fmt: skip

_EXAMPLES: Final[dict[ErrorCode, str]] = {
    E.INVALID_REQUEST: "order: is required",
    E.INVALID_ORDER: "amount: must be a decimal string of an integer",
    E.INVALID_SIGNATURE: "the signature recovers 0x…, not the trader 0x…",
    E.RATE_LIMITED: "too many requests from this address; retry in 1 s",
    E.RATE_LIMITER_UNAVAILABLE: "the rate limiter is unavailable; writes are refused until "
    "it returns (cancels still pass): retry shortly",
    E.SESSION_REQUIRED: "0x…'s orders, fills and balances are private: send the trader's "
    f'signed Session (EIP-712, scope "read") in {HEADER} (docs/api.md)',
    E.UNKNOWN_MARKET: "no market WETH-DAI",
    E.ENGINE_UNAVAILABLE: "engine unavailable: connection refused",
}


def errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer `codes`: one entry per status, the error body
    as its schema and each code as a named example."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(http_status(code), []).append(code)
    out: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        names = [c.name for c in group]
        out[status] = {
            "model": ErrorBody,
            "description": " / ".join(names),
            "content": {
                "application/json": {
                    "examples": {
                        c.name: {"value": {"error": {"code": c.name,
                                                     "message": _EXAMPLES.get(c, c.name)}}}
                        for c in group
                    }
                }
            },
        }  # fmt: skip
    return out


def operation_id(route: APIRoute) -> str:
    return route.name


def documented_codes(operation: dict[str, Any], status: int) -> set[str]:
    """The error codes `operation` (of the document) declares for `status`."""
    response = operation.get("responses", {}).get(str(status), {})
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return set(examples)


def _is_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).endswith("/HTTPValidationError")


def install_openapi(app: FastAPI) -> None:
    """Builds `app`'s document once, without FastAPI's 422 and with the security schemes."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                responses = operation.get("responses", {})
                if _is_validation_error(responses.get("422", {})):
                    del responses["422"]
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(body_components())
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        components["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
