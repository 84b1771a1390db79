"""Token-bucket rate limits (SPEC §9): per client IP, per trader, and a separate cancel bucket so
cancels keep headroom while orders are limited.

`RedisRateLimiter` keeps the buckets in Redis (a Lua script: refill, take, store — atomic, with
Redis's clock), so every API worker shares them; each worker takes tokens in blocks (leases) and
spends them from memory, so most requests make no Redis call, and the calls of concurrent
requests are pipelined on one connection per worker. `MemoryRateLimiter` is the same algorithm in
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
from typing import Any, Final, Protocol, cast

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
    """`limiter.hit`, or `LimiterUnavailableError` if it fails or takes over `timeout_s`.

    A limiter with `hit_now` (both here) answers most hits from memory: those skip the
    timeout, whose timer was most of what a hit cost (two hits an order)."""
    try:
        hit_now = getattr(limiter, "hit_now", None)
        if hit_now is not None and (decision := hit_now(key, rule, cost)) is not None:
            return cast(Decision, decision)
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
        return self.hit_now(key, rule, cost)

    def hit_now(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """`hit` without awaiting: this limiter never waits."""
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


# KEYS[1] bucket; ARGV: burst, per_s, need, want. Takes `want` tokens, or as many as there
# are if fewer, provided there are at least `need`; returns {taken, tokens-left-as-string}
# (Lua numbers would be truncated to integers on the way out). TIME is the server's clock,
# shared by every worker.
_TOKEN_BUCKET_LUA: Final = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local taken = 0
if tokens >= need then
  taken = math.min(want, math.floor(tokens))
  tokens = tokens - taken
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, tostring(tokens)}
"""


@dataclass(slots=True)
class _Lease:
    """What this worker knows of one shared bucket: the tokens it took ahead (`tokens`, usable
    until `expires`), and the bucket's level when Redis last answered (`seen`, at `seen_at`)."""

    tokens: int
    expires: float
    seen: float
    seen_at: float


class RedisRateLimiter:
    """Buckets in Redis under `{prefix}rl:{rule}:{key}`, shared by every API worker.

    Token leases (docs/deployment.md "Rate limits across workers"): when a bucket is asked for
    tokens, the worker takes a block of up to `lease_block(rule)` at once and spends the rest
    from memory, so Redis sees one call per block rather than one per request. Leased tokens
    left the shared bucket, so no worker can admit what the bucket did not hold; a lease not
    spent within `lease_s` is dropped. A refusal is remembered too: until the bucket can have
    refilled enough (at its rate, from the level Redis reported), the same key is refused
    without asking again. `lease_tokens=1` is the exact bucket: one call per hit.

    Commands go through one `PipelinedRedis` connection per worker: the calls of every request
    in flight are written together and answered in one read, and the script is called by its
    SHA (loaded with EVAL the first time Redis does not know it)."""

    MAX_KEYS: Final = 100_000

    def __init__(
        self,
        client: PipelinedRedis,
        prefix: str,
        *,
        lease_tokens: int = 1,
        lease_s: float = 1.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._sha = (
            hashlib.sha1(_TOKEN_BUCKET_LUA.encode(), usedforsecurity=False).hexdigest().encode()
        )
        self._args: dict[RateRule, tuple[bytes, bytes]] = {}
        self.lease_tokens = lease_tokens
        self.lease_s = lease_s
        self._clock = clock
        self._leases: dict[tuple[str, str], _Lease] = {}
        self.calls = 0
        """Script calls made (what the leases save)."""

    @classmethod
    def from_url(
        cls, url: str, prefix: str, *, lease_tokens: int = 1, lease_s: float = 1.0
    ) -> RedisRateLimiter:
        return cls(PipelinedRedis.from_url(url), prefix, lease_tokens=lease_tokens, lease_s=lease_s)

    def lease_block(self, rule: RateRule) -> int:
        """Tokens taken from the shared bucket at a time: a tenth of its burst at most, so that
        what the workers hold ahead stays a small part of it."""
        return max(1, min(self.lease_tokens, rule.burst // 10))

    def hit_now(self, key: str, rule: RateRule, cost: int = 1) -> Decision | None:
        """The decision when this worker's lease settles it without Redis (it holds the
        tokens, or the bucket cannot have refilled enough since Redis last answered), else
        None: `hit` asks Redis."""
        lease = self._leases.get((rule.name, key))
        return None if lease is None else self._from_lease(lease, self._clock(), rule, cost)

    @staticmethod
    def _from_lease(lease: _Lease, now: float, rule: RateRule, cost: int) -> Decision | None:
        held = lease.tokens if now < lease.expires else 0
        if held >= cost:
            lease.tokens = held - cost
            return decide(rule, lease.seen + lease.tokens, True, cost)
        # The bucket cannot have refilled enough since Redis last refused (or answered):
        # refuse here; nobody else puts tokens back into it.
        level = min(float(rule.burst), lease.seen + (now - lease.seen_at) * rule.per_s)
        if level + held < cost:
            return decide(rule, level + held, False, cost)
        return None

    async def hit(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        now = self._clock()
        lease_key = (rule.name, key)
        lease = self._leases.get(lease_key)
        held = 0
        if lease is not None:
            found = self._from_lease(lease, now, rule, cost)
            if found is not None:
                return found
            held = lease.tokens if now < lease.expires else 0
            lease.tokens = 0  # this hit's now, whatever Redis answers
        need = cost - held
        try:
            taken, tokens = await self._take(key, rule, need, need + self.lease_block(rule) - 1)
        except BaseException:
            if held and (lease := self._leases.get(lease_key)) is not None:
                lease.tokens += held  # not spent: still this worker's
            raise
        # Other hits of the key may have run meanwhile: add to what the lease holds now.
        lease = self._leases.get(lease_key)
        if lease is None:
            if len(self._leases) >= self.MAX_KEYS:
                self._evict(now)
            lease = self._leases[lease_key] = _Lease(0, now, tokens, now)
        lease.tokens = (lease.tokens if now < lease.expires else 0) + held
        if taken:
            lease.tokens += taken - cost
            lease.expires = now + self.lease_s
        lease.seen, lease.seen_at = tokens, now
        return decide(rule, tokens + lease.tokens, bool(taken), cost)

    def _evict(self, now: float) -> None:
        """Forget the keys whose lease ran out (what they held is lost: a few tokens)."""
        for k in [k for k, lease in self._leases.items() if now >= lease.expires]:
            del self._leases[k]
        if len(self._leases) >= self.MAX_KEYS:
            self._leases.clear()

    async def _take(self, key: str, rule: RateRule, need: int, want: int) -> tuple[int, float]:
        args: tuple[bytes, ...] | None = self._args.get(rule)
        if args is None:
            args = self._args[rule] = (str(rule.burst).encode(), repr(rule.per_s).encode())
        args = (*args, str(need).encode(), str(want).encode())
        redis_key = f"{self._prefix}rl:{rule.name}:{key}"
        self.calls += 1
        try:
            taken, tokens = await self._client.call(b"EVALSHA", self._sha, 1, redis_key, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            taken, tokens = await self._client.call(b"EVAL", _TOKEN_BUCKET_LUA, 1, redis_key, *args)
        return int(taken), float(tokens)

    async def close(self) -> None:
        self._leases.clear()
        await self._client.aclose()
