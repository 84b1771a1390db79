"""`hybridex indexer [--from-block N]`: follow the Exchange's events into the ledger (SPEC §7)."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType
from typing import TYPE_CHECKING

import typer

from backend.config import get_settings
from backend.domain.errors import ConfigurationError, DexError
from backend.engine.client import EngineClient

if TYPE_CHECKING:
    from indexer.engine_sink import JournalLookup
from backend.logging import configure_logging


def indexer(
    from_block: int | None = typer.Option(
        None, "--from-block", help="Forget blocks ≥ N and index them again (a re-sync)."
    ),
    embedded_engine: bool = typer.Option(
        False,
        "--embedded-engine",
        help="Run the engine inside this process on HYBRIDEX_ENGINE_JOURNAL_DIR (development "
        "only: no other engine process may use that journal).",
    ),
) -> None:
    """Run the chain indexer until SIGTERM / SIGINT."""
    from backend.db import make_engine, session_factory
    from indexer.daemon import Indexer, IndexerConfig
    from indexer.engine_sink import EngineClientSink
    from indexer.projection import Outbox
    from indexer.rpc import RpcClient

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.exchange_address is None:
        raise ConfigurationError("HYBRIDEX_EXCHANGE_ADDRESS is not set")
    loop = asyncio.new_event_loop()
    client, lookup = _engine(loop, embedded=embedded_engine)
    rpc = RpcClient(settings.rpc_url, timeout_s=settings.rpc_timeout_s)
    factory = session_factory(make_engine(settings.database_url))
    outbox = Outbox(
        factory, EngineClientSink(client, loop, timeout_s=settings.rpc_timeout_s), lookup
    )
    config = IndexerConfig(
        exchange_address=settings.exchange_address,
        chain_id=settings.chain_id,
        confirmations=settings.confirmations,
        reorg_window=settings.reorg_window,
        start_block=settings.indexer_start_block,
        poll_interval_s=settings.indexer_poll_interval_s,
        stale_head_s=settings.indexer_stale_head_s,
        max_log_range=settings.indexer_max_log_range,
        fee_recipient=settings.fee_recipient,
        cancel_delay_s=settings.cancel_delay_s,
        stream=settings.stream_url is not None,
    )
    if settings.indexer_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.indexer_metrics_port, addr=settings.indexer_metrics_host)
    daemon = Indexer(config, rpc, factory, outbox)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if from_block is not None:
            daemon.check_chain()
            daemon.resync_from(from_block)
        daemon.run()
    except DexError as exc:
        typer.echo(f"indexer stopped: {exc.code.name}: {exc.message} {exc.context}", err=True)
        raise typer.Exit(2) from exc
    finally:
        rpc.close()
        loop.run_until_complete(client.close())
        loop.close()


def _engine(
    loop: asyncio.AbstractEventLoop, *, embedded: bool
) -> tuple[EngineClient, JournalLookup]:
    """The engine process over TCP (production), or an engine inside this process on
    HYBRIDEX_ENGINE_JOURNAL_DIR (development); and how to look up in-doubt commands."""
    settings = get_settings()
    if not embedded:
        from backend.engine.auth import Role
        from backend.engine.tcp_client import TcpEngineClient
        from indexer.engine_sink import EngineTcpLookup

        tcp = TcpEngineClient.from_settings(settings, Role.INDEXER)
        return tcp, EngineTcpLookup(tcp, loop)
    from backend.engine.inprocess import InProcessEngineClient
    from backend.engine.service import EngineService
    from indexer.engine_sink import JournalDirLookup

    service = loop.run_until_complete(EngineService.open(journal_dir=settings.engine_journal_dir))
    return InProcessEngineClient(service), JournalDirLookup(settings.engine_journal_dir)
