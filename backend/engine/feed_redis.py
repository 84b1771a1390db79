"""Feed store on Redis streams, shared by every API worker (production).

Keys (all under the deployment's prefix):
- `{prefix}feed:{channel}`: a stream of the channel's messages. Each entry holds the run of
  consecutive messages one write brought for that channel: its id is `{last channel seq}-0` and
  its field `d` the JSON payload (one message) or a JSON array of payloads (the run, oldest
  first, ending at that seq). Trimmed to about `retention` messages (`MINID`: entries whose
  last seq is more than `retention` behind the newest). The settlement worker's `fills:`
  channels keep one message an entry (`backend.settlement.fill_feed`); the reader takes both.
- `{prefix}feed-state`: a hash channel → last seq, plus `_engine_seq` (last engine command
  published). Written by the same script call as the entries (atomic, like MULTI/EXEC), so a
  restarted engine recovers counters and publishes exactly what is missing.

A group is ONE `EVALSHA` (`_APPEND`): messages grouped per channel, payloads encoded with orjson.
Per-command MULTI/EXEC cost more in redis-py's packing and reply parsing than everything else
the feed writer does, and even one script call through redis-py costs ~200 µs more than through
`PipelinedRedis`, which writes (any URL redis-py takes: TLS and unix sockets too); redis-py reads.
An entry a run rather than a message: at full load a write carries ~5 messages a channel, and
the entry's fixed cost (its XADD inside the script, its id, the stream's node) was most of
redis-server's CPU per order (~36 µs of it for ~6.7 messages an order).
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
# (in KEYS order): channel, count r, r × (last channel seq of a run, payload of the run). The
# counters are set after the entries, the engine seq with the last of them (one script call:
# atomic either way). A write whose engine seq is already recorded was applied before (a retry
# after a reply lost with the connection) and changes nothing: its XADDs would be refused.
_APPEND = """
local done = redis.call('HGET', KEYS[1], '_engine_seq')
if done and tonumber(done) >= tonumber(ARGV[2]) then
  return 0
end
local retention = tonumber(ARGV[1])
local a = 3
local counters = {}
for k = 2, #KEYS do
  local channel, r = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local seq
  for _ = 1, r do
    seq = ARGV[a]
    local floor = tonumber(seq) - retention
    if floor > 0 then
      redis.call('XADD', KEYS[k], 'MINID', floor, seq .. '-0', 'd', ARGV[a + 1])
    else
      redis.call('XADD', KEYS[k], seq .. '-0', 'd', ARGV[a + 1])
    end
    a = a + 2
  end
  counters[#counters + 1] = channel
  counters[#counters + 1] = seq
  if #counters >= 1000 then  -- one HSET for many channels (unpack's stack is bounded)
    redis.call('HSET', KEYS[1], unpack(counters))
    counters = {}
  end
end
counters[#counters + 1] = '_engine_seq'
counters[#counters + 1] = ARGV[2]
redis.call('HSET', KEYS[1], unpack(counters))
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

    def _messages(
        self, channel: str, entry: tuple[Any, dict[Any, Any]], after_seq: int = 0
    ) -> list[FeedMessage]:
        """The messages of one entry with seq > after_seq."""
        entry_id, fields = entry
        last = _seq(entry_id)
        data = orjson.loads(fields[b"d"])
        if type(data) is not list:
            return [FeedMessage(channel, last, data)] if last > after_seq else []
        first = last - len(data) + 1
        skip = max(0, after_seq + 1 - first)
        return [FeedMessage(channel, first + i, d) for i, d in enumerate(data) if i >= skip]

    def _first_seq(self, entry: tuple[Any, dict[Any, Any]]) -> int:
        entry_id, fields = entry
        data = orjson.loads(fields[b"d"])
        return _seq(entry_id) - (len(data) - 1 if type(data) is list else 0)

    # ------------------------------------------------------------------ writer

    async def load_state(self) -> tuple[int, dict[str, int]]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self._state)
        state = {k.decode(): int(v) for k, v in raw.items()}
        return state.pop(_ENGINE_SEQ, 0), state

    async def append(self, engine_seq: int, messages: list[FeedMessage]) -> None:
        # channel → runs of consecutive seqs: [last seq, payloads…]. A channel's messages of
        # one write are consecutive (the publisher numbers them in order); a run per break.
        by_channel: dict[str, list[list[Any]]] = {}
        for m in messages:
            runs = by_channel.get(m.channel)
            if runs is None:
                by_channel[m.channel] = [[m.seq, orjson.dumps(m.data)]]
                continue
            run = runs[-1]
            if m.seq == run[0] + 1:
                run[0] = m.seq
                run.append(orjson.dumps(m.data))
            else:
                runs.append([m.seq, orjson.dumps(m.data)])
        keys: list[str] = [self._state]
        args: list[bytes | int | str] = [self.retention, engine_seq]
        for channel, runs in by_channel.items():
            keys.append(self._key(channel))
            args += (channel, len(runs))
            for last, *payloads in runs:
                args += (last, payloads[0] if len(payloads) == 1 else _array(payloads))
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
        # An entry's id is its last seq: the first entry from after_seq + 1 on holds it.
        entries = await self.redis.xrange(key, min=f"{after_seq + 1}-0", max="+", count=limit)
        if entries and self._first_seq(entries[0]) <= after_seq + 1:
            out: list[FeedMessage] = []
            for e in entries:
                out += self._messages(channel, e, after_seq)
            return out[:limit]
        latest = await self.latest_seq(channel)
        if after_seq >= latest:
            return []
        # Something newer exists but not the next one: it was trimmed away.
        return None

    async def wait(self, after: dict[str, int], *, timeout: float) -> list[FeedMessage]:
        if not after:
            return []
        streams: dict[Any, Any] = {self._key(c): f"{s}-0" for c, s in after.items()}
        by_key = {self._key(c): c for c in after}
        result = await self.redis.xread(streams, count=1000, block=max(1, int(timeout * 1000)))
        out: list[FeedMessage] = []
        for key, entries in result or ():
            channel = by_key[key.decode() if isinstance(key, bytes) else key]
            for e in entries:
                out += self._messages(channel, e, after[channel])
        return out


def _array(payloads: list[bytes]) -> bytes:
    """A JSON array of already-encoded JSON values."""
    return b"[%b]" % b",".join(payloads)
