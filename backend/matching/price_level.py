"""FIFO bucket of orders at one price (time priority within the level)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from backend.matching.order import Order


class PriceLevel:
    """Orders in arrival order with the level total kept up to date.

    Removal is lazy: a cancelled order is marked closed and skipped when it reaches the front,
    so a cancel costs O(1) instead of O(n) in a deque. `live` counts open orders; the queue is
    compacted when dead entries outnumber live ones, bounding the waste.
    """

    __slots__ = ("live", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.total = 0
        self.live = 0

    def append(self, order: Order) -> None:
        self.orders.append(order)
        self.total += order.remaining
        self.live += 1

    def discard(self, order: Order) -> None:
        """Account for an order that just closed (caller set `order.open = False`)."""
        self.total -= order.remaining
        self.live -= 1
        if len(self.orders) > 2 * self.live + 16:
            self.compact()

    def compact(self) -> None:
        """Drop the closed orders from the queue (the engine's cancel path calls this too)."""
        self.orders = deque(o for o in self.orders if o.open)

    def __iter__(self) -> Iterator[Order]:
        return (o for o in self.orders if o.open)

    def __repr__(self) -> str:
        return f"PriceLevel({self.price}, total={self.total}, live={self.live})"
