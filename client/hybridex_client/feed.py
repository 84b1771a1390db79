"""The WebSocket resume state machine (docs/api.md "Gap detection and resume"), without I/O.

`Feed` is fed every server message and the connection's life events; it answers with what
to send back (subscriptions, resubscriptions with `fromSeq`) and what happened, as events.
Per sequenced channel it keeps the last seq applied:

- `update` with seq = last + 1 is applied; seq ≤ last is a duplicate and dropped; seq > last + 1
  is a gap: resubscribe with `fromSeq = last` and drop updates until the catch-up arrives.
- a `heartbeat` whose `seqs[channel]` is above last is a quiet gap: resubscribe likewise.
- after a reconnect every channel is subscribed with `fromSeq = last`.
- `snapshot` (book) replaces the local book; `resync` (other channels) means the missed
  messages are gone: the application reloads that state over REST (a `Resync` event).
- a `subscribed` seq below last means the server's feed restarted from scratch: the book is
  reloaded (subscribe without fromSeq), other channels report `Resync`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hybridex_client.book import LocalBook


@dataclass(frozen=True)
class Update:
    channel: str
    seq: int
    data: dict[str, Any]


@dataclass(frozen=True)
class BookReset:
    """The local book of `channel` was (re)loaded from a snapshot; `resync`: after lost data."""

    channel: str
    seq: int
    resync: bool


@dataclass(frozen=True)
class Resync:
    """Messages of `channel` were lost: reload its state over REST."""

    channel: str
    seq: int


@dataclass(frozen=True)
class Ticker:
    channel: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ServerError:
    code: str
    message: str
    channel: str | None = None


@dataclass(frozen=True)
class Authenticated:
    trader: str


Event = Update | BookReset | Resync | Ticker | ServerError | Authenticated


@dataclass
class Step:
    """What one input produced: messages to send and events for the application."""

    send: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class Feed:
    def __init__(self, session: str | None = None) -> None:
        self.session = session
        self.channels: list[str] = []
        self.last: dict[str, int | None] = {}
        """Per channel, the last seq applied (None: nothing yet)."""
        self.resuming: set[str] = set()
        """Channels with a resubscription in flight: their out-of-order updates are dropped."""
        self.books: dict[str, LocalBook] = {}
        self.gaps = 0
        """Gaps detected so far (for metrics and tests)."""

    # ------------------------------------------------------------------ requests

    def subscribe(self, channel: str) -> Step:
        if channel not in self.channels:
            self.channels.append(channel)
            self.last[channel] = None
            if channel.startswith("book:"):
                self.books[channel] = LocalBook()
        return Step(send=[self._subscription(channel)])

    def _subscription(self, channel: str) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "channel": channel}
        last = self.last.get(channel)
        if last is not None and not channel.startswith("ticker:"):
            msg["fromSeq"] = last
            self.resuming.add(channel)
        return msg

    def connected(self) -> Step:
        """A new connection: authenticate, then resume every channel from its last seq."""
        step = Step()
        self.resuming.clear()
        if self.session is not None:
            step.send.append({"op": "auth", "session": self.session})
        step.send.extend(self._subscription(c) for c in self.channels)
        return step

    # ------------------------------------------------------------------ server messages

    def on_message(self, msg: dict[str, Any]) -> Step:
        kind = msg.get("type")
        channel = msg.get("channel")
        step = Step()
        if kind == "update" and isinstance(channel, str) and channel in self.last:
            self._on_update(channel, int(msg["seq"]), msg.get("data") or {}, step)
        elif kind == "snapshot" and isinstance(channel, str) and channel in self.books:
            seq = int(msg["seq"])
            self.books[channel].load(msg.get("bids", []), msg.get("asks", []), seq)
            self.last[channel] = seq
            self.resuming.discard(channel)
            step.events.append(BookReset(channel, seq, bool(msg.get("resync"))))
        elif kind == "resync" and isinstance(channel, str) and channel in self.last:
            self.last[channel] = int(msg["seq"])
            self.resuming.discard(channel)
            step.events.append(Resync(channel, int(msg["seq"])))
        elif kind == "subscribed" and isinstance(channel, str) and channel in self.last:
            self._on_subscribed(channel, msg.get("seq"), step)
        elif kind == "heartbeat":
            for ch, seq in (msg.get("seqs") or {}).items():
                last = self.last.get(ch)
                if ch in self.last and last is not None and int(seq) > last:
                    self.gaps += 1
                    step.send.append(self._subscription(ch))
        elif kind == "ticker" and isinstance(channel, str):
            step.events.append(Ticker(channel, msg.get("data") or {}))
        elif kind == "authenticated":
            step.events.append(Authenticated(str(msg.get("trader"))))
        elif kind == "error":
            step.events.append(
                ServerError(str(msg.get("code")), str(msg.get("message", "")), channel)
            )
        return step

    def _on_update(self, channel: str, seq: int, data: dict[str, Any], step: Step) -> None:
        last = self.last[channel]
        if last is None:
            if channel in self.books:
                return  # before the snapshot: the snapshot's seq says what follows it
            last = seq - 1  # a stream channel subscribed without fromSeq starts here
        if seq <= last:
            return  # a duplicate (a catch-up overlapping what had arrived)
        if seq > last + 1:
            if channel not in self.resuming:
                self.gaps += 1
                step.send.append(self._subscription(channel))
            return
        self.resuming.discard(channel)
        self.last[channel] = seq
        book = self.books.get(channel)
        if book is not None:
            book.apply(seq, data)
        step.events.append(Update(channel, seq, data))

    def _on_subscribed(self, channel: str, seq: object, step: Step) -> None:
        if not isinstance(seq, int):
            return  # ticker: a state channel
        last = self.last[channel]
        if last is None:
            if channel not in self.books:
                self.last[channel] = seq  # stream channels start from now
            return
        if seq < last:  # the feed restarted below what we saw: our seqs mean nothing now
            if channel in self.books:
                self.last[channel] = None
                self.resuming.discard(channel)
                step.send.append({"op": "subscribe", "channel": channel})
            else:
                self.last[channel] = seq
                self.resuming.discard(channel)
                step.events.append(Resync(channel, seq))
