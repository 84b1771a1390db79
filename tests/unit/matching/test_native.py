"""The native engine against the reference model: selection, seeded random streams, the
uint256 edges, snapshots in both directions, and a failure inside the core."""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.domain.errors import ErrorCode
from backend.domain.types import UINT64_MAX, UINT256_MAX, MarketState, Side, TimeInForce
from backend.matching import NativeEngine, PythonEngine, engine_class
from backend.matching import commands as c
from backend.matching.events import BalanceChanged, CommandRejected, Event, Fill, OrderRejected
from backend.matching.invariants import InvariantError
from tests.unit.matching.helpers import BASE, LOT, QUOTE, TICK, spec

TRADERS = ["0x" + x * 20 for x in ("a1", "b0", "ca", "d0")]
TOKENS = [BASE, QUOTE, "0x" + "dd" * 20]
MARKETS = ["M1", "M2", "M3"]


def test_native_is_the_default_and_python_is_selectable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRIDEX_ENGINE", raising=False)
    assert engine_class() is NativeEngine
    monkeypatch.setenv("HYBRIDEX_ENGINE", "python")
    assert engine_class() is PythonEngine
    assert engine_class("native") is NativeEngine
    with pytest.raises(ValueError, match="HYBRIDEX_ENGINE"):
        engine_class("java")


class Pair:
    """Both engines fed the same commands; every step must give equal events and hashes."""

    def __init__(self) -> None:
        self.py = PythonEngine()
        self.native = NativeEngine()
        self.seq = 0
        self.now = 1_000
        self.fills: list[Fill] = []
        self.log: list[list[Event]] = []

    def do(self, cls: type[Any], *args: Any, **kw: Any) -> list[Event]:
        self.seq += 1
        command = cls(self.seq, self.now, *args, **kw)
        expected = self.py.apply(command)
        got = self.native.apply(command)
        assert got == expected, command
        assert self.native.state_hash() == self.py.state_hash(), command
        self.fills += [e for e in expected if isinstance(e, Fill)]
        self.log.append(got)
        return expected


def _random_command(r: random.Random, p: Pair, hashes: list[bytes]) -> None:
    k = r.random()
    market = r.choice(MARKETS)
    amounts = [0, -1, 1, LOT, 10**12, UINT256_MAX, UINT256_MAX + 1, 2**255]
    if k < 0.02:
        p.do(
            c.AddMarket,
            spec(
                market,
                base_token=TOKENS[2] if market == "M2" else BASE,
                maker_fee_bps=r.choice([0, 5, 100, 101]),
                taker_fee_bps=r.choice([0, 10]),
                state=r.choice([MarketState.ONLINE] * 3 + [MarketState.POST_ONLY]),
                max_amount=r.choice([0, 0, 10**5]),
                max_notional=r.choice([0, 0, 10**5]),
                price_band_bps=r.choice([0, 0, 500]),
                breaker_move_bps=r.choice([0, 0, 300]),
                breaker_window_s=r.choice([0, 60]),
            ),
        )
    elif k < 0.2:
        amount = r.choice([10**12] * 6 + [0, -5, UINT256_MAX, 10**30])
        p.do(c.Credit, r.choice(TRADERS), r.choice(TOKENS), amount)
    elif k < 0.62:
        h = r.randbytes(32)
        hashes.append(h)
        price = r.choice([TICK * r.randint(95, 105)] * 30 + [0, -TICK, TICK + 1, UINT256_MAX + 1])
        amount = r.choice([LOT * r.randint(1, 30)] * 30 + [0, LOT + 1, UINT256_MAX - 35, 2**257])
        nonce = r.choice([p.seq + 1] * 20 + [r.randint(0, 60), UINT64_MAX, UINT64_MAX + 1, -1])
        expiry = r.choice([0, 0, 0, p.now + r.randint(-5, 100)])
        p.do(
            c.PlaceOrder, h, r.choice(TRADERS), market, r.choice([Side.BUY, Side.SELL]), price,
            amount, r.choice([TimeInForce.GTC] * 4 + list(TimeInForce)), nonce, expiry,
            r.choice([None, None, None, f"c{r.randint(0, 5)}"]),
        )  # fmt: skip
    elif k < 0.76:
        p.do(c.CancelOrder, r.choice(hashes) if hashes else b"h", r.choice(TRADERS))
    elif k < 0.79:
        bar = r.choice([r.randint(0, 60), 2**64, 2**64 + 1, -1])
        p.do(c.CancelAll, r.choice(TRADERS), r.choice([None, market, "ZZ"]), bar)
    elif k < 0.83:
        p.do(c.SweepExpired)
    elif k < 0.835:
        p.do(c.FreezeTrader, TRADERS[3])
    elif k < 0.86:
        state = r.choice([MarketState.ONLINE] * 4 + list(MarketState))
        p.do(c.SetMarketState, market, state)
    elif k < 0.89:
        wid = r.choice(["w1", "w2", "w3"])
        p.do(c.ReserveWithdrawal, r.choice(TRADERS), r.choice(TOKENS), r.choice(amounts), wid)
    elif k < 0.91:
        p.do(c.ReleaseWithdrawal, r.choice(["w1", "w2", "w3"]))
    elif k < 0.94:
        wid = r.choice([None, "w1", "w2"])
        p.do(c.Debit, r.choice(TRADERS), r.choice(TOKENS), r.choice(amounts), wid)
    elif p.fills:
        f = r.choice(p.fills)
        p.do(
            c.RevertFill, f.seq, f.fill_index, f.market_id, f.maker_hash, f.maker_trader,
            f.taker_hash, f.taker_trader, f.taker_side, f.price, f.amount, f.quote_amount,
            f.maker_fee, f.taker_fee,
        )  # fmt: skip
    p.now += r.choice([0, 0, 1, 5, 30])


