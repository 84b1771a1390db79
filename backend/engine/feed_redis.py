"""Feed store on Redis streams, shared by every API worker (production).

Keys (all under the deployment's prefix):
- `{prefix}feed:{channel}`: a stream whose entry ids are `{channel seq}-0`, field `d` = JSON
  payload; trimmed to about `retention` entries (`MAXLEN ~`).
- `{prefix}feed-state`: a hash channel → last seq, plus `_engine_seq` (last engine command
  published). Written by the same script call as the entries (atomic, like MULTI/EXEC), so a
  restarted engine recovers counters and publishes exactly what is missing.

A group is ONE `EVALSHA` (`_APPEND`): messages grouped per channel, payloads encoded with orjson.
Per-command MULTI/EXEC cost more in redis-py's packing and reply parsing than everything else
the feed writer does, and even one script call through redis-py costs ~200 µs more than through
`PipelinedRedis`, which writes (any URL redis-py takes: TLS and unix sockets too); redis-py reads.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from redis.asyncio import Redis

from backend.engine.feeds import FeedMessage
from backend.redis_pipeline import PipelinedRedis, RedisReplyError

DEFAULT_RETENTION = 10_000
_ENGINE_SEQ = "_engine_seq"

# KEYS: state hash, then one stream per channel. ARGV: retention, engine seq, then per channel
# (in KEYS order): channel, count n, n × (channel seq, payload). Each channel's counter is set
# after its entries, the engine seq last.
_APPEND = """
local retention = ARGV[1]
local a = 3
for k = 2, #KEYS do
  local channel, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local seq
  for _ = 1, n do
    seq = ARGV[a]
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', retention, seq .. '-0', 'd', ARGV[a + 1])
    a = a + 2
  end
  redis.call('HSET', KEYS[1], channel, seq)
end
redis.call('HSET', KEYS[1], '_engine_seq', ARGV[2])
return #KEYS - 1
"""


_APPEND_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()  # noqa: S324 (Redis' script id)


def _seq(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


class RedisFeedStore:
    def __init__(self, url: str, *, prefix: str, retention: int = DEFAULT_RETENTION) -> None:
        self.redis: Redis[bytes] = Redis.from_url(url)
        self.prefix = prefix
        self.retention = retention
        self._state = f"{prefix}feed-state"
        self._writer = PipelinedRedis.from_url(url)

    def _key(self, channel: str) -> str:
        return f"{self.prefix}feed:{channel}"

    def _message(self, channel: str, entry: tuple[Any, dict[Any, Any]]) -> FeedMessage:
        entry_id, fields = entry
        return FeedMessage(channel, _seq(entry_id), orjson.loads(fields[b"d"]))

    # ------------------------------------------------------------------ writer

    async def load_state(self) -> tuple[int, dict[str, int]]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self._state)
        state = {k.decode(): int(v) for k, v in raw.items()}
        return state.pop(_ENGINE_SEQ, 0), state

    async def append(self, engine_seq: int, messages: list[FeedMessage]) -> None:
        by_channel: dict[str, list[bytes | int]] = {}
        for m in messages:
            entries = by_channel.get(m.channel)
            if entries is None:
                entries = by_channel[m.channel] = []
            entries += (m.seq, orjson.dumps(m.data))
        keys: list[str] = [self._state]
        args: list[bytes | int | str] = [self.retention, engine_seq]
        for channel, entries in by_channel.items():
            keys.append(self._key(channel))
            args += (channel, len(entries) // 2)
            args += entries
        try:
            await self._writer.call(b"EVALSHA", _APPEND_SHA, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self._writer.call(b"EVAL", _APPEND, len(keys), *keys, *args)

    async def close(self) -> None:
        await self._writer.aclose()
        await self.redis.aclose()  # type: ignore[attr-defined]  # stubs predate aclose

    # ------------------------------------------------------------------ reader

    async def latest_seq(self, channel: str) -> int:
        value = await self.redis.hget(self._state, channel)
        return 0 if value is None else int(value)

    async def read_after(
        self, channel: str, after_seq: int, *, limit: int = 1000
    ) -> list[FeedMessage] | None:
        key = self._key(channel)
        entries = await self.redis.xrange(key, min=f"{after_seq + 1}-0", max="+", count=limit)
        if entries and _seq(entries[0][0]) == after_seq + 1:
            return [self._message(channel, e) for e in entries]
        latest = await self.latest_seq(channel)
        if after_seq >= latest:
            return []
        # Something newer exists but not the next one: it was trimmed away.
        first = await self.redis.xrange(key, count=1)
        if not first or _seq(first[0][0]) > after_seq + 1:
            return None
        return [self._message(channel, e) for e in entries]

    async def wait(self, after: dict[str, int], *, timeout: float) -> list[FeedMessage]:
        if not after:
            return []
        streams: dict[Any, Any] = {self._key(c): f"{s}-0" for c, s in after.items()}
        by_key = {self._key(c): c for c in after}
        result = await self.redis.xread(streams, count=1000, block=max(1, int(timeout * 1000)))
        out: list[FeedMessage] = []
        for key, entries in result or ():
            channel = by_key[key.decode() if isinstance(key, bytes) else key]
            out.extend(self._message(channel, e) for e in entries)
        return out
