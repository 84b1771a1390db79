"""The native event decoder (`codec.decode_events`) gives the reference decoder's events, and
refuses with ValueError exactly the input the reference refuses."""

from __future__ import annotations

import gc
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backend import _native
from backend.domain.errors import ErrorCode
from backend.domain.types import UINT256_MAX, MarketState, Side, TimeInForce
from backend.matching import codec
from backend.matching import events as ev
from backend.matching.events import EVENT_TYPES, CancelReason, Event

pytestmark = pytest.mark.unit

# Near 0 and near 2**256-1, the u64 boundary (16 hex digits or more), negative values (the
# reference encoder writes them as '-' and hex) and integers beyond 256 bits.
ints = st.one_of(
    st.integers(0, 2**16),
    st.integers(UINT256_MAX - 2**16, UINT256_MAX),
    st.sampled_from([2**64 - 1, 2**64, 2**128, -1, -(2**64), UINT256_MAX + 1]),
    st.integers(-(2**300), 2**300),
)
texts = st.text(max_size=40) | st.text(min_size=255, max_size=300)  # 1-byte and u32 lengths
raw = st.binary(max_size=40) | st.binary(min_size=255, max_size=260)

_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": ints,
    "str": texts,
    "bytes": raw,
    "str | None": st.none() | texts,
    "Side": st.sampled_from(Side),
    "TimeInForce": st.sampled_from(TimeInForce),
    "MarketState": st.sampled_from(MarketState),
    "CancelReason": st.sampled_from(CancelReason),
    "ErrorCode": st.sampled_from(ErrorCode),  # codes the core never gives included
    "int | None": st.none() | ints,
}

events = st.one_of(
    [
        st.builds(cls, **{f.name: _FIELD_VALUES[str(f.type)] for f in fields(cls)})
        for cls in EVENT_TYPES
    ]
)


def _encoded(batch: list[Event]) -> bytes:
    out = bytearray()
    codec.encode_events_python(batch, out)
    return bytes(out)


def _field_types(batch: list[Any]) -> list[list[type]]:
    return [[type(e), *(type(getattr(e, f.name)) for f in fields(e))] for e in batch]


def _reference(data: bytes) -> list[Event] | Exception:
    try:
        return codec.decode_events_python(data)
    except Exception as exc:  # the reference lets some damage through as IndexError & co
        return exc


def _native_decoded(data: bytes) -> list[Event] | ValueError:
    try:
        got = _native.decode_events(data)
    except ValueError as exc:
        return exc
    assert got is not None
    return got


_EXTREMES: dict[str, tuple[Any, Any]] = {
    "int": (0, UINT256_MAX),
    "str": ("", "é" * 200),
    "bytes": (b"", b"\xff" * 255),
    "str | None": (None, "x" * 255),
    "Side": (Side.BUY, Side.SELL),
    "TimeInForce": (TimeInForce.GTC, TimeInForce.POST_ONLY),
    "MarketState": (MarketState.ONLINE, MarketState.HALTED),
    "CancelReason": (CancelReason.USER, CancelReason.DISCONNECT),
    "ErrorCode": (ErrorCode.INVALID_REQUEST, ErrorCode.CHAIN_MISMATCH),
    "int | None": (None, UINT256_MAX),
}


def test_every_event_type_at_its_extremes() -> None:
    batch: list[Event] = [
        cls(*(_EXTREMES[str(f.type)][end] for f in fields(cls)))
        for cls in EVENT_TYPES
        for end in (0, 1)
    ]
    data = _encoded(batch)
    native = _native.decode_events(data)
    assert native == batch == codec.decode_events_python(data)
    assert {type(e) for e in native} == set(EVENT_TYPES)
    assert _field_types(native) == _field_types(batch)


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=6))
def test_native_decoder_equals_the_reference(batch: list[Event]) -> None:
    data = _encoded(batch)
    native = _native.decode_events(data)
    assert native is not None
    assert native == batch == codec.decode_events_python(data)
    assert _field_types(native) == _field_types(batch)  # enum members, not their values
    assert not any(gc.is_tracked(e) for e in native)  # as the core's own events
    assert codec.decode_events(data) == batch


@settings(max_examples=600, deadline=None)
@given(st.lists(events, min_size=1, max_size=4), st.data())
def test_damaged_batch_decodes_as_the_reference_or_is_refused(
    batch: list[Event], data: st.DataObject
) -> None:
    damaged = bytearray(_encoded(batch))
    how = data.draw(st.sampled_from(("flip", "cut", "extend", "splice")))
    i = data.draw(st.integers(0, len(damaged) - 1))
    if how == "flip":
        damaged[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del damaged[i:]
    elif how == "extend":
        damaged += data.draw(st.binary(min_size=1, max_size=8))
    else:
        damaged[i:i] = data.draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b",", b"-"]))
    _same_outcome(bytes(damaged))


def _same_outcome(data: bytes) -> None:
    reference = _reference(data)
    native = _native_decoded(data)
    if isinstance(reference, Exception):
        assert isinstance(native, ValueError), (reference, native)
    else:
        assert not isinstance(native, ValueError), (native, reference)
        assert native == reference
        assert _field_types(native) == _field_types(reference)


