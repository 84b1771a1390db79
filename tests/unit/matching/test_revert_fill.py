"""RevertFill: the engine's way back from a fill the chain refused for good."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.domain.errors import ErrorCode
from backend.matching import commands as c
from backend.matching.engine import Engine
from backend.matching.events import (
    CancelReason,
    CommandRejected,
    Event,
    Fill,
    FillReverted,
    OrderCancelled,
)

from .helpers import ALICE, BASE, BOB, BUY, CAROL, FEES, LOT, QUOTE, SELL, Harness, P, of, only

pytestmark = pytest.mark.unit


def revert_of(fill: Fill) -> dict[str, Any]:
    """The command the settlement worker builds from a fill row."""
    return {
        "fill_seq": fill.seq, "fill_index": fill.fill_index, "market_id": fill.market_id,
        "maker_hash": fill.maker_hash, "maker_trader": fill.maker_trader,
        "taker_hash": fill.taker_hash, "taker_trader": fill.taker_trader,
        "taker_side": fill.taker_side, "price": fill.price, "amount": fill.amount,
        "quote_amount": fill.quote_amount, "maker_fee": fill.maker_fee,
        "taker_fee": fill.taker_fee,
    }  # fmt: skip


def totals(engine: Engine) -> dict[tuple[str, str], int]:
    return {(b.trader, b.token): b.total for b in engine.balances if b.total}


def test_revert_restores_both_sides_and_fees_and_reoffers_the_maker() -> None:
    h = Harness(maker_fee_bps=10, taker_fee_bps=20)
    h.fund(ALICE)
    h.fund(BOB)
    before = totals(h.engine)
    h.place(ALICE, SELL, P(100), 10 * LOT)  # rests
    fill = only(h.place(BOB, BUY, P(100), 4 * LOT, c.TimeInForce.IOC), Fill)
    assert (fill.maker_fee, fill.taker_fee) == (
        fill.quote_amount * 10 // 10_000,
        4 * LOT * 20 // 10_000,
    )
    events = h.do(c.RevertFill, **revert_of(fill))
    reverted = only(events, FillReverted)
    assert reverted.maker_remaining == 10 * LOT  # the maker's order is whole again
    assert reverted.taker_remaining is None  # the IOC taker is closed and stays closed
    assert totals(h.engine) == before  # fee account included: it gave both fees back
    assert h.bal(ALICE, BASE) == (10**6, 10 * LOT)
    assert h.levels(SELL) == [(P(100), 10 * LOT)]
    assert h.bal(FEES, BASE) == (0, 0)
    assert h.bal(FEES, QUOTE) == (0, 0)


def test_revert_is_applied_once() -> None:
    h = Harness()
    h.fund(ALICE)
    h.fund(BOB)
    h.place(ALICE, SELL, P(100), 4 * LOT)
    fill = only(h.place(BOB, BUY, P(100), 4 * LOT), Fill)
    h.do(c.RevertFill, **revert_of(fill))
    state = h.engine.state_hash()
    again = only(h.do(c.RevertFill, **revert_of(fill)), CommandRejected)
    assert again.code is ErrorCode.FILL_ALREADY_REVERTED
    assert h.engine.state_hash() == state
    # the memory of reverted fills survives a snapshot
    restored = Engine.from_snapshot(h.engine.to_snapshot())
    assert restored.state_hash() == state
    assert (fill.seq, fill.fill_index) in restored.reverted_fills


def test_revert_refused_while_the_proceeds_are_spent_then_applied_after_the_later_revert() -> None:
    h = Harness()
    h.fund(ALICE)
    h.do(c.Credit, trader=BOB, token=QUOTE, amount=10**6)  # Bob holds no base of his own
    h.fund(CAROL)
    h.place(ALICE, SELL, P(100), 4 * LOT)
    first = only(h.place(BOB, BUY, P(100), 4 * LOT), Fill)
    h.place(CAROL, BUY, P(100), 4 * LOT)
    second = only(h.place(BOB, SELL, P(100), 4 * LOT), Fill)  # Bob sells what he bought
    state = h.engine.state_hash()
    refused = only(h.do(c.RevertFill, **revert_of(first)), CommandRejected)
    assert refused.code is ErrorCode.INSUFFICIENT_BALANCE
    assert h.engine.state_hash() == state  # nothing changed
    only(h.do(c.RevertFill, **revert_of(second)), FillReverted)
    only(h.do(c.RevertFill, **revert_of(first)), FillReverted)
    assert h.bal(BOB, BASE) == (0, 0)
    assert h.bal(BOB, QUOTE) == (10**6, 0)
    assert h.bal(ALICE, BASE)[0] == 10**6
    assert h.bal(CAROL, QUOTE)[0] == 10**6


def test_orders_backed_by_the_taken_back_funds_are_cancelled() -> None:
    h = Harness()
    h.fund(ALICE)
    h.do(c.Credit, trader=BOB, token=QUOTE, amount=10**6)
    h.place(ALICE, SELL, P(100), 4 * LOT)
    fill = only(h.place(BOB, BUY, P(100), 4 * LOT), Fill)
    h.place(BOB, SELL, P(200), 4 * LOT)  # rests, locking the base he bought
    events = h.do(c.RevertFill, **revert_of(fill))
    cancelled = only(events, OrderCancelled)
    assert (cancelled.trader, cancelled.reason) == (BOB, CancelReason.FILL_REVERTED)
    assert h.bal(BOB, BASE) == (0, 0)
    assert h.levels(SELL) == []  # Alice's order was filled whole: closed, it stays closed
    assert h.bal(ALICE, BASE) == (10**6, 0)


def test_revert_of_unknown_market_or_bad_amounts_is_refused() -> None:
    h = Harness()
    h.fund(ALICE)
    h.fund(BOB)
    h.place(ALICE, SELL, P(100), 4 * LOT)
    fill = only(h.place(BOB, BUY, P(100), 4 * LOT), Fill)
    bad_market = {**revert_of(fill), "market_id": "NOPE"}
    assert only(h.do(c.RevertFill, **bad_market), CommandRejected).code is ErrorCode.UNKNOWN_MARKET
    negative = {**revert_of(fill), "maker_fee": -1}
    assert only(h.do(c.RevertFill, **negative), CommandRejected).code is ErrorCode.INVALID_REQUEST


orders = st.lists(
    st.tuples(
        st.sampled_from((ALICE, BOB, CAROL)),
        st.sampled_from((BUY, SELL)),
        st.integers(95, 105),
        st.integers(1, 8),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=orders, fees=st.tuples(st.integers(0, 50), st.integers(0, 50)), data=st.data())
def test_any_revert_conserves_funds_and_reverting_all_restores_the_credits(
    orders: list[tuple[str, Any, int, int]], fees: tuple[int, int], data: st.DataObject
) -> None:
    """Funds are conserved by every revert, a refused one changes nothing, and reverting every
    fill, latest first, gives each trader back exactly what was credited."""
    h = Harness(maker_fee_bps=fees[0], taker_fee_bps=fees[1])
    for t in (ALICE, BOB, CAROL):
        h.fund(t, base=10**5, quote=10**5)
    credited = totals(h.engine)
    fills: list[Fill] = []
    for trader, side, price, lots in orders:
        events: list[Event] = h.place(trader, side, P(price), lots * LOT)
        fills += of(events, Fill)
    # one revert out of order first: applied or refused, funds are conserved either way
    if fills:
        pick = data.draw(st.sampled_from(fills))
        state = h.engine.state_hash()
        events = h.do(c.RevertFill, **revert_of(pick))
        if of(events, CommandRejected):
            assert h.engine.state_hash() == state
        else:
            fills.remove(pick)
        assert _per_token(totals(h.engine)) == _per_token(credited)
    for fill in reversed(fills):
        only(h.do(c.RevertFill, **revert_of(fill)), FillReverted)
    assert totals(h.engine) == credited


def _per_token(t: dict[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, token), v in t.items():
        out[token] = out.get(token, 0) + v
    return out
