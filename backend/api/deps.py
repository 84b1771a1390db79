"""The collaborators of one API app, held on `app.state`, and small helpers routes share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection, Request

from backend.api.cache import SharedCache
from backend.api.catalog import MarketCatalog
from backend.api.metrics import ApiMetrics
from backend.api.ratelimit import Decision, RateLimiter, RateRule
from backend.api.sessions import SessionVerifier
from backend.api.tickers import TickerCache
from backend.api.ws_limits import ConnectionCounter
from backend.config import Settings
from backend.domain.errors import DexError, ErrorCode
from backend.eip712.domain import Domain
from backend.engine.client import BookSnapshot, EngineClient
from backend.engine.feeds import FeedReader

T = TypeVar("T")

ReadinessCheck = Callable[[], Awaitable[None]]
RATE_LIMIT_SCOPE_KEY = "hybridex.ratelimit"


@dataclass(frozen=True, slots=True)
class RateRules:
    ip: RateRule
    trader: RateRule
    cancel: RateRule

    @classmethod
    def from_settings(cls, s: Settings) -> RateRules:
        return cls(
            ip=RateRule("ip", s.api_rate_ip_per_s, s.api_rate_ip_burst),
            trader=RateRule("trader", s.api_rate_trader_per_s, s.api_rate_trader_burst),
            cancel=RateRule("cancel", s.api_rate_cancel_per_s, s.api_rate_cancel_burst),
        )


@dataclass(slots=True)
class ApiContext:
    settings: Settings
    domain: Domain
    engine: EngineClient
    feeds: FeedReader
    sessions: sessionmaker[Session]
    limiter: RateLimiter
    rules: RateRules
    markets: MarketCatalog
    metrics: ApiMetrics
    tickers: TickerCache
    read_sessions: SessionVerifier
    books: SharedCache[BookSnapshot]
    """Book snapshots for WebSocket subscribers, one engine request per market and interval."""
    ws_connections: ConnectionCounter
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)

    async def db(self, fn: Callable[[Session], T]) -> T:
        """Run a read in a worker thread with its own session (the API writes no table)."""

        def run() -> T:
            with self.sessions() as session:
                return fn(session)

        return await asyncio.to_thread(run)


def ctx(conn: HTTPConnection) -> ApiContext:
    context: ApiContext = conn.app.state.ctx
    return context


def note_rate_decision(request: Request, decision: Decision) -> None:
    """Report a route-level bucket (per trader) in the answer's X-RateLimit-* headers when it
    is tighter than the per-IP bucket the middleware applied."""
    holder: list[Decision] | None = request.scope.get(RATE_LIMIT_SCOPE_KEY)
    if holder is not None:
        holder.append(decision)


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (the size limit is enforced while it is received)."""
    raw = await request.body()
    if not raw:
        raise DexError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DexError(ErrorCode.INVALID_REQUEST, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DexError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
    return body


def require_keys(
    body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    missing = [k for k in required if k not in body]
    if missing:
        raise DexError(ErrorCode.INVALID_REQUEST, f"{missing[0]}: is required", field=missing[0])
    extra = sorted(set(body) - set(required) - set(optional))
    if extra:
        raise DexError(ErrorCode.INVALID_REQUEST, f"{extra[0]}: unknown field", field=extra[0])


def parse_hash_param(value: str, name: str = "hash") -> bytes:
    if len(value) != 66 or not value.startswith("0x"):
        raise DexError(ErrorCode.INVALID_REQUEST, f"{name}: must be 0x-prefixed 32-byte hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise DexError(
            ErrorCode.INVALID_REQUEST, f"{name}: must be 0x-prefixed 32-byte hex"
        ) from None


def parse_address_param(value: str, name: str = "address") -> str:
    from backend.eip712.parsing import parse_address

    try:
        return parse_address(value, name)
    except DexError as exc:
        raise DexError(ErrorCode.INVALID_REQUEST, exc.message) from None
