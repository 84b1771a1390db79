"""Run as a subprocess by test_tracing.py (a tracer provider is per process, for good):
an API with tracing on places one order with the caller's trace context, then flushes.
Prints the answer's order hash and request id."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from backend import tracing
from backend.domain.types import Side
from tests.unit.api.harness import PRICE, TICK, running_api

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def main(endpoint: str) -> None:
    assert tracing.configure("hybridex-api", endpoint)
    with tempfile.TemporaryDirectory() as d, running_api(Path(d)) as h:
        order = h.order(0, Side.BUY, PRICE - TICK)
        answer = h.client.post(
            "/v1/orders", json=h.order_body(order), headers={"traceparent": TRACEPARENT}
        )
        assert answer.status_code == 200, answer.text
        untraced = h.client.get("/v1/markets")  # no caller context: a trace of its own
        assert untraced.status_code == 200
    assert tracing.flush()
    print(answer.json()["orderHash"], answer.headers["x-request-id"])


if __name__ == "__main__":
    main(sys.argv[1])
