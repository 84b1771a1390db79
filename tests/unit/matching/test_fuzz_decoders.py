"""Decoders fed damaged input: truncated, bit-flipped, spliced or random bytes must be refused
with `ValueError` (or decode to a well-formed value), never raise anything else.

Covers the command codec (journal records and the engine port's SUBMIT body, which is a journal
record payload), the event codec (outbox, SUBMITTED answers) and engine snapshots, for every
engine kind the differential test runs. `HYBRIDEX_TEST_SOAK=1` (`make soak`) runs far more inputs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.engine.records import decode_record, encode_record
from backend.matching import codec
from backend.matching import commands as c
from backend.matching.commands import COMMAND_TYPES, Command
from backend.matching.events import EVENT_TYPES
from backend.matching.invariants import InvariantError

from .engines import pair
from .helpers import ALICE, BOB, BUY, CAROL, LOT, QUOTE, SELL, Harness, P, spec

SOAK = os.environ.get("HYBRIDEX_TEST_SOAK") == "1"

pytestmark = [pytest.mark.unit, *([pytest.mark.timeout(0)] if SOAK else [])]
FUZZ = settings(
    max_examples=20_000 if SOAK else 400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The Python decoders still let some damage through as IndexError, struct.error, KeyError,
# AttributeError or TypeError instead of ValueError: these tests are expected to fail that way
# until they are fixed (strict: a fixed decoder makes the mark fail, so it is then removed). The
# `example`s are the smallest such inputs, so the outcome does not depend on the search.
PYTHON_DECODER_GAP = pytest.mark.xfail(
    raises=(IndexError, struct.error, KeyError, AttributeError, TypeError),
    strict=True,
    reason="Python decoder raises a bare IndexError/struct.error/KeyError on damaged input",
)

commands = st.one_of(*(st.builds(t) for t in COMMAND_TYPES))
events = st.one_of(*(st.builds(t) for t in EVENT_TYPES))


@st.composite
def damaged(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding, then one kind of damage."""
    data = bytearray(draw(valid))
    how = draw(st.sampled_from(("truncate", "flip", "splice", "extend", "random")))
    if how == "truncate":
        del data[draw(st.integers(0, max(0, len(data) - 1))) :]
    elif how == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "splice":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=16))
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=8))
    else:
        return draw(st.binary(max_size=300))
    return bytes(data)


def _refused_or_valid(decode: Any, data: bytes, types: tuple[type, ...]) -> None:
    try:
        value = decode(data)
    except ValueError:
        return
    values = value if isinstance(value, list) else [value]
    assert all(isinstance(v, types) for v in values), values


@given(commands)
def test_every_command_round_trips(command: Command) -> None:
    assert codec.decode_command(codec.encode_command(command)) == command
    assert codec.decode_command(codec.encode_command_generic(command)) == command


@PYTHON_DECODER_GAP
@FUZZ
@given(damaged(commands.map(codec.encode_command)))
@example(b"")
def test_damaged_command_is_refused(data: bytes) -> None:
    _refused_or_valid(codec.decode_command, data, COMMAND_TYPES)


@PYTHON_DECODER_GAP
@FUZZ
@given(damaged(commands.map(encode_record)))
@example(b"")
def test_damaged_journal_record_is_refused(data: bytes) -> None:
    """The journal's payload, and the engine port's SUBMIT body."""
    _refused_or_valid(lambda d: decode_record(d)[0], data, COMMAND_TYPES)


@PYTHON_DECODER_GAP
@FUZZ
@given(damaged(events.map(codec.encode_event)))
@example(b"")
def test_damaged_event_is_refused(data: bytes) -> None:
    _refused_or_valid(codec.decode_event, data, EVENT_TYPES)


def _batch(es: list[Any]) -> bytes:
    out = bytearray()
    codec.encode_events(es, out)
    return bytes(out)


@FUZZ
@given(damaged(st.lists(events, max_size=4).map(_batch)))
@example(b"\x01\x00")
def test_damaged_event_batch_is_refused(data: bytes) -> None:
    """`decode_events` is the native decoder: it refuses every kind of damage with ValueError."""
    _refused_or_valid(codec.decode_events, data, EVENT_TYPES)
    with contextlib.suppress(ValueError):
        # Built natively (the reference's objects are tracked by the cycle collector).
        assert not any(gc.is_tracked(e) for e in codec.decode_events(data))


@PYTHON_DECODER_GAP
@FUZZ
@given(damaged(st.lists(events, max_size=4).map(_batch)))
@example(b"\x01\x00")
def test_damaged_event_batch_is_refused_by_the_reference(data: bytes) -> None:
    _refused_or_valid(codec.decode_events_python, data, EVENT_TYPES)


def _snapshot() -> bytes:
    """A snapshot holding a bit of everything: markets, resting orders with expiry and client
    ids, balances, nonces, a cancel-all bar, a frozen trader, a withdrawal, breaker memory."""
    h = Harness(maker_fee_bps=10, taker_fee_bps=30, breaker_move_bps=500, breaker_window_s=60)
    h.do(c.AddMarket, spec=spec("OTHER", price_band_bps=300))
    for trader in (ALICE, BOB, CAROL):
        h.fund(trader)
    h.place(ALICE, SELL, P(101), 5 * LOT, expiry=h.now + 50, coid="a-1")
    h.place(ALICE, SELL, P(102), 3 * LOT)
    h.place(BOB, BUY, P(101), 2 * LOT)  # a fill: last price and breaker memory
    h.place(BOB, BUY, P(99), 4 * LOT, market="OTHER")
    h.do(c.CancelAll, trader=CAROL, market_id=None, nonce_below=7)
    h.do(c.ReserveWithdrawal, trader=BOB, token=QUOTE, amount=1_000, withdrawal_id="w-1")
    h.do(c.FreezeTrader, trader=CAROL)
    return h.engine.to_snapshot()


SNAPSHOT = _snapshot()


KINDS = {kind.name: kind for kind in pair()}  # one of each kind the differential test runs


def _kinds(*, python_gap: bool) -> list[Any]:
    return [
        pytest.param(k, id=k.name, marks=PYTHON_DECODER_GAP if python_gap else ())
        if k.name == "reference"
        else pytest.param(k, id=k.name)
        for k in KINDS.values()
    ]


@pytest.mark.parametrize("kind", _kinds(python_gap=False))
def test_snapshot_loads_in_every_engine(kind: Any) -> None:
    engine = kind.from_snapshot(SNAPSHOT)
    engine.validate_invariants()
    assert engine.to_snapshot() == SNAPSHOT


@pytest.mark.parametrize("kind", _kinds(python_gap=True))
@settings(FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=damaged(st.just(SNAPSHOT)))
@example(data=b'{"wersion":1}')
def test_damaged_snapshot_is_refused(kind: Any, data: bytes, capfd: Any) -> None:
    """Refused (ValueError), or loaded into a state whose invariants hold or are reported
    broken (InvariantError) -- never any other exception, never a crash. The native loader
    turns a Rust panic into a ValueError too, so the panic hook's report on stderr is what
    tells a panic from a refusal."""
    try:
        engine = kind.from_snapshot(data)
    except ValueError:
        assert "panicked" not in capfd.readouterr().err
        return
    with contextlib.suppress(InvariantError):
        engine.validate_invariants()
