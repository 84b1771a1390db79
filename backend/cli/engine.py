"""`hybridex engine`: the single-writer engine process (SPEC §5, §11).

Opens the journal (snapshot + replay), persists events to the database, publishes feeds to
Redis, and serves `TcpEngineClient`s on its unix socket (or TCP), each authenticated with its
role's key. SIGTERM / SIGINT: stop accepting, finish the current group, flush consumers, write
a snapshot, exit 0. A corrupt journal, or one behind the database's or the feed's cursor,
exits 3 with the reason on stderr (docs/runbook.md).

`hybridex engine --verify-journal DIR` replays DIR from scratch (no snapshot, no consumers)
and prints `{"seq", "state_hash"}` — what a restarted engine's state must equal.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from backend.config import Settings

JOURNAL_REFUSED = 3  # exit code: the journal is corrupt or behind its consumers (runbook)


def engine(
    verify_journal: Annotated[
        Path | None,
        typer.Option(help="Replay DIR from scratch, print seq and state hash, exit."),
    ] = None,
    journal_dir: Annotated[
        Path | None, typer.Option(help="Override HYBRIDEX_ENGINE_JOURNAL_DIR.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Override HYBRIDEX_ENGINE_PORT (TCP transport).")
    ] = None,
    persist: Annotated[bool, typer.Option(help="Write events to HYBRIDEX_DATABASE_URL.")] = True,
    feeds: Annotated[str, typer.Option(help="Feed store: redis | none.")] = "redis",
) -> None:
    """Run the matching engine process."""
    from backend.config import get_settings
    from backend.engine.journal import JournalBehindError, JournalCorruptError
    from backend.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        if verify_journal is not None:
            from backend.engine.replay import replay_from_scratch

            seq, digest = replay_from_scratch(
                verify_journal, fee_recipient=settings.fee_recipient, engine=settings.engine
            )
            typer.echo(json.dumps({"seq": seq, "state_hash": digest}))
            return
        _require_fee_account(settings)
        _require_engine_keys(settings)
        if feeds not in ("redis", "none"):
            raise typer.BadParameter("--feeds must be redis or none")
        _run_loop(
            _serve(
                journal_dir=journal_dir or settings.engine_journal_dir,
                port=port if port is not None else settings.engine_port,
                persist=persist,
                redis_feeds=feeds == "redis",
            )
        )
    except (JournalCorruptError, JournalBehindError) as exc:
        # An operator's problem, not a crash: one clear line, and a code a supervisor can tell
        # from a crash (restarting will not help).
        typer.echo(f"hybridex engine: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(JOURNAL_REFUSED) from None


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """`main` on uvloop where it is installed (with uvicorn, on Linux): the loop carries every
    reply, feed write and database hand-off, and the stdlib's costs more CPU per command."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        asyncio.run(main)
        return
    uvloop.run(main)


def _require_fee_account(settings: Settings) -> None:
    """Fees accrue to the engine's fee account; outside dev it must be the operator's own,
    not the built-in placeholder, or fees accrue to an account nobody controls."""
    from backend.config import Mode
    from backend.matching.engine import FEE_ACCOUNT

    if settings.mode is not Mode.PRODUCTION:
        return
    if settings.fee_recipient is None or settings.fee_recipient.lower() == FEE_ACCOUNT.lower():
        typer.echo(
            "hybridex engine: set HYBRIDEX_FEE_RECIPIENT to the operator's fee account (the "
            "Exchange contract's feeRecipient()); the built-in placeholder is refused outside "
            "HYBRIDEX_MODE=dev",
            err=True,
        )
        raise typer.Exit(2)


def _require_engine_keys(settings: Settings) -> None:
    """Every client role must have its key, or the engine would serve nobody in that role
    (production: no key is derived)."""
    from backend.config import ENGINE_ROLES
    from backend.domain.errors import ConfigurationError

    try:
        for role in ENGINE_ROLES:
            settings.engine_keys(role)
    except ConfigurationError as exc:
        typer.echo(f"hybridex engine: {exc.message}", err=True)
        raise typer.Exit(2) from None


async def _serve(*, journal_dir: Path, port: int, persist: bool, redis_feeds: bool) -> None:
    import structlog

    from backend.config import get_settings
    from backend.engine.auth import Role
    from backend.engine.feed_redis import RedisFeedStore
    from backend.engine.runtime import service_options, tune_gc
    from backend.engine.server import EngineServer
    from backend.engine.service import EngineService

    settings = get_settings()
    log = structlog.get_logger("backend.cli.engine")
    factory = None
    if persist:
        from backend.db.session import make_engine, session_factory

        factory = session_factory(make_engine(settings.database_url))
    store = None
    if redis_feeds:
        store = RedisFeedStore(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            retention=settings.engine_feed_retention,
        )
    service = await EngineService.open(
        journal_dir=journal_dir,
        session_factory=factory,
        feeds=store,
        **service_options(settings),
    )
    tune_gc()  # after start-up: freeze the books replay built (backend/engine/runtime.py)
    server = EngineServer(service, {role: settings.engine_keys(role.value) for role in Role})
    if settings.engine_transport == "tcp":
        await server.start(settings.engine_host, port)
    else:
        await server.start_unix(settings.engine_socket_path())
    sampler = None
    if settings.engine_metrics_port is not None:
        from prometheus_client import start_http_server

        from backend.engine.metrics import sample_forever

        start_http_server(settings.engine_metrics_port, addr=settings.engine_metrics_host)
        sampler = asyncio.create_task(sample_forever(service))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(service.stopped.wait())
    await asyncio.wait([asyncio.create_task(stop.wait()), stopped], return_when="FIRST_COMPLETED")
    log.info("engine_shutting_down", failed=service.failed is not None)
    await server.stop()
    await service.close()
    if sampler is not None:
        sampler.cancel()
    if store is not None:
        await store.close()
    if service.failed is not None:
        raise typer.Exit(1)
