"""The production modules of every process, run together in one process for `hybridex dev`.

- engine: `EngineService` (real journal files, snapshots, the SQLite persister, in-memory feeds),
  reached through `InProcessEngineClient` instead of TCP;
- api: `create_app(...)` served by uvicorn on the same event loop;
- indexer: the `Indexer` daemon in a thread, its outbox submitting to the engine's loop;
- settlement: `SettlementLoop` (the Celery task bodies, called in a thread; no broker);
- relay: `Relay` as a task on the same loop, when there is a stream (backend/devstack/stream).

Only the wiring differs from production; no module has a dev branch of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from backend.api.app import create_app
from backend.api.ratelimit import MemoryRateLimiter
from backend.api.readiness import database_check, engine_check, rpc_check
from backend.config import Settings
from backend.db.session import make_engine, session_factory
from backend.devstack.markets import DemoMarket, listing_commands
from backend.domain.errors import DexError
from backend.engine.auth import Role
from backend.engine.client import EngineClient, EngineOutcomeUnknownError, Intake, Outcome
from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.runtime import service_options
from backend.engine.server import EngineServer
from backend.engine.service import EngineService
from backend.matching.commands import Command
from backend.reconcile.engine_side import loop_engine_read
from backend.reconcile.tasks import ReconcileLoop
from backend.settlement.context import SettlementContext, set_context
from backend.settlement.inprocess import SettlementLoop
from backend.settlement.releases import EngineSubmit
from backend.stream.relay import Relay
from backend.stream.relay import from_settings as relay_from_settings
from indexer.daemon import Indexer, IndexerConfig
from indexer.engine_sink import JournalDirLookup
from indexer.projection import Outbox
from indexer.rpc import RpcClient

log = structlog.get_logger("backend.devstack")


class LoopEngineSink:
    """The indexer's `CommandSink` from its own thread onto the engine's running event loop."""

    def __init__(
        self, client: EngineClient, loop: asyncio.AbstractEventLoop, *, timeout_s: float
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_s = timeout_s

    def submit(self, command: Command, *, ref: bytes) -> Outcome:
        coro = self.client.submit(command, timeout=self.timeout_s, intake=Intake(signed_hash=ref))
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout_s + 5)
        except concurrent.futures.TimeoutError:  # the client's own timeout should come first
            raise EngineOutcomeUnknownError("no answer from the in-process engine") from None


def loop_submitter(
    client: EngineClient, loop: asyncio.AbstractEventLoop, *, timeout_s: float
) -> EngineSubmit:
    """Settlement's way to the engine (`ReleaseWithdrawal`) from its thread onto the loop."""

    def submit(command: Command) -> Outcome:
        future = asyncio.run_coroutine_threadsafe(client.submit(command, timeout=timeout_s), loop)
        try:
            return future.result(timeout_s + 5)
        except concurrent.futures.TimeoutError:
            raise EngineOutcomeUnknownError("no answer from the in-process engine") from None

    return submit


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `hybridex dev` stops every part together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Services:
    settings: Settings
    factory: sessionmaker[Session]
    service: EngineService
    client: InProcessEngineClient
    server: _Server
    indexer: Indexer
    settlement: SettlementLoop
    reconcile: ReconcileLoop
    engine_server: EngineServer | None = None
    """The engine port on its unix socket (dev keys), for the CLI: `hybridex reconcile`, …"""
    threads: list[threading.Thread] = field(default_factory=list)
    indexer_error: BaseException | None = None
    relay: Relay | None = None
    """`hybridex relay` on this loop, when the dev stack has a stream (backend/devstack/stream)."""
    relay_task: asyncio.Task[None] | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"


