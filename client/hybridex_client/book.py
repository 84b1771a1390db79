"""A local order book kept from a `book:` channel: a snapshot, then deltas where each delta
is a price level's new total (`0` removes the level)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class LocalBook:
    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq: int | None = None
        """The channel seq the book reflects (None: no snapshot yet)."""

    def load(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]], seq: int) -> None:
        """Replaces the book with a snapshot as of channel sequence `seq`."""
        self.bids = {int(p): int(a) for p, a in bids if int(a) > 0}
        self.asks = {int(p): int(a) for p, a in asks if int(a) > 0}
        self.seq = seq

    def apply(self, seq: int, data: dict[str, Any]) -> None:
        """One `update`: `{side: "buy"|"sell", price, amount}` with the level's new total."""
        side = self.bids if data["side"] == "buy" else self.asks
        price, amount = int(data["price"]), int(data["amount"])
        if amount == 0:
            side.pop(price, None)
        else:
            side[price] = amount
        self.seq = seq

    def levels(self, side: str, depth: int | None = None) -> list[tuple[int, int]]:
        """`(price, amount)` best first."""
        book = self.bids if side == "buy" else self.asks
        out = sorted(book.items(), reverse=side == "buy")
        return out if depth is None else out[:depth]

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None
