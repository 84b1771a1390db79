"""The edge of every HTTP request (pure ASGI, no per-request task): the per-IP (or cancel) rate
limit with `X-RateLimit-*` headers on every answer, the request body limit, and metrics.

A body announced larger than the limit is refused (413) before a byte of it is read; a body
streamed without a length is counted as it arrives and refused as soon as it passes the limit.

`direct` routes (order intake, the hot path) are called from here: the same endpoint function
and the same `DexError` handler, without the router's matching, dependency solving and
exception middleware (about a fifth of a worker's time per order). Any other exception
propagates as it would from the router (the app's 500 handler answers it).

When the limiter's store (Redis) fails or does not answer within
`HYBRIDEX_API_RATE_LIMITER_TIMEOUT_S`, each route class decides (docs/api.md "Rate limits"):
cancels and cancel-all pass (a trader must always be able to pull orders), reads and WebSocket
handshakes pass (fail open: they change nothing), writes (orders, withdrawals, anything not a
GET) are refused `503 RATE_LIMITER_UNAVAILABLE` (fail closed: an unlimited write path is what
the limiter exists to prevent).

A WebSocket handshake takes a token from the per-IP bucket and one of the address's
connections in this worker (`ws_limits.py`); a refused handshake answers HTTP 429 with the
usual error body (code `RATE_LIMITED` or `TOO_MANY_CONNECTIONS`).

The client address is the peer's, or, when the peer is in `HYBRIDEX_API_TRUSTED_PROXIES`, the
right-most X-Forwarded-For hop outside those ranges (uvicorn's proxy headers, configured from
the setting by `hybridex api`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import tracing
from backend.api.deps import RATE_LIMIT_SCOPE_KEY, ApiContext
from backend.api.errors import REQUEST_ID_SCOPE_KEY, dex_error_response, error_body
from backend.api.ratelimit import Decision, LimiterUnavailableError, RateRule, hit_within
from backend.domain.errors import DexError, ErrorCode

log = structlog.get_logger("backend.api")

_UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})

REQUEST_ID_HEADER = b"x-request-id"
# A caller's own id is kept when it is safe to log and echo (a proxy's or the client's trace
# id); anything else is replaced, never reflected.
_CALLER_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")


def request_id(scope: Scope) -> bytes:
    """The request's id: the caller's X-Request-Id when well formed, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            if _CALLER_REQUEST_ID.fullmatch(value):
                return bytes(value)
            break
    return secrets.token_hex(8).encode()


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_cancel(method: str, path: str) -> bool:
    return (method == "DELETE" and path.startswith("/v1/orders/")) or (
        method == "POST" and path == "/v1/orders/cancel-all"
    )


BATCH_PATH = "/v1/orders/batch"


def fails_open(method: str, path: str) -> bool:
    """Whether a request is admitted when the limiter cannot answer (see the module doc). A
    batch passes the edge: what it holds decides (orders refused, cancels pass; batch.py)."""
    return method in _READ_METHODS or is_cancel(method, path) or path == BATCH_PATH


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


