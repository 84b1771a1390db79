"""Rate limits: 429 with Retry-After, X-RateLimit-* on every answer, cancels admitted while
orders are limited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from backend.api.ratelimit import MemoryRateLimiter, RateRule
from backend.domain.types import Side
from tests.unit.api.harness import PRICE, TICK, Harness, running_api


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Harness]:
    with running_api(
        tmp_path,
        api_rate_trader_per_s=0.01,
        api_rate_trader_burst=3,
        api_rate_ip_per_s=0.01,
        api_rate_ip_burst=8,
    ) as h:
        yield h


def test_every_answer_carries_rate_limit_headers(api: Harness) -> None:
    for r in (api.client.get("/v1/markets"), api.client.get("/v1/nope"),
              api.place(api.order(0, Side.BUY))):  # fmt: skip
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
            r.headers
        ), r.headers


def test_trader_over_the_limit_gets_429_and_cancels_still_pass(limited: Harness) -> None:
    h = limited
    placed = []
    for i in range(3):
        order = h.order(0, Side.BUY, PRICE - i * TICK)
        r = h.place(order)
        assert r.status_code == 200, r.text
        placed.append(order)
    assert r.headers["x-ratelimit-remaining"] == "0"
    r = h.place(h.order(0, Side.BUY, PRICE - 5 * TICK))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-limit"] == "3"
    # another trader is not limited by the first one's bucket
    assert h.place(h.order(1, Side.SELL, PRICE + TICK)).status_code == 200
    # the IP bucket runs out too (8 requests so far); cancels have their own bucket
    for _ in range(4):
        h.client.get("/v1/markets")
    assert h.client.get("/v1/markets").status_code == 429
    for order in placed:
        r = h.cancel(order)
        assert r.status_code == 200, r.text
        assert "x-ratelimit-remaining" in r.headers
    assert h.book().bids == []


def test_memory_bucket_refills_over_time() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    rule = RateRule("t", per_s=2.0, burst=2)

    async def run() -> list[bool]:
        out = []
        for _ in range(3):
            out.append((await limiter.hit("k", rule)).allowed)
        now[0] += 0.5
        out.append((await limiter.hit("k", rule)).allowed)
        d = await limiter.hit("k", rule)
        out.append(d.allowed)
        assert d.retry_after_s == 1
        return out

    assert anyio.run(run) == [True, True, False, True, False]
