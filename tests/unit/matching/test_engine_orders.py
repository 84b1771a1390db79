"""Order entry and matching situations (SPEC §4), invariants checked after every step."""

from __future__ import annotations

from typing import Any

import pytest

from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState
from backend.matching import commands as c
from backend.matching.events import (
    BalanceChanged,
    CancelReason,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderDuplicate,
    OrderRejected,
)

from .helpers import (
    ALICE,
    BASE,
    BOB,
    BUY,
    CAROL,
    FOK,
    GTC,
    IOC,
    LOT,
    MARKET,
    POST_ONLY,
    QUOTE,
    SELL,
    Harness,
    P,
    of,
    only,
    order_hash,
)

pytestmark = pytest.mark.unit


def funded(**spec: Any) -> Harness:
    h = Harness(**spec)
    for trader in (ALICE, BOB, CAROL):
        h.fund(trader)
    return h


def test_resting_order_reserves_and_rests() -> None:
    h = funded()
    events = h.place(ALICE, BUY, P(100), 5 * LOT)
    accepted = only(events, OrderAccepted)
    assert (accepted.price, accepted.amount) == (P(100), 5 * LOT)
    assert h.levels(BUY) == [(P(100), 5 * LOT)]
    assert h.bal(ALICE, QUOTE) == (10**6, 500)  # 5 lots at 1.00 quote/unit*100
    assert only(events, BalanceChanged).locked == 500


def test_full_fill_at_maker_price_moves_funds() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), 2 * LOT)
    events = h.place(BOB, BUY, P(100), 2 * LOT)
    fill = only(events, Fill)
    assert (fill.maker_trader, fill.taker_trader, fill.amount, fill.quote_amount) == (
        ALICE,
        BOB,
        2 * LOT,
        200,
    )
    assert h.levels(SELL) == []
    assert h.levels(BUY) == []
    assert h.bal(ALICE, BASE) == (10**6 - 200, 0)
    assert h.bal(ALICE, QUOTE) == (10**6 + 200, 0)
    assert h.bal(BOB, BASE) == (10**6 + 200, 0)
    assert h.bal(BOB, QUOTE) == (10**6 - 200, 0)


def test_price_time_priority_fifo_within_level() -> None:
    h = funded()
    h.place(ALICE, SELL, P(101), LOT)
    h.place(BOB, SELL, P(100), LOT)
    h.place(CAROL, SELL, P(100), LOT)
    events = h.place(ALICE, BUY, P(101), 3 * LOT)
    fills = of(events, Fill)
    assert [(f.maker_trader, f.price) for f in fills] == [
        (BOB, P(100)),
        (CAROL, P(100)),
        # ALICE's own ask at 101 is cancelled by STP, not filled
    ]
    assert [f.fill_index for f in fills] == [0, 1]
    stp = only(events, OrderCancelled)
    assert stp.reason is CancelReason.STP
    assert stp.trader == ALICE
    assert h.levels(BUY) == [(P(101), LOT)]


def test_partially_filled_then_cancelled() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), 5 * LOT)
    ask = order_hash(ALICE, 1, MARKET, SELL, P(100), 5 * LOT, GTC, 0)
    fill = only(h.place(BOB, BUY, P(100), 2 * LOT), Fill)
    assert fill.maker_remaining == 3 * LOT
    assert fill.taker_remaining == 0
    assert h.levels(SELL) == [(P(100), 3 * LOT)]
    assert h.bal(ALICE, BASE) == (10**6 - 200, 300)
    events = h.cancel(ALICE, ask)
    cancelled = only(events, OrderCancelled)
    assert (cancelled.reason, cancelled.remaining) == (CancelReason.USER, 3 * LOT)
    assert h.levels(SELL) == []
    assert h.bal(ALICE, BASE) == (10**6 - 200, 0)


def test_cancel_of_someone_elses_order_is_not_found() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    ask = order_hash(ALICE, 1, MARKET, SELL, P(100), LOT, GTC, 0)
    rejected = only(h.cancel(BOB, ask), CancelRejected)
    assert rejected.code is ErrorCode.ORDER_NOT_FOUND
    assert h.levels(SELL) == [(P(100), LOT)]
    assert only(h.cancel(ALICE, ask), OrderCancelled).reason is CancelReason.USER
    assert only(h.cancel(ALICE, ask), CancelRejected).code is ErrorCode.ORDER_NOT_FOUND


def test_sweep_across_levels_and_rest_remainder() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.place(ALICE, SELL, P(102), LOT)
    h.place(ALICE, SELL, P(105), LOT)
    events = h.place(BOB, BUY, P(103), 4 * LOT)
    assert [f.price for f in of(events, Fill)] == [P(100), P(102)]
    assert h.levels(BUY) == [(P(103), 2 * LOT)]
    assert h.levels(SELL) == [(P(105), LOT)]


