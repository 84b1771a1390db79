"""`hybridex api`: the HTTP/WebSocket API in `HYBRIDEX_API_WORKERS` uvicorn worker processes.

Each worker builds its app with `backend.api.app:production_app` (stateless: the engine owns the
book, Redis holds the feeds and rate-limit buckets). Prometheus metrics of all workers are
aggregated through a multiprocess directory (PROMETHEUS_MULTIPROC_DIR, a fresh temp dir unless
set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated

import typer


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
    try:
        uvicorn.run(
            "backend.api.app:production_app",
            factory=True,
            host=host or settings.api_host,
            port=port or settings.api_port,
            workers=n,
            log_level=settings.log_level.lower(),
            access_log=False,
            # The client address of rate limits: X-Forwarded-For is believed only from these
            # ranges, and the right-most hop outside them is the client (docs/deployment.md).
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies(),
            ws_max_size=settings.api_ws_max_message_bytes,
        )
    finally:
        if own_metrics_dir is not None:  # the workers' metric files end with the supervisor
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
