"""The Redis token bucket: shared by every limiter instance (i.e. every API worker)."""

from __future__ import annotations

import anyio
import pytest

from backend.api.ratelimit import RateRule, RedisRateLimiter

pytestmark = pytest.mark.integration


def test_buckets_are_shared_across_limiters(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    rule = RateRule("trader", per_s=0.001, burst=3)

    async def run() -> list[tuple[bool, int]]:
        a = RedisRateLimiter.from_url(url, prefix)
        b = RedisRateLimiter.from_url(url, prefix)
        try:
            out = []
            for limiter in (a, b, a, b):
                d = await limiter.hit("0xabc", rule)
                out.append((d.allowed, d.remaining))
            denied = await b.hit("0xabc", rule)
            assert denied.retry_after_s >= 1
            assert denied.reset_s >= 1
            other = await a.hit("0xdef", rule)
            assert other.allowed
            return out
        finally:
            await a.close()
            await b.close()

    assert anyio.run(run) == [(True, 2), (True, 1), (True, 0), (False, 0)]


def test_bucket_refills(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    rule = RateRule("ip", per_s=20.0, burst=1)

    async def run() -> list[bool]:
        limiter = RedisRateLimiter.from_url(url, prefix)
        try:
            first = (await limiter.hit("1.2.3.4", rule)).allowed
            second = (await limiter.hit("1.2.3.4", rule)).allowed
            await anyio.sleep(0.1)
            third = (await limiter.hit("1.2.3.4", rule)).allowed
            return [first, second, third]
        finally:
            await limiter.close()

    assert anyio.run(run) == [True, False, True]