@pytest.mark.parametrize("seed", range(12))
def test_random_streams_give_equal_events_and_state(seed: int) -> None:
    r = random.Random(seed)
    p = Pair()
    hashes: list[bytes] = []
    for market in MARKETS[:2]:
        p.do(c.AddMarket, spec(market, base_token=TOKENS[2] if market == "M2" else BASE))
    for _ in range(300):
        _random_command(r, p, hashes)
    p.native.validate_invariants()
    p.py.validate_invariants()
    snapshot = p.native.to_snapshot()
    assert snapshot == p.py.to_snapshot()
    assert NativeEngine.from_snapshot(snapshot).state_hash() == p.py.state_hash()
    assert PythonEngine.from_snapshot(snapshot).to_snapshot() == snapshot


def test_native_events_are_left_out_of_the_cycle_collector() -> None:
    """The core builds its events untracked (their fields are atoms: no cycle can go through
    one), so the collector's passes never walk a group's events; the reference engine's are
    ordinary tracked dataclasses. Every event type of a random stream is covered."""
    r = random.Random(5)
    p = Pair()
    for market in MARKETS[:2]:
        p.do(c.AddMarket, spec(market, base_token=TOKENS[2] if market == "M2" else BASE))
    for _ in range(300):
        _random_command(r, p, [])
    native = [e for events in p.log for e in events]
    assert len({type(e) for e in native}) >= 8
    assert not any(gc.is_tracked(e) for e in native)
    reference = p.py.apply(c.FreezeTrader(p.seq + 1, p.now, TRADERS[1]))
    assert reference
    assert all(gc.is_tracked(e) for e in reference)


def _market_pair(**overrides: Any) -> Pair:
    p = Pair()
    p.do(c.AddMarket, spec("M", **overrides))
    return p


def _code(events: list[Event]) -> ErrorCode:
    assert len(events) == 1
    assert isinstance(events[0], OrderRejected | CommandRejected)
    return events[0].code


