"""The edge of every HTTP request (pure ASGI, no per-request task): the per-IP (or cancel) rate
limit with `X-RateLimit-*` headers on every answer, the request body limit, and metrics.

A body announced larger than the limit is refused (413) before a byte of it is read; a body
streamed without a length is counted as it arrives and refused as soon as it passes the limit.

`direct` routes (order intake, the hot path) are called from here: the same endpoint function
and the same `DexError` handler, without the router's matching, dependency solving and
exception middleware (about a fifth of a worker's time per order). Any other exception
propagates as it would from the router (the app's 500 handler answers it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.deps import RATE_LIMIT_SCOPE_KEY, ApiContext
from backend.api.errors import dex_error_response, error_body
from backend.api.ratelimit import Decision
from backend.domain.errors import DexError, ErrorCode

log = structlog.get_logger("backend.api")

_UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})


def is_cancel(method: str, path: str) -> bool:
    return (method == "DELETE" and path.startswith("/v1/orders/")) or (
        method == "POST" and path == "/v1/orders/cancel-all"
    )


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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ctx = self.ctx
        method: str = scope["method"]
        path: str = scope["path"]
        holder: list[Decision] = []
        scope[RATE_LIMIT_SCOPE_KEY] = holder
        status_box = [500]

        if path not in _UNLIMITED_PATHS:
            rule = ctx.rules.cancel if is_cancel(method, path) else ctx.rules.ip
            try:
                holder.append(await ctx.limiter.hit(client_ip(scope), rule))
            except Exception as exc:  # the limiter's store is down: admit, do not fail reads
                log.warning("rate_limiter_unavailable", error=repr(exc))
            if holder and not holder[0].allowed:
                decision = holder[0]
                ctx.metrics.rejections.labels(ErrorCode.RATE_LIMITED.name).inc()
                await self._answer(
                    send, status=429, code=ErrorCode.RATE_LIMITED,
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
                        send, status=413, code=ErrorCode.PAYLOAD_TOO_LARGE,
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
                if holder:
                    headers = list(message.get("headers", ()))
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

    @staticmethod
    async def _call_direct(
        direct: tuple[BaseRoute, Endpoint], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route, endpoint = direct
        scope["route"] = route
        try:
            response = await endpoint(Request(scope, receive))
        except DexError as exc:
            response = dex_error_response(exc)
        await response(scope, receive, send)

    async def _answer(
        self,
        send: Send,
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


def _tightest(decisions: list[Decision]) -> Decision:
    return min(decisions, key=lambda d: (d.allowed, d.remaining))
