"""Prometheus metrics of `hybridex relay` (served when HYBRIDEX_RELAY_METRICS_PORT is set).
`outbox_oldest_seconds` is the stream's lag in time: HybridexStreamOutboxLag fires on it."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTBOX_ROWS = Gauge(
    "hybridex_stream_outbox_rows", "Events in the outbox not yet acknowledged by the broker."
)
OUTBOX_OLDEST = Gauge(
    "hybridex_stream_outbox_oldest_seconds",
    "Age of the oldest event not yet acknowledged by the broker (0 when the outbox is empty).",
)
PUBLISHED = Counter(
    "hybridex_stream_published_total", "Events the broker acknowledged (re-sends included)."
)
PUBLISH_ERRORS = Counter(
    "hybridex_stream_publish_errors_total",
    "Publish attempts the broker did not acknowledge (down, refused, timed out); retried.",
)
BROKER_UP = Gauge(
    "hybridex_stream_broker_up", "1 if the last publish (or connect) succeeded, 0 if it failed."
)