def test_amounts_beyond_uint256_are_refused_alike() -> None:
    p = _market_pair()
    alice = TRADERS[0]
    p.do(c.Credit, alice, QUOTE, UINT256_MAX)
    # The token's total would pass 2**256-1: refused, not wrapped.
    assert _code(p.do(c.Credit, TRADERS[1], QUOTE, 1)) is ErrorCode.INVALID_REQUEST
    huge = UINT256_MAX - UINT256_MAX % LOT
    top = UINT256_MAX - UINT256_MAX % TICK
    buy = (c.PlaceOrder, b"h1", alice, "M", Side.BUY)
    # price * amount / 10**18 is far above 2**256: a balance can never cover it.
    events = p.do(*buy, top, huge, TimeInForce.GTC, 1, 0)
    assert _code(events) is ErrorCode.INSUFFICIENT_BALANCE
    assert isinstance(events[0], OrderRejected)
    assert str(huge * top // 10**18) in events[0].message
    assert _code(p.do(*buy, UINT256_MAX + 1, LOT, TimeInForce.GTC, 2, 0)) is ErrorCode.INVALID_ORDER
    assert _code(p.do(*buy, TICK, 2**300, TimeInForce.GTC, 3, 0)) is ErrorCode.INVALID_ORDER
    assert _code(p.do(*buy, TICK, LOT, TimeInForce.GTC, 2**64, 0)) is ErrorCode.INVALID_ORDER
    assert _code(p.do(*buy, TICK, LOT, TimeInForce.GTC, 4, 2**64)) is ErrorCode.INVALID_ORDER
    assert _code(p.do(c.CancelAll, alice, None, 2**64 + 1)) is ErrorCode.INVALID_REQUEST
    assert _code(p.do(c.Debit, alice, QUOTE, 2**256)) is ErrorCode.INSUFFICIENT_BALANCE
    p.do(c.CancelAll, alice, None, 2**64)  # every nonce: the largest bar there is
    assert _code(p.do(*buy, TICK, LOT, TimeInForce.GTC, UINT64_MAX, 0)) is ErrorCode.ORDER_CANCELLED


def test_full_range_amounts_trade_exactly() -> None:
    """A market whose lot is 10**18 and tick 1: prices and amounts up to the uint256 edge."""
    p = _market_pair(tick_size=1, lot_size=10**18, min_amount=10**18)
    amount = 10**18 * (UINT256_MAX // 10**18 // 2)
    p.do(c.Credit, TRADERS[0], BASE, amount)
    p.do(c.Credit, TRADERS[1], QUOTE, UINT256_MAX)
    p.do(c.PlaceOrder, b"s", TRADERS[0], "M", Side.SELL, 2, amount, TimeInForce.GTC, 1, 0)
    events = p.do(c.PlaceOrder, b"b", TRADERS[1], "M", Side.BUY, 2, amount, TimeInForce.IOC, 1, 0)
    fills = [e for e in events if isinstance(e, Fill)]
    assert [f.quote_amount for f in fills] == [amount * 2 // 10**18]
    assert p.native.balance(TRADERS[1], BASE) == (amount, 0)


def test_market_settings_beyond_their_widths_are_refused_alike() -> None:
    p = Pair()
    for overrides in (
        {"max_notional": 2**256},
        {"breaker_window_s": 2**64},
        {"tick_size": -1},
        {"maker_fee_bps": 101},
        {"price_band_bps": -1},
    ):
        assert _code(p.do(c.AddMarket, spec("X", **overrides))) is ErrorCode.INVALID_REQUEST


def test_a_sequence_number_that_does_not_increase_is_refused_and_changes_nothing() -> None:
    engine = NativeEngine()
    engine.apply(c.AddMarket(5, 0, spec("M")))
    before = engine.state_hash()
    with pytest.raises(InvariantError, match="sequence number must increase"):
        engine.apply(c.AddMarket(5, 0, spec("N")))
    assert engine.state_hash() == before
    assert engine.apply(c.SweepExpired(6, 0)) == []


def test_a_panic_in_the_core_raises_and_stops_the_engine() -> None:
    engine = NativeEngine()
    engine.apply(c.AddMarket(1, 0, spec("M")))
    with pytest.raises(RuntimeError, match="panicked"):
        engine._panic_for_test()
    assert engine.poisoned is not None
    with pytest.raises(RuntimeError, match="engine stopped"):
        engine.apply(c.SweepExpired(2, 0))
    with pytest.raises(RuntimeError, match="engine stopped"):
        engine.state_hash()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"version":2}',
        b"[]",
        b'{"version":1,"last_seq":0,"fee_recipient":"x","markets":[[1]],"balances":[],'
        b'"nonces":[],"cancel_bars":[],"frozen":[],"withdrawals":[]}',
    ],
)
def test_a_damaged_snapshot_is_refused_with_an_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        NativeEngine.from_snapshot(body)


