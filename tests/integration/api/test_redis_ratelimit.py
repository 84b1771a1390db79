"""The Redis token bucket: shared by every limiter instance (i.e. every API worker)."""

from __future__ import annotations

import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------------------------------- token leases


def test_leases_share_one_bucket_with_few_calls(redis_prefix: tuple[str, str]) -> None:
    """Two workers leasing blocks of 10 from a bucket of 100 (no refill to speak of): together
    they admit what the bucket holds, less what they hold ahead, with a call per block."""
    url, prefix = redis_prefix
    rule = RateRule("trader", per_s=0.001, burst=100)

    async def run() -> tuple[int, int, int]:
        workers = [RedisRateLimiter.from_url(url, prefix, lease_tokens=10) for _ in range(2)]
        try:
            admitted = 0
            for i in range(200):
                admitted += (await workers[i % 2].hit("0xabc", rule)).allowed
            calls_before_flood = sum(w.calls for w in workers)
            for i in range(1000):  # refused from memory: the bucket cannot have refilled
                assert not (await workers[i % 2].hit("0xabc", rule)).allowed
            return admitted, calls_before_flood, sum(w.calls for w in workers)
        finally:
            for w in workers:
                await w.close()

    admitted, calls, after_flood = anyio.run(run)
    assert 100 - 2 * 9 <= admitted <= 100
    assert calls <= 100 // 10 + 2 * 2  # a block each time, and each worker's refusal
    assert after_flood == calls


def test_small_buckets_stay_exact(redis_prefix: tuple[str, str]) -> None:
    """Below a burst of 20 a block is one token: every hit asks Redis, as without leases."""
    url, prefix = redis_prefix
    rule = RateRule("ip", per_s=0.001, burst=5)

    async def run() -> list[bool]:
        a = RedisRateLimiter.from_url(url, prefix, lease_tokens=20)
        b = RedisRateLimiter.from_url(url, prefix, lease_tokens=20)
        try:
            return [(await (a, b)[i % 2].hit("1.2.3.4", rule)).allowed for i in range(7)]
        finally:
            await a.close()
            await b.close()

    assert anyio.run(run) == [True] * 5 + [False] * 2


def test_a_batch_takes_its_cost_whole_from_the_lease_and_redis(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    rule = RateRule("trader", per_s=0.001, burst=100)

    async def run() -> list[bool]:
        limiter = RedisRateLimiter.from_url(url, prefix, lease_tokens=10)
        try:
            first = await limiter.hit("0xabc", rule)  # takes 10, holds 9
            batch = await limiter.hit("0xabc", rule, 50)  # 9 held + 41 (and a block) from Redis
            too_big = await limiter.hit("0xabc", rule, 50)  # 9 held + 40 left < 50: refused
            rest = await limiter.hit("0xabc", rule, 49)  # exactly what is left
            return [first.allowed, batch.allowed, too_big.allowed, rest.allowed]
        finally:
            await limiter.close()

    assert anyio.run(run) == [True, True, False, True]


def test_a_lease_not_spent_in_time_is_dropped(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    rule = RateRule("trader", per_s=0.001, burst=100)

    async def run() -> tuple[int, int]:
        a = RedisRateLimiter.from_url(url, prefix, lease_tokens=10, lease_s=0.05)
        try:
            await a.hit("0xabc", rule)
            await anyio.sleep(0.1)
            await a.hit("0xabc", rule)  # the 9 held expired: a new block
            return a.calls, (await a.hit("0xabc", rule)).remaining
        finally:
            await a.close()

    calls, remaining = anyio.run(run)
    assert calls == 2
    assert remaining == 100 - 20 + 8


# each example uses a fresh key under the fixture's prefix
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 12)), min_size=1, max_size=120),
    burst=st.integers(1, 120),
)
def test_workers_never_admit_more_than_the_bucket_holds(
    redis_prefix: tuple[str, str], plan: list[tuple[int, int]], burst: int
) -> None:
    """Any interleaving of hits (worker, cost) from three leasing workers on one bucket that
    does not refill: the tokens admitted never pass the burst, and a refusal only happens when
    the bucket and that worker's lease together cannot cover it."""
    url, prefix = redis_prefix
    rule = RateRule("trader", per_s=1e-9, burst=burst)
    key = uuid.uuid4().hex
    lease = ("trader", key)

    async def run() -> None:
        workers = [RedisRateLimiter.from_url(url, prefix, lease_tokens=8) for _ in range(3)]
        try:
            spent = 0
            for w, cost in plan:
                if (await workers[w].hit(key, rule, cost)).allowed:
                    spent += cost
                else:  # only what other workers hold ahead can make up the difference
                    others = sum(
                        x._leases[lease].tokens
                        for i, x in enumerate(workers)
                        if i != w and lease in x._leases
                    )
                    assert burst - spent - others < cost
                assert spent <= burst
        finally:
            for w in workers:
                await w.close()

    anyio.run(run)