def _frame(body: bytes) -> bytes:
    return bytes((len(body),)) + body


_TAG = {cls: i for i, cls in enumerate(EVENT_TYPES)}
_FROZEN = bytes((_TAG[ev.TraderFrozen],)) + b"\x01t"  # then the integer block: seq
_CODE = bytes((_TAG[ev.CommandRejected],)) + b"\x01c"  # then the code, a message, seq
_REVERTED = bytes((_TAG[ev.FillReverted],)) + b"\x01m\x00\x01a\x00\x01b"  # then remainings


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",  # an empty event
        b"\x01\x00",  # OrderAccepted, no fields
        b"\x01\x11",  # no such tag
        b"\x05",  # a record longer than the buffer
        b"\xff\x01\x00",  # a u32 length cut short
        b"\xff\x04\x00\x00\x00" + _FROZEN + b"1",  # a u32 length below 255 (accepted)
        _frame(_FROZEN + b"ff"),
        _frame(_FROZEN + b"FF"),  # upper case, as int() reads it
        _frame(_FROZEN + b"-0"),
        _frame(_FROZEN + b"-1f"),
        _frame(_FROZEN + b"0000000000000000000000000000000000000000000000000000000000000000001"),
        _frame(_FROZEN + b"1" + b"0" * 64),  # 257 bits
        _frame(_FROZEN + b"1" + b"0" * 200),
        _frame(_FROZEN + b"+5"),
        _frame(_FROZEN + b"1_0"),
        _frame(_FROZEN + b" 5 "),
        _frame(_FROZEN + b"0x5"),
        _frame(_FROZEN + b"-"),
        _frame(_FROZEN + b"--5"),
        _frame(_FROZEN + b"g"),
        _frame(_FROZEN + b"\xff"),
        _frame(_FROZEN),  # no integers
        _frame(_FROZEN + b"1,"),
        _frame(_FROZEN + b"1,2"),
        _frame(_FROZEN + b","),
        _frame(bytes((_TAG[ev.TraderFrozen],)) + b"\x02\xc3\x28" + b"1"),  # not UTF-8
        _frame(bytes((_TAG[ev.TraderFrozen],)) + b"\x03\xed\xa0\x80" + b"1"),  # a surrogate
        _frame(bytes((_TAG[ev.TraderFrozen],)) + b"\x02\xc3\xa9" + b"1"),
        _frame(_CODE + (1001).to_bytes(2, "little") + b"\x01m" + b"1"),
        _frame(_CODE + ErrorCode.RATE_LIMITED.value.to_bytes(2, "little") + b"\x00" + b"1"),
        _frame(_CODE + (7).to_bytes(2, "little") + b"\x00" + b"1"),  # no such code
        _frame(_CODE + b"\x01"),
        _frame(bytes((_TAG[ev.OrderCancelled],)) + b"\x00\x01t\x01m\x09" + b"1,2"),  # no reason 9
        _frame(bytes((_TAG[ev.OrderCancelled],)) + b"\x00\x01t\x01m\x08" + b"1,2"),
        _frame(bytes((_TAG[ev.CancelAllApplied],)) + b"\x01t\x07\x01m" + b"1,2,3"),  # any nonzero
        _frame(_REVERTED + b"\x02\x015\x00" + b"1,2,3,4"),
        _frame(_REVERTED + b"\x00\x01\x00" + b"1,2,3,4"),
        _frame(_REVERTED + b"\x00\x01\x02-a" + b"1,2,3,4"),
    ],
)
def test_hand_made_input_decodes_as_the_reference_or_is_refused(data: bytes) -> None:
    _same_outcome(data)


@given(st.binary(max_size=64))
@example(b"\x01\x00")
def test_random_bytes_decode_as_the_reference_or_are_refused(data: bytes) -> None:
    _same_outcome(data)


def test_typical_answer_shares_trader_and_market_texts() -> None:
    trader, market = "0x" + "ab" * 20, "WETH-USDC"
    batch: list[Event] = [
        ev.OrderAccepted(9, b"\x11" * 32, trader, market, Side.BUY, 10**18, 5, TimeInForce.GTC,
                         1, 0, None),
        ev.BalanceChanged(9, trader, "0x" + "cd" * 20, UINT256_MAX, 0),
    ]  # fmt: skip
    first, second = codec.decode_events(_encoded(batch)), codec.decode_events(_encoded(batch))
    assert first == second == batch
    assert isinstance(first[0], ev.OrderAccepted)
    assert isinstance(second[1], ev.BalanceChanged)
    assert first[0].trader is second[1].trader
    assert first[0].market_id is second[0].market_id


def test_anything_but_bytes_is_left_to_the_reference() -> None:
    batch: list[Event] = [ev.MarketAdded(1, "M")]
    data = _encoded(batch)
    assert _native.decode_events(bytearray(data)) is None  # type: ignore[arg-type]
    assert codec.decode_events(bytearray(data)) == batch  # type: ignore[arg-type]
