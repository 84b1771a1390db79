"""The reference consumer's book: balances and resting orders from events alone, duplicates
ignored within a bounded window, and a saved book loaded back equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backend.stream import consume
from backend.stream.consume import BalanceBook, order_differences

ALICE = "0x" + "aa" * 20
WETH = "0x" + "11" * 20


def order(eid: str, h: str, status: str, remaining: int | None) -> dict[str, Any]:
    rem = None if remaining is None else str(remaining)
    data = {"order_hash": h, "trader": ALICE, "market_id": "WETH-USDC", "status": status,
            "remaining": rem}  # fmt: skip
    return {"id": eid, "type": "order", "data": data}


def test_orders_rest_until_closed_and_duplicates_change_nothing(tmp_path: Path) -> None:
    book = BalanceBook()
    h1, h2 = "0x" + "01" * 32, "0x" + "02" * 32
    big = 2**256 - 1
    balance = {"trader": ALICE, "token": WETH, "total": str(big), "locked": "4"}
    for event in (
        order("e1", h1, "open", 10),
        order("e2", h2, "open", big),
        order("e3", h1, "partially_filled", 4),
        {"id": "e4", "type": "balance", "data": balance},
        order("e5", h2, "cancelled", big),
    ):
        assert book.apply(event)
    assert not book.apply(order("e5", h2, "open", 1))  # a redelivery: ignored whole
    assert book.duplicates == 1
    assert book.orders == {h1: (ALICE, "WETH-USDC", 4)}
    assert book.balances == {(ALICE, WETH): (big, 4)}
    path = tmp_path / "book.json"
    book.save(path)
    again = BalanceBook.load(path)
    assert (again.orders, again.balances, again.events) == (book.orders, book.balances, 5)
    assert not again.apply(order("e3", h1, "open", 10))  # the window survives a restart
    api = {ALICE: {h1: ("WETH-USDC", 4)}}
    assert order_differences(book, api) == []
    assert order_differences(book, {ALICE: {}}) != []


@given(st.integers(min_value=1, max_value=50))
def test_the_dedup_window_is_bounded(extra: int) -> None:
    saved = consume.RECENT_IDS
    consume.RECENT_IDS = 20
    try:
        book = BalanceBook()
        for i in range(20 + extra):
            assert book.apply({"id": f"e{i}", "type": "trade", "data": {}})
        assert len(book.recent) == 20
        assert not book.apply({"id": f"e{19 + extra}", "type": "trade", "data": {}})
    finally:
        consume.RECENT_IDS = saved
