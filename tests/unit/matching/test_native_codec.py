"""The native event encoder writes exactly what the reference encoder writes."""

from __future__ import annotations

import random

from backend.domain.errors import ErrorCode
from backend.domain.types import UINT256_MAX, MarketState, Side, TimeInForce
from backend.matching import codec
from backend.matching import commands as c
from backend.matching import events as ev
from backend.matching.events import CancelReason, Event
from tests.unit.matching.helpers import BASE, spec
from tests.unit.matching.test_native import MARKETS, Pair, _random_command


def _same(events: list[Event]) -> None:
    native, python = bytearray(b"x"), bytearray(b"x")
    assert codec._native.encode_events(events, native)
    codec.encode_events_python(events, python)
    assert native == python
    assert codec.decode_events(bytes(native[1:])) == events


def test_every_event_of_random_streams_encodes_alike() -> None:
    r = random.Random(5)
    p = Pair()
    for market in MARKETS[:2]:
        p.do(c.AddMarket, spec(market, base_token="0x" + "dd" * 20 if market == "M2" else BASE))
    hashes: list[bytes] = []
    for _ in range(400):
        _random_command(r, p, hashes)
    assert len({type(e) for events in p.log for e in events}) >= 12
    for events in p.log:
        _same(events)


def test_edge_values_encode_alike() -> None:
    h = bytes(range(32))
    long_hash = b"\x01" * 300
    events: list[Event] = [
        ev.OrderAccepted(
            1, h, "t", "M", Side.SELL, UINT256_MAX, 2**64, TimeInForce.FOK, 0, 0, "coid-é"
        ),
        ev.OrderRejected(2, long_hash, "t" * 300, "M", ErrorCode.INVALID_ORDER, "no\n"),
        ev.OrderCancelled(3, h, "t", "M", CancelReason.FILL_REVERTED, 0),
        ev.CancelAllApplied(4, "t", None, 2**64, 0),
        ev.MarketStateChanged(5, "M", MarketState.ONLINE, MarketState.HALTED, "operator"),
        ev.FillReverted(6, 1, 0, "M", h, "a", h, "b", 5, None, 2**200),
        ev.RiskEvent(7, "M", "circuit_breaker", "moved", 1, UINT256_MAX),
        ev.CommandRejected(8, "Credit", ErrorCode.INSUFFICIENT_BALANCE, ""),
    ]
    _same(events)


def test_what_the_native_encoder_does_not_take_goes_through_the_reference_one() -> None:
    events: list[Event] = [ev.BalanceChanged(1, "t", "x", -1, 0)]
    out = bytearray()
    assert not codec._native.encode_events(events, out)
    assert out == b""
    codec.encode_events(events, out)
    reference = bytearray()
    codec.encode_events_python(events, reference)
    assert out == reference


def test_journal_records_of_random_streams_encode_alike() -> None:
    r = random.Random(9)
    p = Pair()
    p.do(c.AddMarket, spec("M1"))
    seen = 0
    for i in range(600):
        h = r.randbytes(r.choice([32, 32, 32, 3, 254, 255]))
        trader = r.choice(["0x" + "a1" * 20, "t" * r.choice([1, 254, 255])])
        coid = r.choice([None, None, "c", "é" * 127, "x" * 255])
        big = r.choice([1, 2**64 - 1, 2**64, 10**30])
        place = c.PlaceOrder(
            i, big if i % 7 == 0 else 5, h, trader, r.choice(["M1", "m" * 255]),
            r.choice([Side.BUY, Side.SELL]), r.choice([10**16, big]), r.choice([100, big]),
            r.choice(list(TimeInForce)), r.choice([0, big]), 0, coid,
        )  # fmt: skip
        cancel = c.CancelOrder(r.choice([i, 2**64]), 7, h, trader)
        for command in (place, cancel):
            packed = codec._native.encode_command(command)
            reference = codec.encode_command_python(command)
            if packed is not None:
                seen += 1
                assert packed == reference
            assert codec.decode_command(codec.encode_command(command)) == command
    assert seen > 300
    assert codec._native.encode_command(c.SweepExpired(1, 2)) is None
