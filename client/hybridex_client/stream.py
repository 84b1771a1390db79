"""The WebSocket transport around `Feed`: connects, authenticates, resumes every channel after
a disconnect (with backoff), and hands the application events. Synchronous (websockets'
sync client): `events(timeout)` returns whatever arrived within `timeout` seconds."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hybridex_client.book import LocalBook
from hybridex_client.feed import Event, Feed, Step


class Reconnected:
    """The connection was lost and is back; every channel was resumed from its last seq."""

    def __repr__(self) -> str:
        return "Reconnected()"


class Stream:
    def __init__(self, url: str, *, session: str | None = None, max_backoff_s: float = 5.0) -> None:
        self.url = url
        self.feed = Feed(session)
        self.max_backoff_s = max_backoff_s
        self.conn: ClientConnection | None = None
        self.reconnects = 0

    def book(self, market: str) -> LocalBook:
        return self.feed.books[f"book:{market}"]

    def subscribe(self, channel: str) -> None:
        step = self.feed.subscribe(channel)
        if self.conn is not None:
            self._send(step)

    def connect(self) -> None:
        # Entered by hand: the connection outlives this call (websockets 17 wants a `with`).
        self.conn = connect(self.url, open_timeout=10, max_size=2**24).__enter__()
        self._send(self.feed.connected())

    def disconnect(self) -> None:
        """Closes the socket (the next `events` reconnects and resumes)."""
        if self.conn is not None:
            self.conn.close()

    def close(self) -> None:
        self.disconnect()
        self.conn = None

    def _send(self, step: Step) -> None:
        assert self.conn is not None
        for msg in step.send:
            self.conn.send(json.dumps(msg))

    def _reconnect(self) -> None:
        delay = 0.1
        while True:
            try:
                self.connect()
                self.reconnects += 1
                return
            except Exception:  # the server is away (refused, handshake failed): retry
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    def events(self, timeout: float = 1.0) -> list[Event | Reconnected]:
        """Reads until `timeout` passes without a message; reconnects on a lost connection."""
        if self.conn is None:
            self.connect()
        out: list[Event | Reconnected] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            assert self.conn is not None
            try:
                raw = self.conn.recv(timeout=left)
            except TimeoutError:
                break
            except ConnectionClosed:
                self._reconnect()
                out.append(Reconnected())
                continue
            msg: Any = json.loads(raw)
            if isinstance(msg, dict):
                step = self.feed.on_message(msg)
                with contextlib.suppress(ConnectionClosed):  # the next recv resumes
                    self._send(step)
                out.extend(step.events)
        return out
