"""One market's book: price levels per side, best first.

Bids are keyed by -price and asks by price, so `peekitem(0)` is always the best level of
either side and iteration runs from the best price outwards.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from backend.domain.types import Side
from backend.matching.order import Order
from backend.matching.price_level import PriceLevel


class OrderBook:
    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: SortedDict[int, PriceLevel] = SortedDict()
        self.asks: SortedDict[int, PriceLevel] = SortedDict()

    def side(self, side: Side) -> SortedDict[int, PriceLevel]:
        return self.bids if side is Side.BUY else self.asks

    def add(self, order: Order) -> None:
        """Rest an order at the back of its price level."""
        if order.side is Side.BUY:
            levels, key = self.bids, -order.price
        else:
            levels, key = self.asks, order.price
        level = levels.get(key)
        if level is None:
            level = levels[key] = PriceLevel(order.price)
        level.append(order)

    def remove(self, order: Order) -> None:
        """Take a closed order's remaining amount out of its level; drop the level when empty."""
        if order.side is Side.BUY:
            levels, key = self.bids, -order.price
        else:
            levels, key = self.asks, order.price
        level = levels[key]
        level.discard(order)
        if level.live == 0:
            del levels[key]

    def best_bid(self) -> int | None:
        return self.bids.peekitem(0)[1].price if self.bids else None

    def best_ask(self) -> int | None:
        return self.asks.peekitem(0)[1].price if self.asks else None

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """Aggregated `(price, amount)` levels, best first."""
        out: list[tuple[int, int]] = []
        for level in self.side(side).values():
            if limit is not None and len(out) >= limit:
                break
            out.append((level.price, level.total))
        return out

    def orders(self, side: Side) -> Iterator[Order]:
        """Open orders of one side in priority order (price, then time)."""
        for level in self.side(side).values():
            yield from level