Endpoint = Callable[[Request], Awaitable[Response]]


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        context: ApiContext,
        direct: Mapping[tuple[str, str], tuple[BaseRoute, Endpoint]] | None = None,
    ) -> None:
        self.app = app
        self.ctx = context
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope[REQUEST_ID_SCOPE_KEY] = request_id(scope)
        bound = structlog.contextvars.bind_contextvars(request_id=rid.decode())
        if tracing.enabled():  # FastAPI's own server span is current: name the request on it
            trace.get_current_span().set_attribute("hybridex.request_id", rid.decode())
        try:
            await self._http(scope, receive, send, rid)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    async def _http(self, scope: Scope, receive: Receive, send: Send, rid: bytes) -> None:
        started = time.perf_counter()
        ctx = self.ctx
        method: str = scope["method"]
        path: str = scope["path"]
        holder: list[Decision] = []
        scope[RATE_LIMIT_SCOPE_KEY] = holder
        status_box = [500]

        if path not in _UNLIMITED_PATHS:
            rule = ctx.rules.cancel if is_cancel(method, path) else ctx.rules.ip
            decision = await self._hit(client_ip(scope), rule, fails_open(method, path))
            if decision is None:
                await self._answer(
                    send, rid, status=503, code=ErrorCode.RATE_LIMITER_UNAVAILABLE,
                    message="the rate limiter is unavailable; writes are refused until it "
                    "returns (cancels still pass): retry shortly",
                    holder=holder, retry_after=1,
                )  # fmt: skip
                self._observe(scope, method, 503, started)
                return
            if decision is not _ADMITTED:
                holder.append(decision)
            if holder and not holder[0].allowed:
                decision = holder[0]
                ctx.metrics.rejections.labels(ErrorCode.RATE_LIMITED.name).inc()
                await self._answer(
                    send, rid, status=429, code=ErrorCode.RATE_LIMITED,
                    message=f"too many requests from this address; "
                    f"retry in {decision.retry_after_s} s",
                    holder=holder, retry_after=decision.retry_after_s,
                )  # fmt: skip
                self._observe(scope, method, 429, started)
                return

        limit = ctx.settings.api_max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    announced = 0
                if announced > limit:
                    ctx.metrics.rejections.labels(ErrorCode.PAYLOAD_TOO_LARGE.name).inc()
                    await self._answer(
                        send, rid, status=413, code=ErrorCode.PAYLOAD_TOO_LARGE,
                        message=f"request body of {announced} bytes exceeds {limit}",
                        holder=holder,
                    )  # fmt: skip
                    self._observe(scope, method, 413, started)
                    return
                break

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise DexError(
                        ErrorCode.PAYLOAD_TOO_LARGE, f"request body exceeds {limit} bytes"
                    )
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER, rid))
                if holder:
                    headers.extend(_tightest(holder).headers())
                message["headers"] = headers
            await send(message)

        try:
            direct = self.direct.get((method, path))
            if direct is None:
                await self.app(scope, limited_receive, send_with_headers)
            else:
                await self._call_direct(direct, scope, limited_receive, send_with_headers)
        finally:
            self._observe(scope, method, status_box[0], started)

    async def _hit(self, key: str, rule: RateRule, open_on_failure: bool) -> Decision | None:
        """The bucket's decision; without an answer from the store, `_ADMITTED` for a route
        class that fails open and None for one that fails closed."""
        ctx = self.ctx
        try:
            return await hit_within(ctx.limiter, key, rule, ctx.settings.api_rate_limiter_timeout_s)
        except LimiterUnavailableError as exc:
            ctx.metrics.limiter_failures.labels("open" if open_on_failure else "closed").inc()
            log.warning("rate_limiter_unavailable", error=str(exc), admitted=open_on_failure)
            if not open_on_failure:
                ctx.metrics.rejections.labels(ErrorCode.RATE_LIMITER_UNAVAILABLE.name).inc()
                return None
            return _ADMITTED

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handshake's limits (per-IP bucket, open connections); then the app. The
        connection's log events carry one request id, like an HTTP request's."""
        bound = structlog.contextvars.bind_contextvars(request_id=request_id(scope).decode())
        try:
            await self._websocket_limited(scope, receive, send)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    async def _websocket_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        ip = client_ip(scope)
        decision = await self._hit(ip, ctx.rules.ip, True)
        if decision is not None and not decision.allowed:
            await _deny_websocket(
                scope, receive, send, status=429, code=ErrorCode.RATE_LIMITED,
                message=f"too many requests from this address; retry in {decision.retry_after_s} s",
            )  # fmt: skip
            ctx.metrics.rejections.labels(ErrorCode.RATE_LIMITED.name).inc()
            return
        connections = ctx.ws_connections
        if not connections.acquire(ip):
            await _deny_websocket(
                scope, receive, send, status=429, code=ErrorCode.TOO_MANY_CONNECTIONS,
                message=f"this address already holds {connections.max_per_ip} WebSocket "
                "connections to this server; close one first",
            )  # fmt: skip
            ctx.metrics.rejections.labels(ErrorCode.TOO_MANY_CONNECTIONS.name).inc()
            return
        ctx.metrics.ws_open.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            connections.release(ip)
            ctx.metrics.ws_open.dec()

    @staticmethod
    async def _call_direct(
        direct: tuple[BaseRoute, Endpoint], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route, endpoint = direct
        scope["route"] = route
        if tracing.enabled():  # the router, which would name FastAPI's span, is skipped
            span = trace.get_current_span()
            span.update_name(f"{scope['method']} {route.path}")  # type: ignore[attr-defined]
            span.set_attribute("http.route", route.path)  # type: ignore[attr-defined]
        try:
            response = await endpoint(Request(scope, receive))
        except DexError as exc:
            response = dex_error_response(exc)
        await response(scope, receive, send)

    async def _answer(
        self,
        send: Send,
        rid: bytes,
        *,
        status: int,
        code: ErrorCode,
        message: str,
        holder: list[Decision],
        retry_after: int | None = None,
    ) -> None:
        body = error_body(code.name, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER, rid),
        ]
        if holder:
            headers.extend(_tightest(holder).headers())
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        if status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: Scope, method: str, status: int, started: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.ctx.metrics.observe_request(method, template, status, time.perf_counter() - started)


# "Admitted without a decision" (the store failed and the route class fails open).
_ADMITTED: Decision = Decision(True, 0, 0, 0, 0)

# A WebSocket refused before the handshake, where the server cannot send an HTTP answer.
WS_POLICY_CLOSE = 1008


async def _deny_websocket(
    scope: Scope, receive: Receive, send: Send, *, status: int, code: ErrorCode, message: str
) -> None:
    """Refuse a handshake: an HTTP answer with the error body where the server supports the
    ASGI denial extension (uvicorn does), else a close with the code as its reason."""
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        body = error_body(code.name, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": WS_POLICY_CLOSE, "reason": code.name})


def _tightest(decisions: list[Decision]) -> Decision:
    return min(decisions, key=lambda d: (d.allowed, d.remaining))
