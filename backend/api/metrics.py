"""Prometheus metrics of one API app (`GET /metrics`).

Each app owns its registry (no module globals, so tests build many apps). With several worker
processes, `hybridex api` sets `PROMETHEUS_MULTIPROC_DIR` and `/metrics` aggregates every worker.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hybridex_api_requests", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "hybridex_api_request_seconds", "HTTP request latency by route",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.orders = Counter(
            "hybridex_api_orders", "Orders taken in, by outcome status",
            ["status"], registry=self.registry,
        )  # fmt: skip
        self.rejections = Counter(
            "hybridex_api_rejections", "Refused requests by error code",
            ["code"], registry=self.registry,
        )  # fmt: skip
        self.engine_latency = Histogram(
            "hybridex_api_engine_seconds", "Engine round trip (submit) latency",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.ws_clients = Counter(
            "hybridex_api_ws_connections", "WebSocket connections opened", registry=self.registry
        )
        # livesum: with several workers /metrics adds the live workers' counts (a worker that
        # died takes its connections with it).
        self.ws_open = Gauge(
            "hybridex_api_ws_open_connections", "WebSocket connections open now",
            registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.limiter_failures = Counter(
            "hybridex_api_rate_limiter_failures",
            "Requests the limiter's store did not answer, by what was done (open: admitted, "
            "closed: refused 503)", ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.ws_refused = Counter(
            "hybridex_api_ws_refused", "WebSocket connections closed by a limit, by error code",
            ["code"], registry=self.registry,
        )  # fmt: skip
        self.ws_dropped = Counter(
            "hybridex_api_ws_dropped", "WebSocket clients closed for being too slow",
            registry=self.registry,
        )  # fmt: skip

        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (the labelled children are cached: in
        multiprocess mode `labels()` costs more than the write itself)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._request_children) < 10_000:  # route templates: a bounded set
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
