"""Per-market risk: size limits, price band, circuit breaker, market listing checks."""

from __future__ import annotations

from typing import Any

import pytest

from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState
from backend.matching import commands as c
from backend.matching.events import (
    CommandRejected,
    Fill,
    MarketAdded,
    MarketStateChanged,
    OrderAccepted,
    OrderRejected,
    RiskEvent,
)
from backend.matching.risk import CircuitBreaker, outside_band

from .helpers import ALICE, BOB, BUY, LOT, SELL, TICK, Harness, P, of, only, spec

pytestmark = pytest.mark.unit


def funded(**overrides: Any) -> Harness:
    h = Harness(**overrides)
    h.fund(ALICE)
    h.fund(BOB)
    return h


def test_order_above_max_amount_rejected() -> None:
    h = funded(max_amount=10 * LOT)
    only(h.place(ALICE, BUY, P(1), 10 * LOT), OrderAccepted)
    refused = only(h.place(ALICE, BUY, P(1), 11 * LOT), OrderRejected)
    assert refused.code is ErrorCode.ORDER_TOO_LARGE


def test_order_above_max_notional_rejected() -> None:
    h = funded(max_notional=1_000)
    only(h.place(ALICE, BUY, P(100), 10 * LOT), OrderAccepted)  # notional 1000
    refused = only(h.place(ALICE, BUY, P(101), 10 * LOT), OrderRejected)
    assert refused.code is ErrorCode.ORDER_TOO_LARGE


def test_price_band_around_mid_then_last_trade() -> None:
    h = funded(price_band_bps=1_000)  # ±10 %
    # no reference yet: anything goes
    h.place(ALICE, BUY, P(90), LOT)
    h.place(BOB, SELL, P(110), LOT)  # mid = 100
    refused = only(h.place(ALICE, BUY, P(89), LOT), OrderRejected)
    assert refused.code is ErrorCode.PRICE_OUT_OF_BAND
    only(h.place(ALICE, BUY, P(91), LOT), OrderAccepted)
    only(h.place(BOB, SELL, P(91), LOT), Fill)  # last trade 91 now the reference
    assert h.engine.markets["BASE-QUOTE"].last_price == P(91)
    refused = only(h.place(ALICE, BUY, P(81), LOT), OrderRejected)
    assert refused.code is ErrorCode.PRICE_OUT_OF_BAND
    only(h.place(ALICE, BUY, P(82), LOT), OrderAccepted)


def test_outside_band_is_exact() -> None:
    assert not outside_band(110, 100, 1_000)
    assert outside_band(111, 100, 1_000)
    assert not outside_band(90, 100, 1_000)
    assert outside_band(89, 100, 1_000)


def test_circuit_breaker_moves_market_to_cancel_only() -> None:
    h = funded(breaker_move_bps=500, breaker_window_s=60)  # 5 % in 60 s
    h.place(ALICE, SELL, P(100), LOT)
    h.place(BOB, BUY, P(100), LOT)
    h.now += 30
    h.place(ALICE, SELL, P(104), LOT)
    assert of(h.place(BOB, BUY, P(104), LOT), RiskEvent) == []
    h.now += 20
    h.place(ALICE, SELL, P(106), LOT)
    events = h.place(BOB, BUY, P(106), LOT)
    changed = only(events, MarketStateChanged)
    assert (changed.old, changed.new) == (MarketState.ONLINE, MarketState.CANCEL_ONLY)
    risk = only(events, RiskEvent)
    assert (risk.kind, risk.reference_price, risk.price) == ("circuit_breaker", P(100), P(106))
    refused = only(h.place(BOB, BUY, P(106), LOT), OrderRejected)
    assert refused.code is ErrorCode.MARKET_NOT_ACCEPTING


def test_circuit_breaker_forgets_trades_outside_window() -> None:
    h = funded(breaker_move_bps=500, breaker_window_s=60)
    h.place(ALICE, SELL, P(100), LOT)
    h.place(BOB, BUY, P(100), LOT)
    h.now += 60
    h.place(ALICE, SELL, P(106), LOT)
    assert of(h.place(BOB, BUY, P(106), LOT), RiskEvent) == []


def test_breaker_window_min_max() -> None:
    b = CircuitBreaker(move_bps=1_000, window_s=10)
    assert b.record(0, 100) is None
    assert b.record(5, 95) is None
    assert b.record(9, 104) is None  # 95 → 104 is 9.47 %
    assert b.record(16, 106) is None  # 95 left the window (t=5 ≤ 16-10)
    assert b.record(18, 93) == (93, 106)


def test_market_spec_must_make_quote_exact() -> None:
    h = Harness(add_market=False)
    events = h.do(c.AddMarket, spec=spec(tick_size=TICK, lot_size=LOT - 1))
    assert only(events, CommandRejected).code is ErrorCode.INVALID_REQUEST
    only(h.do(c.AddMarket, spec=spec()), MarketAdded)
    again = only(h.do(c.AddMarket, spec=spec()), CommandRejected)
    assert again.code is ErrorCode.INVALID_REQUEST


def test_unknown_market_state_change_rejected() -> None:
    h = Harness()
    events = h.do(c.SetMarketState, market_id="X", state=MarketState.HALTED)
    assert only(events, CommandRejected).code is ErrorCode.UNKNOWN_MARKET
