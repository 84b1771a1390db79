"""Book and price-level mechanics: priority order, aggregated depth, lazy removal."""

from __future__ import annotations

import pytest

from backend.domain.types import Side, TimeInForce
from backend.matching.order import Order
from backend.matching.order_book import OrderBook

pytestmark = pytest.mark.unit


def make(i: int, side: Side, price: int, amount: int = 10) -> Order:
    return Order(
        i.to_bytes(32, "big"), f"t{i}", "M", side, price, amount, amount, TimeInForce.GTC, i, 0,
        None,
    )  # fmt: skip


def test_best_first_on_both_sides() -> None:
    book = OrderBook()
    for i, (side, price) in enumerate(
        [(Side.BUY, 99), (Side.BUY, 101), (Side.SELL, 105), (Side.SELL, 103), (Side.BUY, 101)]
    ):
        book.add(make(i, side, price))
    assert book.best_bid() == 101
    assert book.best_ask() == 103
    assert book.depth(Side.BUY) == [(101, 20), (99, 10)]
    assert book.depth(Side.SELL) == [(103, 10), (105, 10)]
    assert book.depth(Side.BUY, 1) == [(101, 20)]
    assert [o.nonce for o in book.orders(Side.BUY)] == [1, 4, 0]  # price, then arrival


def test_removing_last_order_drops_level() -> None:
    book = OrderBook()
    o = make(1, Side.SELL, 100)
    book.add(o)
    o.open = False
    book.remove(o)
    assert book.best_ask() is None
    assert len(book.asks) == 0


def test_lazy_removal_keeps_fifo_and_compacts() -> None:
    book = OrderBook()
    orders = [make(i, Side.BUY, 100, 1) for i in range(200)]
    for o in orders:
        book.add(o)
    for o in orders[:150]:  # cancel from the front and the middle
        o.open = False
        book.remove(o)
    level = book.bids.peekitem(0)[1]
    assert (level.total, level.live) == (50, 50)
    assert [o.nonce for o in level] == list(range(150, 200))
    assert len(level.orders) <= 2 * level.live + 16  # dead entries were compacted away
