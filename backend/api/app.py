"""`create_app(...)`: the HTTP/WebSocket API (SPEC §9) from its collaborators, no globals.

Tests and `hybridex dev` pass in-process parts (InProcessEngineClient, MemoryFeedStore, a SQLite
session factory, MemoryRateLimiter); `hybridex api` runs `production_app` in each uvicorn worker
(TcpEngineClient, RedisFeedStore, PostgreSQL, RedisRateLimiter).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute

from backend import tracing
from backend.api.cache import SharedCache
from backend.api.catalog import MarketCatalog
from backend.api.deps import ApiContext, RateRules, ReadinessCheck
from backend.api.errors import install_error_handlers
from backend.api.metrics import ApiMetrics
from backend.api.middleware import EdgeMiddleware, Endpoint
from backend.api.openapi import install_openapi, operation_id
from backend.api.ratelimit import RateLimiter
from backend.api.routes import accounts, admin, batch, info, markets, orders, schedule, ws
from backend.api.sessions import SessionVerifier
from backend.api.tickers import TickerCache
from backend.api.ws_limits import ConnectionCounter
from backend.config import Settings
from backend.domain.errors import ConfigurationError
from backend.eip712 import signed
from backend.eip712.domain import Domain
from backend.engine.client import EngineClient
from backend.engine.feeds import FeedReader
from backend.settlement import api_routes as withdrawals

API_DESCRIPTION = """\
Signed-order API of Hybridex, a non-custodial hybrid exchange. Amounts, prices, nonces and
expiries are decimal strings of integers; `side` and `timeInForce` are numbers; errors answer
`{"error": {"code", "message"}}`. See docs/api.md for signing, error codes and the WebSocket.
"""


def domain_from_settings(settings: Settings) -> Domain:
    if settings.chain_id is None or settings.exchange_address is None:
        raise ConfigurationError(
            "the API needs HYBRIDEX_CHAIN_ID and HYBRIDEX_EXCHANGE_ADDRESS (the signing domain)"
        )
    return Domain(settings.chain_id, settings.exchange_address)


def create_app(
    *,
    settings: Settings,
    engine: EngineClient,
    feeds: FeedReader,
    sessions: sessionmaker[Session],
    limiter: RateLimiter,
    readiness: dict[str, ReadinessCheck] | None = None,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastAPI:
    """The app; it closes nothing it was given except through `on_shutdown`."""
    domain = domain_from_settings(settings)
    signed.select(settings.signature_check)
    context = ApiContext(
        settings=settings,
        domain=domain,
        engine=engine,
        feeds=feeds,
        sessions=sessions,
        limiter=limiter,
        rules=RateRules.from_settings(settings),
        markets=MarketCatalog(sessions),
        metrics=ApiMetrics(),
        tickers=TickerCache(settings.api_ws_ticker_interval_s),
        read_sessions=SessionVerifier(domain, max_lifetime_s=settings.api_session_max_s),
        books=SharedCache(settings.api_ws_book_cache_s),
        ws_connections=ConnectionCounter(settings.api_ws_max_connections_per_ip),
        readiness=dict(readiness or {}),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for close in on_shutdown:
            await close()

    app = FastAPI(
        title="Hybridex API",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # FastAPI's own OpenTelemetry: its server span when tracing is on (`backend.tracing`,
        # configured before the app), never its metrics or logs (the API's are Prometheus and
        # structlog). Left on, it asks the three global providers whether they are configured
        # on every request: ~6% of a worker's CPU at full load (docs/benchmarks.md).
        telemetry={"tracing": tracing.enabled(), "metrics": False, "logs": False},
    )
    install_openapi(app)
    app.state.ctx = context
    install_error_handlers(app)
    for module in (info, markets, orders, schedule, batch, accounts, withdrawals, ws, admin):
        app.include_router(module.router)
    app.add_middleware(EdgeMiddleware, context=context, direct=_direct_routes())
    return app


def _direct_routes() -> dict[tuple[str, str], tuple[BaseRoute, Endpoint]]:
    """Order intake, called by `EdgeMiddleware` without the router (see there)."""
    found: dict[tuple[str, str], tuple[BaseRoute, Endpoint]] = {}
    for route in orders.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is orders.place_order:
            found[("POST", route.path)] = (route, orders.place_order)
    if list(found) != [("POST", "/v1/orders")]:
        raise RuntimeError(f"order intake route not found where expected: {list(found)}")
    return found


def production_app() -> FastAPI:
    """The app of one `hybridex api` worker (uvicorn `--factory`): TcpEngineClient,
    RedisFeedStore, the configured database and the Redis (or memory) rate limiter."""
    import redis.asyncio as aioredis

    from backend.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
    from backend.api.readiness import database_check, engine_check, redis_check, rpc_check
    from backend.config import get_settings
    from backend.db.session import make_engine, session_factory
    from backend.engine.auth import Role
    from backend.engine.feed_redis import RedisFeedStore
    from backend.engine.tcp_client import TcpEngineClient
    from backend.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    tracing.configure("hybridex-api", settings.otel_endpoint)  # per worker process
    db = make_engine(settings.database_url)
    sessions = session_factory(db)
    engine = TcpEngineClient.from_settings(settings, Role.API)
    feeds = RedisFeedStore(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        retention=settings.engine_feed_retention,
    )
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    limiter: RateLimiter = (
        RedisRateLimiter.from_url(
            settings.redis_url,
            settings.redis_key_prefix,
            lease_tokens=settings.api_rate_lease_tokens,
            lease_s=settings.api_rate_lease_s,
        )
        if settings.api_rate_limiter == "redis"
        else MemoryRateLimiter()
    )

    async def close_all() -> None:
        await engine.close()
        await feeds.close()
        await limiter.close()
        await redis_client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
        db.dispose()

    app = create_app(
        settings=settings,
        engine=engine,
        feeds=feeds,
        sessions=sessions,
        limiter=limiter,
        readiness={
            "database": database_check(db),
            "redis": redis_check(redis_client),
            "engine": engine_check(engine),
            "rpc": rpc_check(settings.rpc_url, settings.chain_id),
        },
        on_shutdown=[close_all],
    )
    tune_gc()
    return app


# Python's default (700, 10, 10) runs a young pass every 700 net allocations.
API_GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """What a worker built at start-up (modules, routes, the OpenAPI models) lives as long as
    the process: frozen, the collector never walks it again; and fewer, larger young passes.
    The collector took 4.6% of a worker's CPU at full load, now too little to show in a
    profile (docs/benchmarks.md, 2026-12-07)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*API_GC_THRESHOLDS)


def granian_app() -> Any:
    """`production_app` for granian (`HYBRIDEX_API_SERVER=granian`), behind the proxy-header
    handling uvicorn applies itself: X-Forwarded-For is believed only from the trusted ranges."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from backend.config import get_settings

    return ProxyHeadersMiddleware(
        production_app(),  # type: ignore[arg-type]
        trusted_hosts=get_settings().trusted_proxies(),
    )
