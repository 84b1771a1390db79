"""In-process feed store (`hybridex dev`, tests): a bounded deque per channel.

Readers may run on another thread or event loop than the writer (a test client's portal), so
the data sits behind a lock and waiters are woken with `call_soon_threadsafe`.

    feeds = MemoryFeedStore(retention=10_000)
    service = await EngineService.open(journal_dir=..., feeds=feeds)
    msgs = await feeds.read_after("book:WETH-USDC", 0)
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from backend.engine.feeds import FeedMessage

DEFAULT_RETENTION = 10_000


class MemoryFeedStore:
    def __init__(self, *, retention: int = DEFAULT_RETENTION) -> None:
        self.retention = retention
        self._lock = threading.Lock()
        self._channels: dict[str, deque[FeedMessage]] = {}
        self._latest: dict[str, int] = {}
        self._engine_seq = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # ------------------------------------------------------------------ writer

    async def load_state(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            return self._engine_seq, dict(self._latest)

    async def append(self, engine_seq: int, messages: list[FeedMessage]) -> None:
        with self._lock:
            for m in messages:
                q = self._channels.get(m.channel)
                if q is None:
                    q = self._channels[m.channel] = deque(maxlen=self.retention)
                if m.seq != self._latest.get(m.channel, 0) + 1:
                    raise ValueError(f"feed gap on {m.channel}: {m.seq}")
                q.append(m)
                self._latest[m.channel] = m.seq
            self._engine_seq = max(self._engine_seq, engine_seq)
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)

    async def close(self) -> None:
        return None

    def publish(self, channel: str, data: dict[str, Any]) -> int:
        """Appends one message under the next seq of `channel`, from any thread: for a
        channel whose only writer is another component (the settlement worker's `fills:`)."""
        with self._lock:
            seq = self._latest.get(channel, 0) + 1
            q = self._channels.get(channel)
            if q is None:
                q = self._channels[channel] = deque(maxlen=self.retention)
            q.append(FeedMessage(channel, seq, data))
            self._latest[channel] = seq
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        return seq

    # ------------------------------------------------------------------ reader

    def _read(self, channel: str, after_seq: int, limit: int) -> list[FeedMessage] | None:
        latest = self._latest.get(channel, 0)
        if after_seq >= latest:
            return []
        q = self._channels[channel]
        first = q[0].seq
        if after_seq + 1 < first:
            return None
        start = after_seq + 1 - first
        return [q[i] for i in range(start, min(len(q), start + limit))]

    async def read_after(
        self, channel: str, after_seq: int, *, limit: int = 1000
    ) -> list[FeedMessage] | None:
        with self._lock:
            return self._read(channel, after_seq, limit)

    async def latest_seq(self, channel: str) -> int:
        with self._lock:
            return self._latest.get(channel, 0)

    async def wait(self, after: dict[str, int], *, timeout: float) -> list[FeedMessage]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                out: list[FeedMessage] = []
                for channel, seq in after.items():
                    # Beyond retention the caller resyncs; wait() only reports what is there.
                    out.extend(self._read(channel, seq, 1000) or ())
                if out:
                    return out
                self._waiters.append((loop, fut))
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return []


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
