"""Limits of `/v1/ws` that live in one API worker: open connections per client address, and
messages per connection (a token bucket). The handshake's per-IP bucket is the shared one
(`middleware.py`); frame size is capped by uvicorn (`ws_max_size`) and checked per message.

Connections are counted per worker process, not across workers: a count in Redis would
outlive a worker that is killed, and the per-IP handshake bucket already bounds how fast
connections can be opened. With N workers an address may hold up to N times the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ConnectionCounter:
    """Open connections per client address in this process."""

    def __init__(self, max_per_ip: int) -> None:
        self.max_per_ip = max_per_ip
        self._open: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        """Count one more connection from `ip`, unless it already holds the maximum."""
        n = self._open.get(ip, 0)
        if n >= self.max_per_ip:
            return False
        self._open[ip] = n + 1
        return True

    def release(self, ip: str) -> None:
        n = self._open.get(ip, 0) - 1
        if n > 0:
            self._open[ip] = n
        else:
            self._open.pop(ip, None)

    def open(self, ip: str) -> int:
        return self._open.get(ip, 0)


class MessageBucket:
    """`burst` messages at once, refilled at `per_s` a second (one connection's, no store)."""

    def __init__(
        self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._ts = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._ts) * self.per_s)
        self._ts = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
