"""The settlement Celery app: Redis broker, JSON only, late acks, beat-driven ticks.

`celery -A backend.settlement.celery_app worker --pool=threads` / `beat` (or `hybridex worker` /
`beat`). With `HYBRIDEX_SETTLEMENT_METRICS_PORT` set, the worker serves Prometheus metrics.
Every key lives under `HYBRIDEX_REDIS_KEY_PREFIX` (kombu's `global_keyprefix`); there is no
result backend — tasks return nothing anyone waits for, and the database is the state.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init
from redis.connection import parse_url

from backend import tracing
from backend.config import Settings, get_settings
from backend.redis_pipeline import tls_options

BROKER_VISIBILITY_TIMEOUT_S = 300
TASK_TIME_LIMIT_S = 120


def celery_config(settings: Settings) -> dict[str, Any]:
    tick = settings.settlement_tick_s
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": {
            "global_keyprefix": settings.redis_key_prefix,
            "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_S,
        },
        "broker_connection_retry_on_startup": True,
        "broker_use_ssl": broker_tls(settings.redis_url) or False,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_soft_time_limit": TASK_TIME_LIMIT_S - 20,
        "task_default_queue": "settlement",
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "settlement-tick": {
                "task": "settlement.tick",
                "schedule": tick,
                # a tick nobody ran in time is superseded by the next one
                "options": {"expires": max(2 * tick, 1.0)},
            },
            "reconcile": {
                "task": "reconcile.run",
                "schedule": settings.reconcile_interval_s,
                "options": {"expires": settings.reconcile_interval_s},
            },
        },
    }


def broker_tls(url: str) -> dict[str, Any] | None:
    """`broker_use_ssl` for a `rediss://` broker URL: its own TLS options, with the defaults
    every other Redis client of the stack applies (certificate and host name checked). Without
    it kombu hands redis-py no `ssl_cert_reqs`, which redis-py reads as "verify nothing"."""
    return tls_options(parse_url(url)) if url.startswith("rediss://") else None


def make_app(settings: Settings | None = None, *, eager: bool = False) -> Celery:
    settings = settings or get_settings()
    celery = Celery(
        "hybridex-settlement", include=["backend.settlement.tasks", "backend.reconcile.tasks"]
    )
    celery.conf.update(celery_config(settings))
    if eager:  # `hybridex dev`: the same task code, run inline
        celery.conf.update(task_always_eager=True, task_eager_propagates=True)
    return celery


def serve_metrics(settings: Settings) -> bool:
    """Prometheus on `settlement_metrics_host`:`settlement_metrics_port` in the worker's main
    process (the threads pool runs the tasks there, so it sees every counter)."""
    if settings.settlement_metrics_port is None:
        return False
    from prometheus_client import start_http_server

    start_http_server(settings.settlement_metrics_port, addr=settings.settlement_metrics_host)
    return True


@worker_init.connect  # type: ignore[untyped-decorator]
def _on_worker_init(**_: Any) -> None:
    settings = get_settings()
    serve_metrics(settings)
    tracing.configure("hybridex-worker", settings.otel_endpoint)


app = make_app()
