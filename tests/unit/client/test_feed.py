"""The resume state machine and the local book, fed server messages by hand."""

from __future__ import annotations

from typing import Any

import pytest
from hybridex_client import BookReset, Feed, LocalBook, Resync, Update

pytestmark = pytest.mark.unit

BOOK = "book:WETH-USDC"
ORDERS = "orders:0x0000000000000000000000000000000000000001"


def upd(channel: str, seq: int, **data: Any) -> dict[str, Any]:
    return {"type": "update", "channel": channel, "seq": seq, "data": data}


def level(seq: int, side: str, price: int, amount: int) -> dict[str, Any]:
    return upd(BOOK, seq, side=side, price=str(price), amount=str(amount))


def snapshot(
    seq: int, bids: list[list[str]], asks: list[list[str]], resync: bool = False
) -> dict[str, Any]:
    return {"type": "snapshot", "channel": BOOK, "seq": seq, "bids": bids, "asks": asks,
            "resync": resync}  # fmt: skip


def booked_feed() -> Feed:
    feed = Feed(session="tok")
    feed.subscribe(BOOK)
    feed.on_message({"type": "subscribed", "channel": BOOK, "seq": 12})
    feed.on_message(snapshot(10, [["100", "5"], ["90", "1"]], [["110", "2"]]))
    return feed


def test_snapshot_then_deltas_as_level_totals() -> None:
    feed = booked_feed()
    book = feed.books[BOOK]
    assert (book.best_bid(), book.best_ask(), book.seq) == (100, 110, 10)
    steps = [feed.on_message(m) for m in (level(11, "buy", 100, 7), level(12, "sell", 110, 0),
                                          level(13, "sell", 120, 3))]  # fmt: skip
    assert all(not s.send for s in steps)
    assert book.levels("buy") == [(100, 7), (90, 1)]
    assert book.levels("sell") == [(120, 3)]
    assert feed.last[BOOK] == 13


def test_an_update_before_the_snapshot_is_ignored() -> None:
    feed = Feed()
    feed.subscribe(BOOK)
    feed.on_message(level(5, "buy", 1, 1))
    assert feed.books[BOOK].bids == {}
    assert feed.last[BOOK] is None


def test_duplicates_are_dropped() -> None:
    feed = booked_feed()
    feed.on_message(level(11, "buy", 100, 7))
    step = feed.on_message(level(11, "buy", 100, 99))
    assert step.events == []
    assert feed.books[BOOK].bids[100] == 7


def test_a_gap_resubscribes_from_the_last_seq_once_then_catches_up() -> None:
    feed = booked_feed()
    step = feed.on_message(level(13, "buy", 95, 1))  # 11 and 12 missing
    assert step.send == [{"op": "subscribe", "channel": BOOK, "fromSeq": 10}]
    assert feed.books[BOOK].levels("buy") == [(100, 5), (90, 1)]  # not applied
    assert feed.on_message(level(14, "buy", 95, 2)).send == []  # still resuming: no storm
    for m in (level(11, "buy", 100, 6), level(12, "buy", 90, 0), level(13, "buy", 95, 1)):
        feed.on_message(m)
    assert feed.books[BOOK].levels("buy") == [(100, 6), (95, 1)]
    assert feed.gaps == 1
    assert feed.resuming == set()


def test_a_heartbeat_above_the_last_seq_is_a_quiet_gap() -> None:
    feed = booked_feed()
    assert feed.on_message({"type": "heartbeat", "seqs": {BOOK: 10}}).send == []
    step = feed.on_message({"type": "heartbeat", "seqs": {BOOK: 12}})
    assert step.send == [{"op": "subscribe", "channel": BOOK, "fromSeq": 10}]


def test_reconnect_authenticates_and_resumes_every_channel() -> None:
    feed = booked_feed()
    feed.subscribe(ORDERS)
    feed.on_message({"type": "subscribed", "channel": ORDERS, "seq": 4})
    feed.on_message(upd(ORDERS, 5, status="open"))
    assert feed.connected().send == [
        {"op": "auth", "session": "tok"},
        {"op": "subscribe", "channel": BOOK, "fromSeq": 10},
        {"op": "subscribe", "channel": ORDERS, "fromSeq": 5},
    ]


def test_resync_snapshot_replaces_the_book_and_resync_reports_lost_state() -> None:
    feed = booked_feed()
    feed.subscribe(ORDERS)
    feed.on_message({"type": "subscribed", "channel": ORDERS, "seq": 4})
    step = feed.on_message(snapshot(500, [["80", "1"]], [], resync=True))
    assert step.events == [BookReset(BOOK, 500, True)]
    assert feed.books[BOOK].levels("buy") == [(80, 1)]
    assert feed.books[BOOK].asks == {}
    step = feed.on_message({"type": "resync", "channel": ORDERS, "seq": 90})
    assert step.events == [Resync(ORDERS, 90)]
    assert feed.last[ORDERS] == 90
    assert feed.on_message(upd(ORDERS, 91)).events == [Update(ORDERS, 91, {})]


def test_a_feed_that_restarted_below_our_seq_reloads() -> None:
    feed = booked_feed()
    feed.subscribe(ORDERS)
    feed.on_message({"type": "subscribed", "channel": ORDERS, "seq": 40})
    feed.connected()
    step = feed.on_message({"type": "subscribed", "channel": BOOK, "seq": 3})
    assert step.send == [{"op": "subscribe", "channel": BOOK}]  # a fresh snapshot
    step = feed.on_message({"type": "subscribed", "channel": ORDERS, "seq": 2})
    assert step.events == [Resync(ORDERS, 2)]


def test_local_book_load_drops_empty_levels() -> None:
    book = LocalBook()
    book.load([["5", "0"], ["4", "2"]], [], seq=1)
    assert book.levels("buy") == [(4, 2)]
    assert book.best_ask() is None