def test_buy_at_better_price_releases_reservation() -> None:
    h = funded()
    h.place(ALICE, SELL, P(90), 2 * LOT)
    h.place(BOB, BUY, P(100), 3 * LOT)  # reserves 300, fills 2 lots at 0.90 → pays 180
    assert h.bal(BOB, QUOTE) == (10**6 - 180, 100)  # only the resting lot at 1.00 stays locked
    assert h.levels(BUY) == [(P(100), LOT)]


def test_ioc_remainder_cancelled() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    events = h.place(BOB, BUY, P(100), 3 * LOT, IOC)
    assert only(events, Fill).amount == LOT
    cancelled = only(events, OrderCancelled)
    assert (cancelled.reason, cancelled.remaining) == (CancelReason.IOC_REMAINDER, 2 * LOT)
    assert h.levels(BUY) == []
    assert h.bal(BOB, QUOTE) == (10**6 - 100, 0)


def test_ioc_that_does_not_cross_is_cancelled_whole() -> None:
    h = funded()
    events = h.place(BOB, BUY, P(100), LOT, IOC)
    assert only(events, OrderCancelled).reason is CancelReason.IOC_REMAINDER
    assert h.bal(BOB, QUOTE) == (10**6, 0)


def test_fok_not_fillable_leaves_book_unchanged() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.place(BOB, SELL, P(101), LOT)
    before = h.engine.state_hash()
    events = h.place(CAROL, BUY, P(101), 3 * LOT, FOK)
    assert only(events, OrderRejected).code is ErrorCode.FOK_NOT_FILLABLE
    assert h.engine.state_hash() == before


def test_fok_fillable_fills_entirely() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.place(BOB, SELL, P(101), 2 * LOT)
    events = h.place(CAROL, BUY, P(101), 3 * LOT, FOK)
    assert sum(f.amount for f in of(events, Fill)) == 3 * LOT
    assert h.levels(SELL) == []


def test_fok_does_not_count_own_orders() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.place(CAROL, SELL, P(100), LOT)
    before = h.engine.state_hash()
    events = h.place(CAROL, BUY, P(100), 2 * LOT, FOK)
    assert only(events, OrderRejected).code is ErrorCode.FOK_NOT_FILLABLE
    assert h.engine.state_hash() == before


def test_post_only_would_take_rejected() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    before = h.engine.state_hash()
    events = h.place(BOB, BUY, P(100), LOT, POST_ONLY)
    assert only(events, OrderRejected).code is ErrorCode.POST_ONLY_WOULD_TAKE
    assert h.engine.state_hash() == before
    only(h.place(BOB, BUY, P(99), LOT, POST_ONLY), OrderAccepted)
    assert h.levels(BUY) == [(P(99), LOT)]


def test_self_trade_cancels_resting_order() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.place(BOB, SELL, P(100), LOT)
    events = h.place(ALICE, BUY, P(100), 2 * LOT)
    stp = only(events, OrderCancelled)
    assert (stp.trader, stp.reason) == (ALICE, CancelReason.STP)
    fill = only(events, Fill)
    assert (fill.maker_trader, fill.amount) == (BOB, LOT)
    assert h.levels(BUY) == [(P(100), LOT)]
    assert h.bal(ALICE, BASE) == (10**6 + LOT, 0)  # own ask released, not traded


def test_expired_maker_skipped() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT, expiry=h.now + 10)
    h.place(BOB, SELL, P(101), LOT)
    h.now += 10
    events = h.place(CAROL, BUY, P(101), LOT)
    expired = only(events, OrderCancelled)
    assert (expired.trader, expired.reason) == (ALICE, CancelReason.EXPIRED)
    assert only(events, Fill).maker_trader == BOB
    assert h.bal(ALICE, BASE) == (10**6, 0)


def test_sweep_expired_removes_only_expired_orders() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT, expiry=h.now + 5)
    h.place(ALICE, SELL, P(101), LOT, expiry=h.now + 50)
    h.place(BOB, BUY, P(90), LOT)
    h.now += 5
    events = h.do(c.SweepExpired)
    assert [e.reason for e in of(events, OrderCancelled)] == [CancelReason.EXPIRED]
    assert h.levels(SELL) == [(P(101), LOT)]
    assert of(h.do(c.SweepExpired), OrderCancelled) == []


def test_expired_on_arrival_rejected() -> None:
    h = funded()
    events = h.place(ALICE, SELL, P(100), LOT, expiry=h.now)
    assert only(events, OrderRejected).code is ErrorCode.EXPIRED


