"""Sequenced public feeds (SPEC §9 WebSocket channels), written by the engine process only.

Channels: `book:{market}` (level deltas), `trades:{market}`, `orders:{address}`,
`balances:{address}` (addresses checksummed). Every channel has its own sequence, starting
at 1 with no gaps, so a subscriber detects a gap and resumes from the last number it saw
within the retention window. Stores: Redis streams (production, shared by every API worker)
and memory (one process: `hybridex dev`, tests).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class FeedMessage(NamedTuple):
    """One message of a channel. A named tuple rather than a frozen dataclass: the engine
    builds ~7 an order, and a frozen dataclass's `__init__` (an `object.__setattr__` a field)
    cost about a tenth of its group commit."""

    channel: str
    seq: int
    data: dict[str, Any]
    """JSON-ready payload: amounts and prices as decimal strings, hashes as 0x-hex."""


class FeedReader(Protocol):
    async def read_after(
        self, channel: str, after_seq: int, *, limit: int = 1000
    ) -> list[FeedMessage] | None:
        """Messages with seq > after_seq, oldest first; None when after_seq has already left
        the retention window (the subscriber must resync from a snapshot)."""
        ...

    async def wait(self, after: dict[str, int], *, timeout: float) -> list[FeedMessage]:
        """Block up to `timeout` for messages newer than `after[channel]` on those channels."""
        ...

    async def latest_seq(self, channel: str) -> int:
        """The last sequence number of `channel` (0 if it never had a message)."""
        ...


class FeedWriter(Protocol):
    """The engine's side of a feed store. Messages are numbered by the engine's publisher;
    the store keeps them, the per-channel counters and the last engine seq published, all
    updated together so a restarted engine republishes exactly what is missing."""

    async def load_state(self) -> tuple[int, dict[str, int]]:
        """(last engine seq published, channel → last channel seq)."""
        ...

    async def append(self, engine_seq: int, messages: list[FeedMessage]) -> None:
        """Store `messages` (channel seqs already assigned) and record `engine_seq` as
        published."""
        ...

    async def close(self) -> None: ...


class FeedStore(FeedReader, FeedWriter, Protocol):
    pass
