"""Token-bucket rate limits (SPEC §9): per client IP, per trader, and a separate cancel bucket so
cancels keep headroom while orders are limited.

`RedisRateLimiter` keeps the buckets in Redis (one Lua script per hit: refill, take, store — atomic,
with Redis's clock), so every API worker shares them. `MemoryRateLimiter` is the same algorithm in
one process (`hybridex dev`, tests).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol


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


def decide(rule: RateRule, tokens: float, allowed: bool) -> Decision:
    """The decision for a bucket left with `tokens` after this hit."""
    missing = max(0.0, rule.burst - tokens)
    return Decision(
        allowed=allowed,
        limit=rule.burst,
        remaining=max(0, math.floor(tokens)),
        reset_s=math.ceil(missing / rule.per_s),
        retry_after_s=0 if allowed else max(1, math.ceil((1.0 - tokens) / rule.per_s)),
    )


class RateLimiter(Protocol):
    async def hit(self, key: str, rule: RateRule) -> Decision:
        """Take one token from bucket `key` (under `rule`) if it has one."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in this process; a full bucket is forgotten when the table grows large."""

    MAX_KEYS: Final = 100_000

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def hit(self, key: str, rule: RateRule) -> Decision:
        now = self._clock()
        full_key = f"{rule.name}:{key}"
        tokens, ts = self._buckets.get(full_key, (float(rule.burst), now))
        tokens = min(float(rule.burst), tokens + max(0.0, now - ts) * rule.per_s)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.MAX_KEYS:
            self._evict(now, rule)
        self._buckets[full_key] = (tokens, now)
        return decide(rule, tokens, allowed)

    def _evict(self, now: float, rule: RateRule) -> None:
        horizon = rule.burst / rule.per_s
        for k in [k for k, (_t, ts) in self._buckets.items() if now - ts > horizon]:
            del self._buckets[k]

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: burst, per_s. Returns {allowed, tokens-as-string} (Lua numbers would be
# truncated to integers on the way out). TIME is the server's clock, shared by every worker.
_TOKEN_BUCKET_LUA: Final = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Buckets in Redis under `{prefix}rl:{rule}:{key}`, shared by every API worker."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client  # redis.asyncio.Redis
        self._prefix = prefix
        self._script = client.register_script(_TOKEN_BUCKET_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisRateLimiter:
        import redis.asyncio as aioredis

        return cls(aioredis.Redis.from_url(url), prefix)

    async def hit(self, key: str, rule: RateRule) -> Decision:
        allowed, tokens = await self._script(
            keys=[f"{self._prefix}rl:{rule.name}:{key}"], args=[rule.burst, repr(rule.per_s)]
        )
        return decide(rule, float(tokens), bool(int(allowed)))

    async def close(self) -> None:
        await self._client.aclose()