def test_post_only_crossing_only_expired_order_rests() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT, expiry=h.now + 1)
    h.now += 1
    events = h.place(BOB, BUY, P(100), LOT, POST_ONLY)
    assert only(events, OrderCancelled).reason is CancelReason.EXPIRED
    assert h.levels(BUY) == [(P(100), LOT)]
    assert h.levels(SELL) == []


@pytest.mark.parametrize(
    ("price", "amount", "code"),
    [
        (P(100) + 1, LOT, ErrorCode.INVALID_TICK),
        (P(100), LOT + 1, ErrorCode.INVALID_LOT),
        (P(100), 0, ErrorCode.INVALID_ORDER),
        (0, LOT, ErrorCode.INVALID_ORDER),
    ],
)
def test_invalid_tick_lot_rejected(price: int, amount: int, code: ErrorCode) -> None:
    h = funded()
    assert only(h.place(ALICE, BUY, price, amount), OrderRejected).code is code


def test_below_min_amount_rejected() -> None:
    h = funded(min_amount=5 * LOT)
    assert only(h.place(ALICE, BUY, P(1), 4 * LOT), OrderRejected).code is ErrorCode.INVALID_LOT
    only(h.place(ALICE, BUY, P(1), 5 * LOT), OrderAccepted)


def test_unknown_market_rejected() -> None:
    h = funded()
    events = h.place(ALICE, BUY, P(1), LOT, market="NOPE-USDC")
    assert only(events, OrderRejected).code is ErrorCode.UNKNOWN_MARKET


def test_insufficient_balance_rejected() -> None:
    h = funded()
    events = h.place(ALICE, BUY, P(100), 10_001 * LOT)  # needs 1_000_100 quote
    assert only(events, OrderRejected).code is ErrorCode.INSUFFICIENT_BALANCE
    h.place(ALICE, SELL, P(100), 9_000 * LOT)
    events = h.place(ALICE, SELL, P(100), 1_001 * LOT)  # 900k base locked, 100k left
    assert only(events, OrderRejected).code is ErrorCode.INSUFFICIENT_BALANCE


def test_nonce_reused_rejected_even_after_order_closed() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT, nonce=7)
    h.place(BOB, BUY, P(100), LOT)  # fills and closes nonce 7
    events = h.place(ALICE, SELL, P(101), LOT, nonce=7)
    assert only(events, OrderRejected).code is ErrorCode.NONCE_REUSED


def test_duplicate_order_hash_is_idempotent() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT, nonce=7)
    before = h.engine.state_hash()
    events = h.place(ALICE, SELL, P(100), LOT, nonce=7)
    assert only(events, OrderDuplicate).trader == ALICE
    assert h.levels(SELL) == [(P(100), LOT)]
    assert h.engine.state_hash() == before
    assert h.engine.last_seq == h.seq


def test_rejected_order_can_be_sent_again_after_deposit() -> None:
    h = Harness()
    events = h.place(ALICE, BUY, P(100), LOT, nonce=1)
    assert only(events, OrderRejected).code is ErrorCode.INSUFFICIENT_BALANCE
    h.fund(ALICE)
    only(h.place(ALICE, BUY, P(100), LOT, nonce=1), OrderAccepted)


def test_client_order_id_unique_among_open_orders() -> None:
    h = funded()
    h.place(ALICE, BUY, P(90), LOT, coid="a")
    events = h.place(ALICE, BUY, P(91), LOT, coid="a")
    assert only(events, OrderRejected).code is ErrorCode.DUPLICATE_CLIENT_ORDER_ID
    only(h.place(BOB, BUY, P(91), LOT, coid="a"), OrderAccepted)  # per trader
    h.place(CAROL, SELL, P(90), 2 * LOT)  # fills BOB at 91, then ALICE's "a" at 90
    only(h.place(ALICE, BUY, P(91), LOT, coid="a"), OrderAccepted)


def test_frozen_trader_orders_cancelled_and_refused() -> None:
    h = funded()
    h.place(ALICE, BUY, P(90), LOT)
    h.place(ALICE, SELL, P(110), LOT)
    events = h.do(c.FreezeTrader, trader=ALICE)
    assert [e.reason for e in of(events, OrderCancelled)] == [CancelReason.FROZEN] * 2
    assert h.bal(ALICE, QUOTE) == (10**6, 0)
    assert h.bal(ALICE, BASE) == (10**6, 0)
    events = h.place(ALICE, BUY, P(90), LOT)
    assert only(events, OrderRejected).code is ErrorCode.ACCOUNT_EXITING


