"""`hybridex relay`: publish the event stream's outbox to HYBRIDEX_STREAM_URL until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import typer

from backend.config import get_settings
from backend.domain.errors import ConfigurationError
from backend.logging import configure_logging
from backend.redact import redact_url


def relay() -> None:
    """Run the stream relay (outbox → broker, at least once, in order) until SIGTERM / SIGINT."""
    from backend.db import make_engine, session_factory
    from backend.stream.relay import from_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.stream_url is None:
        raise ConfigurationError("HYBRIDEX_STREAM_URL is not set")
    if settings.relay_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.relay_metrics_port, addr=settings.relay_metrics_host)
    factory = session_factory(make_engine(settings.database_url))
    daemon = from_settings(settings, factory, settings.stream_url)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        typer.echo(f"relay: {redact_url(settings.stream_url or '')} ← outbox", err=True)
        await daemon.run()

    try:
        asyncio.run(main())
    finally:
        factory.kw["bind"].dispose()