def test_a_snapshot_whose_books_break_the_invariants_is_refused() -> None:
    p = _market_pair()
    p.do(c.Credit, TRADERS[0], BASE, 10**6)
    p.do(c.PlaceOrder, b"s", TRADERS[0], "M", Side.SELL, TICK, LOT, TimeInForce.GTC, 1, 0)
    body = p.py.to_snapshot()
    broken = body.replace(f",{10**6},{LOT}]".encode(), f",{10**6},0]".encode())
    assert broken != body
    with pytest.raises(ValueError, match="locked"):
        NativeEngine.from_snapshot(broken)


# Ints of every digit count the boundary reads and builds (CPython stores 30-bit digits): each
# power of two of a digit edge, one either side, and values around 2**256 and below zero.
_EDGES = [2**k + d for k in range(0, 301, 30) for d in (-1, 0, 1)] + [UINT256_MAX, 2**256]
_INTS = st.one_of(
    st.sampled_from(_EDGES),
    st.integers(min_value=0, max_value=UINT256_MAX),
    st.integers(min_value=-(2**300), max_value=2**300),
)


@settings(max_examples=300, deadline=None)
@given(amounts=st.lists(_INTS, min_size=1, max_size=6), price=_INTS, nonce=_INTS)
def test_ints_of_every_width_cross_the_boundary_exactly(
    amounts: list[int], price: int, nonce: int
) -> None:
    """Credits and debits of any int, and an order's price and nonce: the native engine reads
    each exactly (or refuses it as the reference does) and its balance events carry the
    reference's values, as exact ints."""
    p = _market_pair()
    trader = TRADERS[0]
    p.do(c.Credit, trader, QUOTE, 2**100 + 7)
    for amount in amounts:
        p.do(c.Credit, trader, QUOTE, amount)
        p.do(c.Debit, trader, QUOTE, amount // 3)
    p.do(c.PlaceOrder, b"h", trader, "M", Side.BUY, price, LOT, TimeInForce.GTC, nonce, 0)
    changes = [e for events in p.log for e in events if isinstance(e, BalanceChanged)]
    assert changes
    assert all(type(e.total) is int and type(e.locked) is int for e in changes)
    total, locked = p.native.balance(trader, QUOTE)
    assert (total, locked) == p.py.balance(trader, QUOTE)
    assert type(total) is int
    assert type(locked) is int


def test_symbols_stay_right_after_a_snapshot_renumbers_them() -> None:
    """The native engine remembers the symbol of each trader str object it has seen; loading a
    snapshot numbers the symbols afresh, so the same objects must then be looked up again."""
    p = _market_pair()
    for trader in reversed(TRADERS):  # numbered in the order met: not the snapshot's order
        p.do(c.Credit, trader, QUOTE, 10**24)
    other = _market_pair()
    for trader in TRADERS:
        other.do(c.Credit, trader, QUOTE, 10**20)
    p.native.load_snapshot(other.native.to_snapshot())
    p.py = PythonEngine.from_snapshot(other.py.to_snapshot())
    p.seq = other.seq
    for trader in TRADERS:  # the str objects p's engine saw before the load
        p.do(c.Credit, trader, QUOTE, 1)
        assert p.native.balance(trader, QUOTE) == (10**20 + 1, 0)