def test_cancel_all_bar_cancels_and_refuses_older_nonces() -> None:
    h = funded()
    h.place(ALICE, BUY, P(90), LOT, nonce=10)
    h.place(ALICE, BUY, P(91), LOT, nonce=20)
    h.place(ALICE, BUY, P(92), LOT, nonce=30)
    events = h.do(c.CancelAll, trader=ALICE, market_id=MARKET, nonce_below=25)
    cancelled = of(events, OrderCancelled)
    assert [e.reason for e in cancelled] == [CancelReason.CANCEL_ALL] * 2
    assert h.levels(BUY) == [(P(92), LOT)]
    refused = only(h.place(ALICE, BUY, P(90), LOT, nonce=15), OrderRejected)
    assert refused.code is ErrorCode.ORDER_CANCELLED
    # a lower bar later does not lower it
    h.do(c.CancelAll, trader=ALICE, market_id=MARKET, nonce_below=5)
    refused = only(h.place(ALICE, BUY, P(90), LOT, nonce=16), OrderRejected)
    assert refused.code is ErrorCode.ORDER_CANCELLED
    only(h.place(ALICE, BUY, P(90), LOT, nonce=26), OrderAccepted)


def test_cancel_all_every_market() -> None:
    h = funded()
    h.do(c.AddMarket, spec=_spec_other())
    h.place(ALICE, BUY, P(90), LOT, nonce=1)
    h.place(ALICE, BUY, P(90), LOT, nonce=2, market="OTHER")
    events = h.do(c.CancelAll, trader=ALICE, market_id=None, nonce_below=100)
    assert len(of(events, OrderCancelled)) == 2
    refused = only(h.place(ALICE, BUY, P(90), LOT, nonce=3, market="OTHER"), OrderRejected)
    assert refused.code is ErrorCode.ORDER_CANCELLED


def _spec_other() -> c.MarketSpec:
    from .helpers import spec

    return spec("OTHER")


def test_halted_market_refuses_orders_but_allows_cancel() -> None:
    h = funded()
    h.place(ALICE, BUY, P(90), LOT)
    bid = order_hash(ALICE, 1, MARKET, BUY, P(90), LOT, GTC, 0)
    h.do(c.SetMarketState, market_id=MARKET, state=MarketState.HALTED)
    refused = only(h.place(BOB, SELL, P(90), LOT), OrderRejected)
    assert refused.code is ErrorCode.MARKET_NOT_ACCEPTING
    assert only(h.cancel(ALICE, bid), OrderCancelled).reason is CancelReason.USER


def test_cancel_only_market_refuses_orders() -> None:
    h = funded()
    h.do(c.SetMarketState, market_id=MARKET, state=MarketState.CANCEL_ONLY)
    refused = only(h.place(BOB, SELL, P(90), LOT), OrderRejected)
    assert refused.code is ErrorCode.MARKET_NOT_ACCEPTING


def test_post_only_market_accepts_makers_refuses_takers() -> None:
    h = funded()
    h.place(ALICE, SELL, P(100), LOT)
    h.do(c.SetMarketState, market_id=MARKET, state=MarketState.POST_ONLY)
    refused = only(h.place(BOB, BUY, P(100), LOT, GTC), OrderRejected)
    assert refused.code is ErrorCode.POST_ONLY_WOULD_TAKE
    only(h.place(BOB, BUY, P(99), LOT, GTC), OrderAccepted)


def test_fok_in_post_only_market_never_rests() -> None:
    h = funded()
    h.do(c.SetMarketState, market_id=MARKET, state=MarketState.POST_ONLY)
    refused = only(h.place(BOB, BUY, P(99), LOT, FOK), OrderRejected)
    assert refused.code is ErrorCode.FOK_NOT_FILLABLE
    assert h.levels(BUY) == []


def test_fees_charged_in_received_asset_to_fee_account() -> None:
    from .helpers import FEES

    h = funded(maker_fee_bps=10, taker_fee_bps=50)
    h.place(ALICE, SELL, P(100), 100 * LOT)  # 10_000 base for 10_000 quote
    fill = only(h.place(BOB, BUY, P(100), 100 * LOT), Fill)
    assert (fill.maker_fee, fill.taker_fee) == (10, 50)  # maker in quote, taker in base
    assert h.bal(ALICE, QUOTE)[0] == 10**6 + 10_000 - 10
    assert h.bal(BOB, BASE)[0] == 10**6 + 10_000 - 50
    assert h.bal(FEES, QUOTE) == (10, 0)
    assert h.bal(FEES, BASE) == (50, 0)


def test_duplicate_seq_raises() -> None:
    from backend.matching.invariants import InvariantError

    h = funded()
    with pytest.raises(InvariantError):
        h.engine.apply(c.SweepExpired(seq=h.seq, now=h.now))
