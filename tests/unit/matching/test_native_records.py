"""`NativeEngine.apply_records`: journal records applied straight from their bytes (replay of
what every consumer already holds) reach the same state as decoding and applying each command,
and a record it cannot read natively — another layout, damage, the wrong seq — stops it there
with nothing of that record applied."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.domain.types import MarketState
from backend.engine.records import encode_record
from backend.matching import NativeEngine, codec
from backend.matching import commands as c
from backend.matching.commands import Command

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
    POST_ONLY,
    QUOTE,
    SELL,
    P,
    order_hash,
    spec,
)

pytestmark = pytest.mark.unit

TRADERS = (ALICE, BOB, CAROL)


def stream(seed: int, n: int) -> list[Command]:
    """Setup (generic layout), then places and cancels (packed), with now and then a command of
    another layout in between (a credit, a cancel-all, a sweep)."""
    rng = random.Random(seed)
    out: list[Command] = [c.AddMarket(1, 0, spec())]
    for t in TRADERS:
        out.append(c.Credit(len(out) + 1, 0, t, BASE, 10**9 * LOT))
        out.append(c.Credit(len(out) + 1, 0, t, QUOTE, 10**30))
    placed: list[tuple[bytes, str]] = []
    for i in range(n):
        seq, now = len(out) + 1, 1_000 + i // 10
        roll = rng.random()
        if roll < 0.05:
            out.append(c.Credit(seq, now, rng.choice(TRADERS), QUOTE, 10**20))
        elif roll < 0.07:
            out.append(c.SweepExpired(seq, now))
        elif roll < 0.08:
            out.append(c.CancelAll(seq, now, rng.choice(TRADERS), None, rng.randrange(i + 1)))
        elif roll < 0.35 and placed:
            h, t = rng.choice(placed)
            out.append(c.CancelOrder(seq, now, h, t))
        else:
            t = rng.choice(TRADERS)
            h = order_hash(t, i)
            side = BUY if rng.random() < 0.5 else SELL
            tif = rng.choice((GTC, GTC, GTC, IOC, FOK, POST_ONLY))
            expiry = 0 if rng.random() < 0.8 else now + rng.randrange(0, 5)
            coid = None if rng.random() < 0.8 else f"c{i}"
            price = P(rng.randrange(95, 106))
            out.append(
                c.PlaceOrder(seq, now, h, t, "BASE-QUOTE", side, price, LOT * rng.randrange(1, 9),
                             tif, i + 1, expiry, coid)
            )  # fmt: skip
            placed.append((h, t))
    return out


def replay(engine: NativeEngine, payloads: list[bytes], commands: list[Command]) -> int:
    """Apply every record, natively where it can; returns how many the core took."""
    i, native = 0, 0
    while i < len(payloads):
        j, _now = engine.apply_records(payloads, i, commands[i].seq)
        native += j - i
        if j < len(payloads):
            engine.apply(commands[j])
            j += 1
        i = j
    return native


@pytest.mark.parametrize("seed", range(4))
def test_same_state_as_applying_commands(seed: int) -> None:
    commands = stream(seed, 1_500)
    payloads = [encode_record(cmd) for cmd in commands]
    by_apply = NativeEngine()
    for cmd in commands:
        by_apply.apply(cmd)
    by_records = NativeEngine()
    native = replay(by_records, payloads, commands)
    assert native > len(commands) // 2  # the packed records went through the core
    by_records.validate_invariants()
    assert by_records.last_seq == by_apply.last_seq
    assert by_records.state_hash() == by_apply.state_hash()
    assert by_records.to_snapshot() == by_apply.to_snapshot()


def test_largest_now_is_reported() -> None:
    commands = stream(1, 50)
    payloads = [encode_record(cmd) for cmd in commands]
    engine = NativeEngine()
    for cmd in commands[:7]:  # the setup: generic layout
        engine.apply(cmd)
    end, now = engine.apply_records(payloads, 7, commands[7].seq)
    assert end > 7
    assert now == max(cmd.now for cmd in commands[7:end])


def test_stops_at_a_wrong_seq_and_applies_nothing_of_it() -> None:
    commands = stream(2, 20)
    payloads = [encode_record(cmd) for cmd in commands]
    engine = NativeEngine()
    for cmd in commands[:7]:
        engine.apply(cmd)
    before = engine.state_hash()
    assert engine.apply_records(payloads, 7, commands[7].seq + 1) == (7, 0)
    assert engine.state_hash() == before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=8), st.data())
def test_garbage_is_refused_never_a_crash(garbage: list[bytes], data: st.DataObject) -> None:
    """Random bytes, and valid records truncated or bit-flipped: the core either applies a
    record that is still well formed or stops there; it never raises or panics."""
    commands = stream(3, 30)
    payloads = [encode_record(cmd) for cmd in commands]
    engine = NativeEngine()
    for cmd in commands[:7]:
        engine.apply(cmd)
    damaged = list(payloads[7:])
    k = data.draw(st.integers(0, len(damaged) - 1))
    record = bytearray(damaged[k])
    if data.draw(st.booleans()):
        del record[data.draw(st.integers(0, len(record) - 1)) :]
    else:
        pos = data.draw(st.integers(0, len(record) - 1))
        record[pos] ^= 1 << data.draw(st.integers(0, 7))
    damaged[k] = bytes(record)
    end, _ = engine.apply_records(damaged, 0, commands[7].seq)
    assert 0 <= end <= len(damaged)
    engine.validate_invariants()
    end, _ = engine.apply_records(garbage, 0, engine.last_seq + 1)
    assert 0 <= end <= len(garbage)
    engine.validate_invariants()


def more_commands(seq: int) -> list[Command]:
    """Commands of the rarer events: withdrawals, freezes, market states, refusals."""
    out: list[Command] = []
    for cmd in (
        c.ReserveWithdrawal(0, 9, ALICE, QUOTE, 10**18, "w1"),
        c.ReserveWithdrawal(0, 9, ALICE, QUOTE, 10**18, "w1"),
        c.ReleaseWithdrawal(0, 9, "w1"),
        c.ReleaseWithdrawal(0, 9, "w-none"),
        c.Debit(0, 9, BOB, QUOTE, 10**40),
        c.Credit(0, 9, BOB, QUOTE, 0),
        c.SetMarketState(0, 9, "BASE-QUOTE", MarketState.POST_ONLY),
        c.SetMarketState(0, 9, "NOPE", MarketState.HALTED),
        c.AddMarket(0, 9, spec()),
        c.CancelAll(0, 9, BOB, "NOPE", 5),
        c.CancelAll(0, 9, BOB, None, 2**70),
        c.CancelOrder(0, 9, b"\x01" * 32, BOB),
        c.PlaceOrder(0, 9, b"\x02" * 32, BOB, "NOPE", BUY, P(1), LOT, GTC, 10**6, 0),
        c.PlaceOrder(0, 9, b"\x03" * 31, BOB, "BASE-QUOTE", SELL, 2**255, LOT, GTC, 10**6 + 1, 0),
        c.FreezeTrader(0, 9, CAROL),
        c.SetMarketState(0, 9, "BASE-QUOTE", MarketState.ONLINE),
    ):
        seq += 1
        out.append(dataclasses.replace(cmd, seq=seq))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_encoded_events_are_the_encoders_bytes(seed: int) -> None:
    """`apply_answer` writes the command's seq (u64, little-endian) and exactly what
    `encode_events` writes for the same events: the engine port's SUBMITTED body."""
    commands = stream(seed, 800)
    commands += more_commands(commands[-1].seq)
    engine, reference = NativeEngine(), NativeEngine()
    for cmd in commands:
        events, answer = engine.apply_answer(cmd)
        expected = bytearray(struct.pack("<Q", cmd.seq))
        codec.encode_events_python(events, expected)
        assert answer == expected, cmd
        assert [type(e) for e in events] == [type(e) for e in reference.apply(cmd)]
    assert engine.state_hash() == reference.state_hash()
