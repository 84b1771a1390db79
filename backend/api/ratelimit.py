"""Token-bucket rate limits (SPEC §9): per client IP, per trader, and a separate cancel bucket so
cancels keep headroom while orders are limited.

`RedisRateLimiter` keeps the buckets in Redis (one Lua script per hit: refill, take, store — atomic,
with Redis's clock), so every API worker shares them; the calls of concurrent requests are
pipelined on one connection per worker. `MemoryRateLimiter` is the same algorithm in
one process (`hybridex dev`, tests).

`hit_within` bounds the wait for the store, so a hung Redis delays a request by at most
`HYBRIDEX_API_RATE_LIMITER_TIMEOUT_S`; what a request does without an answer (admit or refuse)
is its route class's choice (`middleware.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

from backend.redis_pipeline import PipelinedRedis, RedisReplyError


@dataclass(frozen=True, slots=True)
class RateRule:
    """A bucket of `burst` tokens refilled at `per_s` tokens per second."""

    name: str
    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the bucket is full again."""
    retry_after_s: int
    """Seconds until one more request is admitted (0 when allowed)."""

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_s).encode()),
        ]


def decide(rule: RateRule, tokens: float, allowed: bool, cost: int = 1) -> Decision:
    """The decision for a bucket left with `tokens` after a hit of `cost` tokens."""
    missing = max(0.0, rule.burst - tokens)
    return Decision(
        allowed=allowed,
        limit=rule.burst,
        remaining=max(0, math.floor(tokens)),
        reset_s=math.ceil(missing / rule.per_s),
        retry_after_s=0 if allowed else max(1, math.ceil((cost - tokens) / rule.per_s)),
    )


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """Take `cost` tokens from bucket `key` (under `rule`) if it has them all (a batch
        is admitted whole or not at all)."""
        ...

    async def close(self) -> None: ...


class LimiterUnavailableError(Exception):
    """The limiter's store failed or did not answer in time."""


async def hit_within(
    limiter: RateLimiter, key: str, rule: RateRule, timeout_s: float, cost: int = 1
) -> Decision:
    """`limiter.hit`, or `LimiterUnavailableError` if it fails or takes over `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await limiter.hit(key, rule, cost)
    except Exception as exc:  # connection refused, reset, timeout, an error reply
        raise LimiterUnavailableError(repr(exc)) from exc


class MemoryRateLimiter:
    """Buckets in this process; a full bucket is forgotten when the table grows large."""

    MAX_KEYS: Final = 100_000

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def hit(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        now = self._clock()
        full_key = f"{rule.name}:{key}"
        tokens, ts = self._buckets.get(full_key, (float(rule.burst), now))
        tokens = min(float(rule.burst), tokens + max(0.0, now - ts) * rule.per_s)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if len(self._buckets) >= self.MAX_KEYS:
            self._evict(now, rule)
        self._buckets[full_key] = (tokens, now)
        return decide(rule, tokens, allowed, cost)

    def _evict(self, now: float, rule: RateRule) -> None:
        horizon = rule.burst / rule.per_s
        for k in [k for k, (_t, ts) in self._buckets.items() if now - ts > horizon]:
            del self._buckets[k]

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: burst, per_s[, cost (default 1)]. Returns {allowed, tokens-as-string}
# (Lua numbers would be truncated to integers on the way out). TIME is the server's clock,
# shared by every worker.
_TOKEN_BUCKET_LUA: Final = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]) or 1
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Buckets in Redis under `{prefix}rl:{rule}:{key}`, shared by every API worker.

    Commands go through one `PipelinedRedis` connection per worker: the hits of every request
    in flight are written together and answered in one read, and the script is called by its
    SHA (loaded with EVAL the first time Redis does not know it)."""

    def __init__(self, client: PipelinedRedis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._sha = (
            hashlib.sha1(_TOKEN_BUCKET_LUA.encode(), usedforsecurity=False).hexdigest().encode()
        )
        self._args: dict[RateRule, tuple[bytes, bytes]] = {}

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisRateLimiter:
        return cls(PipelinedRedis.from_url(url), prefix)

    async def hit(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        args: tuple[bytes, ...] | None = self._args.get(rule)
        if args is None:
            args = self._args[rule] = (str(rule.burst).encode(), repr(rule.per_s).encode())
        if cost != 1:
            args = (*args, str(cost).encode())
        redis_key = f"{self._prefix}rl:{rule.name}:{key}"
        try:
            allowed, tokens = await self._client.call(b"EVALSHA", self._sha, 1, redis_key, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            allowed, tokens = await self._client.call(
                b"EVAL", _TOKEN_BUCKET_LUA, 1, redis_key, *args
            )
        return decide(rule, float(tokens), bool(int(allowed)), cost)

    async def close(self) -> None:
        await self._client.aclose()