async def start_services(
    settings: Settings, journal_dir: Path, markets: list[DemoMarket]
) -> Services:
    """Engine (markets listed through journaled commands), API, indexer and settlement."""
    factory = session_factory(make_engine(settings.database_url))
    feeds = MemoryFeedStore(retention=settings.engine_feed_retention)
    service = await EngineService.open(
        journal_dir=journal_dir,
        session_factory=factory,
        feeds=feeds,
        **service_options(settings),
    )
    client = InProcessEngineClient(service)
    for command, intake in listing_commands(markets):
        if service.engine.has_market(command.spec.market_id):  # listed by an earlier run
            continue
        outcome = await client.submit(command, timeout=10.0, intake=intake)
        log.info("market_listed", market_id=command.spec.market_id, seq=outcome.seq)

    app = create_app(
        settings=settings,
        engine=client,
        feeds=feeds,
        sessions=factory,
        limiter=MemoryRateLimiter(),
        readiness={
            "database": database_check(factory.kw["bind"]),
            "engine": engine_check(client),
            "rpc": rpc_check(settings.rpc_url, settings.chain_id),
        },
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        forwarded_allow_ips=settings.trusted_proxies(),
        ws_max_size=settings.api_ws_max_message_bytes,
    )
    server = _Server(config)

    loop = asyncio.get_running_loop()
    rpc = RpcClient(settings.rpc_url, timeout_s=settings.rpc_timeout_s)
    outbox = Outbox(
        factory,
        LoopEngineSink(client, loop, timeout_s=settings.rpc_timeout_s),
        JournalDirLookup(journal_dir),
    )
    assert settings.exchange_address is not None
    indexer = Indexer(
        IndexerConfig(
            exchange_address=settings.exchange_address,
            chain_id=settings.chain_id,
            confirmations=settings.confirmations,
            reorg_window=settings.reorg_window,
            start_block=settings.indexer_start_block,
            poll_interval_s=settings.indexer_poll_interval_s,
            fee_recipient=settings.fee_recipient,
            cancel_delay_s=settings.cancel_delay_s,
            stream=settings.stream_url is not None,
        ),
        rpc,
        factory,
        outbox,
    )
    # Fill settlement states go to the same in-process feeds the API serves.
    ctx = replace(
        SettlementContext.from_settings(settings, factory=factory),
        fill_feed=feeds,
        engine=loop_submitter(client, loop, timeout_s=settings.rpc_timeout_s),
    )
    set_context(ctx)
    services = Services(
        settings,
        factory,
        service,
        client,
        server,
        indexer,
        SettlementLoop(ctx),
        ReconcileLoop(
            factory,
            settings,
            settings.exchange_address,
            loop_engine_read(client.balances, loop, timeout_s=settings.rpc_timeout_s),
        ),
    )
    services.engine_server = await _serve_engine_port(service, settings)
    if settings.stream_url is not None:
        services.relay = relay_from_settings(settings, factory, settings.stream_url)
        services.relay_task = asyncio.create_task(services.relay.run())

    def run_indexer() -> None:
        try:
            indexer.run()
        except BaseException as exc:  # surfaced by `hybridex dev`, which then stops
            services.indexer_error = exc
            log.error("indexer_stopped", error=str(exc))
        finally:
            rpc.close()

    services.threads.append(threading.Thread(target=run_indexer, name="indexer", daemon=True))
    for thread in services.threads:
        thread.start()
    services.settlement.start()
    services.reconcile.start()
    return services


async def _serve_engine_port(service: EngineService, settings: Settings) -> EngineServer | None:
    """The engine port on `settings.engine_socket_path`, as `hybridex engine` serves it, so the
    operator CLI works against the dev stack too. Dev keys only; a path too long for a unix
    socket leaves the port closed (the stack itself does not need it)."""
    try:
        server = EngineServer(service, {role: settings.engine_keys(role.value) for role in Role})
        await server.start_unix(settings.engine_socket_path())
    except DexError as exc:
        log.warning("dev_engine_port_closed", reason=exc.message)
        return None
    return server


async def serve_until(services: Services, stop: asyncio.Event) -> None:
    """Serve the API until `stop` is set (or uvicorn fails to start), then stop every part."""
    serving = asyncio.create_task(services.server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        services.server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        stopping.cancel()
        await stop_services(services)


async def stop_services(services: Services) -> None:
    services.indexer.stop_event.set()
    if services.relay is not None and services.relay_task is not None:
        services.relay.stop()  # after its batch in flight; what is left waits in the outbox
        with contextlib.suppress(Exception):
            await services.relay_task
    services.settlement.stop()
    services.reconcile.stop()
    if services.engine_server is not None:
        await services.engine_server.stop()
    for thread in services.threads:
        await asyncio.to_thread(thread.join, 15)
    set_context(None)
    try:
        await services.client.close()
    except DexError as exc:
        log.warning("engine_close_failed", error=exc.message)
    bind = services.factory.kw["bind"]
    bind.dispose()
