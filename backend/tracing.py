"""OpenTelemetry tracing, off unless `HYBRIDEX_OTEL_ENDPOINT` names an OTLP/HTTP collector.

Off, every span below is the API's no-op span (no allocation worth measuring on the order
path). On, each process that calls `configure` exports its spans in batches from a background
thread; a collector that is down loses spans, never requests.

What is traced (docs/deployment.md "Tracing"):
- the API: one server span per HTTP request (the caller's W3C `traceparent` continues its
  trace), with the request id, the route and the status; a child span per engine round trip;
- the engine round trip's span carries the order hash, so the engine's answer, the journal
  and the fill rows are found by that hash;
- the settlement worker: one span per tick and per batch sent, with the batch id, its fill
  count and the transaction hash.
"""

from __future__ import annotations

import os
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import Tracer

TRACER_NAME: Final = "hybridex"
_configured: list[str] = []


def tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def enabled() -> bool:
    return bool(_configured)


def configure(service: str, endpoint: str | None) -> bool:
    """Installs this process's tracer provider exporting to `endpoint` (e.g.
    `http://otel-collector:4318`); None or "" leaves tracing off. Once per process: a forked
    worker configures its own (the exporter's thread does not survive a fork)."""
    if not endpoint or _configured:
        return bool(_configured)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured.append(service)
    return True


def flush(timeout_ms: int = 5_000) -> bool:
    """Exports what is buffered (at shutdown, and for tests)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    return bool(force_flush(timeout_ms)) if force_flush is not None else True
