"""`hybridex api`: the HTTP/WebSocket API in `HYBRIDEX_API_WORKERS` worker processes of the
server `HYBRIDEX_API_SERVER` names: uvicorn (the default) or granian (docs/deployment.md
"HTTP server").

Each worker builds its app with `backend.api.app:production_app` (stateless: the engine owns the
book, Redis holds the feeds and rate-limit buckets). Prometheus metrics of all workers are
aggregated through a multiprocess directory (PROMETHEUS_MULTIPROC_DIR, a fresh temp dir unless
set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from backend.config import Settings


def api(
    host: Annotated[str | None, typer.Option(help="Override HYBRIDEX_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Override HYBRIDEX_API_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override HYBRIDEX_API_WORKERS.")] = None,
) -> None:
    """Run the API server."""
    import uvicorn

    from backend.api.app import domain_from_settings
    from backend.config import get_settings
    from backend.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    domain_from_settings(settings)  # fail fast on a missing chain id / Exchange address
    n = workers or settings.api_workers
    own_metrics_dir = None
    if n > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        own_metrics_dir = tempfile.mkdtemp(prefix="hybridex-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    host, port = host or settings.api_host, port or settings.api_port
    try:
        if settings.api_server == "granian":
            _granian(settings, host, port, n)
        else:
            uvicorn.run(
                "backend.api.app:production_app",
                factory=True,
                host=host,
                port=port,
                workers=n,
                log_level=settings.log_level.lower(),
                access_log=False,
                # The client address of rate limits: X-Forwarded-For is believed only from
                # these ranges, and the right-most hop outside them is the client
                # (docs/deployment.md).
                proxy_headers=True,
                forwarded_allow_ips=settings.trusted_proxies(),
                ws_max_size=settings.api_ws_max_message_bytes,
            )
    finally:
        if own_metrics_dir is not None:  # the workers' metric files end with the supervisor
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _granian(settings: Settings, host: str, port: int, workers: int) -> None:
    """The same app under granian's ASGI interface. granian has no proxy-header handling of
    its own: `granian_app` wraps the app in uvicorn's, with the same trusted ranges."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    Server(
        "backend.api.app:granian_app",
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        websockets=True,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
    ).serve()
