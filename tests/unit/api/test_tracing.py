"""Tracing on: the API's spans reach an OTLP/HTTP collector, continue the caller's trace, and
name the request and the order; the engine round trip is a child span."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opentelemetry.trace import SpanKind

from tests.otlp_receiver import otlp_receiver
from tests.unit.api.traced_session import TRACEPARENT

REPO = Path(__file__).resolve().parents[3]


def test_api_spans_continue_the_callers_trace_and_name_the_order() -> None:
    with otlp_receiver() as collector:
        run = subprocess.run(
            [sys.executable, "-m", "tests.unit.api.traced_session", collector.url],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        order_hash, request_id = run.stdout.split()[-2:]
        (server,) = collector.named("POST /v1/orders")
        (engine,) = collector.named("engine PlaceOrder")
        markets = collector.named("GET /v1/markets")
    trace_id, caller_span = TRACEPARENT.split("-")[1:3]
    assert server.service == "hybridex-api"
    assert server.kind == SpanKind.SERVER.value + 1  # OTLP numbers kinds from 1 (internal)
    assert (server.trace_id, server.parent_span_id) == (trace_id, caller_span)
    assert server.attributes["hybridex.request_id"] == request_id
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/orders"
    assert (engine.trace_id, engine.parent_span_id) == (trace_id, server.span_id)
    assert engine.attributes["hybridex.order_hash"] == order_hash
    assert engine.attributes["hybridex.engine_seq"] > 0
    assert len(markets) == 1
    assert markets[0].trace_id != trace_id
    assert markets[0].parent_span_id == ""
