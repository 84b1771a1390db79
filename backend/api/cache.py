"""`SharedCache`: per-key values no older than `max_age_s`, computed once for every reader.

An API worker serves many WebSocket clients from one process; a value they all want (a
market's ticker, its book snapshot) is fetched once per interval, whatever the number of
clients or how often they ask. Concurrent readers of a stale entry wait for one refresh.
A failed refresh caches nothing: the next reader tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedCache(Generic[T]):
    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._entries: dict[str, tuple[float, T]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _fresh(self, key: str) -> tuple[float, T] | None:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.max_age_s:
            return entry
        return None

    async def get(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        entry = self._fresh(key)
        if entry is not None:
            return entry[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key)  # another reader may have just refreshed it
            if entry is not None:
                return entry[1]
            started = time.monotonic()
            value = await compute()
            self._entries[key] = (started, value)
            return value
