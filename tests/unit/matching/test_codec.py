"""Journal and outbox encodings round-trip every command and event exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend import _native
from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching import commands as c
from backend.matching.codec import (
    decode_command,
    decode_event,
    decode_events,
    decode_packed_python,
    encode_command,
    encode_command_generic,
    encode_event,
    encode_event_generic,
    encode_events,
)
from backend.matching.events import EVENT_TYPES, BalanceChanged, CancelReason, Fill

pytestmark = pytest.mark.unit

u64 = st.integers(0, 2**64 - 1)
u256 = st.integers(0, 2**256 - 1)
anyint = st.integers(-(2**256), 2**256)
text = st.text(max_size=80)
addr = st.text(alphabet="0123456789abcdefABCDEFx", min_size=1, max_size=42)
opt_text = st.none() | text

specs = st.builds(
    c.MarketSpec,
    market_id=text,
    base_token=addr,
    quote_token=addr,
    tick_size=u256,
    lot_size=u256,
    min_amount=u256,
    maker_fee_bps=u64,
    taker_fee_bps=u64,
    state=st.sampled_from(MarketState),
    max_amount=u256,
    max_notional=u256,
    price_band_bps=u64,
    breaker_move_bps=u64,
    breaker_window_s=u64,
)

_ARGS: dict[type[Any], dict[str, Any]] = {
    c.PlaceOrder: {
        "order_hash": st.binary(min_size=32, max_size=32),
        "trader": addr,
        "market_id": text,
        "side": st.sampled_from(Side),
        "price": u256,
        "amount": u256,
        "time_in_force": st.sampled_from(TimeInForce),
        "nonce": u64,
        "expiry": u64,
        "client_order_id": opt_text,
    },
    c.CancelOrder: {"order_hash": st.binary(max_size=300), "trader": addr},
    c.CancelAll: {"trader": addr, "market_id": opt_text, "nonce_below": u64},
    c.Credit: {"trader": addr, "token": addr, "amount": anyint},
    c.Debit: {"trader": addr, "token": addr, "amount": anyint, "withdrawal_id": opt_text},
    c.ReserveWithdrawal: {"trader": addr, "token": addr, "amount": u256, "withdrawal_id": text},
    c.ReleaseWithdrawal: {"withdrawal_id": text},
    c.FreezeTrader: {"trader": addr},
    c.AddMarket: {"spec": specs},
    c.SetMarketState: {"market_id": text, "state": st.sampled_from(MarketState)},
    c.SweepExpired: {},
    c.RevertFill: {
        "fill_seq": u64,
        "fill_index": u64,
        "market_id": text,
        "maker_hash": st.binary(max_size=40),
        "maker_trader": addr,
        "taker_hash": st.binary(max_size=40),
        "taker_trader": addr,
        "taker_side": st.sampled_from(Side),
        "price": u256,
        "amount": u256,
        "quote_amount": u256,
        "maker_fee": u256,
        "taker_fee": u256,
    },
    c.ScheduleCancel: {"trader": addr, "time": anyint, "nonce": u64},
    c.ArmCancelOnDisconnect: {"trader": addr, "connection_id": text, "deadline": anyint},
    c.CancelOnDisconnect: {"trader": addr, "connection_id": text},
}
commands = st.one_of([st.builds(cls, seq=u64, now=u64, **args) for cls, args in _ARGS.items()])


def test_every_command_type_has_a_strategy() -> None:
    assert set(_ARGS) == set(c.COMMAND_TYPES)


@settings(max_examples=400, deadline=None)
@given(commands)
def test_command_round_trip(command: c.Command) -> None:
    data = encode_command(command)
    assert decode_command(data) == command
    assert encode_command(decode_command(data)) == data
    generic = encode_command_generic(command)  # the packed layout's fallback reads back too
    assert decode_command(generic) == command


_place_args = {**_ARGS[c.PlaceOrder], "price": u64, "amount": u64}
hot_commands = st.builds(c.PlaceOrder, seq=u64, now=u64, **_place_args) | st.builds(
    c.CancelOrder, seq=u64, now=u64, order_hash=st.binary(max_size=80), trader=addr
)


@settings(max_examples=200, deadline=None)
@given(hot_commands)
def test_truncated_packed_command_refused(command: c.Command) -> None:
    data = encode_command(command)
    assume(data[0] & 0x80)  # the generic layout relies on the journal's framing and CRC
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match=r"truncated|left over|decode"):
            decode_command(data[:cut])
    with pytest.raises(ValueError, match="left over"):
        decode_command(data + b"\x00")


def _reference_packed(data: bytes) -> c.Command | str:
    try:
        return decode_packed_python(data, 0, len(data))
    except ValueError as exc:
        return f"refused: {exc}"


@settings(max_examples=400, deadline=None)
@given(hot_commands, st.data())
def test_native_packed_decoder_equals_the_reference(
    command: c.Command, data: st.DataObject
) -> None:
    """The engine port's decoder (native) gives the reference readers' command, field for
    field and type for type; on damaged bytes it declines (None) wherever the reference
    refuses, so the refusal and its message stay the reference's; never a different command."""
    encoded = encode_command(command)
    assume(encoded[0] & 0x80)
    native = _native.decode_packed(encoded, 0, len(encoded))
    assert native == command
    assert type(native) is type(command)
    assert [type(getattr(native, f)) for f in command.__dataclass_fields__] == [
        type(getattr(command, f)) for f in command.__dataclass_fields__
    ]
    framed = b"pre" + encoded + b"post"  # a slice of a larger buffer, as in a journal record
    assert _native.decode_packed(framed, 3, 3 + len(encoded)) == command
    damaged = bytearray(encoded)
    i = data.draw(st.integers(0, len(damaged) - 1))
    how = data.draw(st.sampled_from(("flip", "cut", "extend")))
    if how == "flip":
        damaged[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del damaged[i:]
    else:
        damaged += data.draw(st.binary(min_size=1, max_size=4))
    damaged_bytes = bytes(damaged)
    assume(damaged_bytes and damaged_bytes[0] & 0x80)  # still a packed tag
    reference = _reference_packed(damaged_bytes)
    got = _native.decode_packed(damaged_bytes, 0, len(damaged_bytes))
    if got is not None:
        assert got == reference
    assert _decoded_or_refusal(damaged_bytes) == reference


def _decoded_or_refusal(data: bytes) -> c.Command | str:
    try:
        return decode_command(data)
    except ValueError as exc:
        return f"refused: {exc}"


def test_hot_commands_take_the_packed_layout_and_big_integers_the_generic() -> None:
    small = c.PlaceOrder(7, 1, b"\x11" * 32, "0xabc", "M", Side.SELL, 5, 10**18,
                         TimeInForce.IOC, 3, 0, "client-1")  # fmt: skip
    assert encode_command(small)[0] & 0x80
    big = c.PlaceOrder(7, 1, b"\x11" * 32, "0xabc", "M", Side.SELL, 5, 10**30,
                       TimeInForce.IOC, 3, 0, None)  # fmt: skip
    assert encode_command(big) == encode_command_generic(big)
    assert decode_command(encode_command(big)) == big
    cancel = c.CancelOrder(8, 1, b"\x22" * 32, "0xabc")
    assert encode_command(cancel)[0] & 0x80
    assert decode_command(encode_command(cancel)) == cancel


def test_place_order_is_compact() -> None:
    cmd = c.PlaceOrder(
        seq=123_456,
        now=1_700_000_000,
        order_hash=b"\x11" * 32,
        trader="0x" + "ab" * 20,
        market_id="WETH-USDC",
        side=Side.BUY,
        price=3_000_500_000,
        amount=10**18,
        time_in_force=TimeInForce.GTC,
        nonce=1_700_000_000_123,
        expiry=0,
    )
    assert len(encode_command(cmd)) <= 150  # 43 of them are the address text, 33 the hash


def test_trailing_bytes_refused() -> None:
    data = encode_command(c.SweepExpired(seq=1, now=2))
    with pytest.raises(ValueError, match="invalid literal"):  # the integer block runs to the end
        decode_command(data + b"\x00")
    data = encode_command(c.CancelOrder(1, 2, b"\x01" * 32, "0xabc"))
    with pytest.raises(ValueError, match="left over"):
        decode_command(data + b"\x00")


_FIELD_VALUES: dict[str, Any] = {
    "int": anyint,
    "str": text,
    "bytes": st.binary(max_size=40),
    "str | None": opt_text,
    "Side": st.sampled_from(Side),
    "TimeInForce": st.sampled_from(TimeInForce),
    "MarketState": st.sampled_from(MarketState),
    "CancelReason": st.sampled_from(CancelReason),
    "ErrorCode": st.sampled_from(ErrorCode),
    "int | None": st.none() | anyint,
}


def _event_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    from dataclasses import fields

    return st.builds(cls, **{f.name: _FIELD_VALUES[str(f.type)] for f in fields(cls)})


events = st.one_of([_event_strategy(cls) for cls in EVENT_TYPES])


@settings(max_examples=300, deadline=None)
@given(events)
def test_event_round_trip(event: Any) -> None:
    data = encode_event(event)
    assert data == encode_event_generic(event)
    assert decode_event(data) == event
    batch = bytearray()
    encode_events([event, event], batch)
    assert decode_events(bytes(batch)) == [event, event]


def test_event_batch_round_trip() -> None:
    batch = [
        BalanceChanged(1, "a", "t", 10**30, 5),
        Fill(1, 0, "M", b"m", "a", b"t", "b", Side.SELL, 10**20, 100, 5, 0, 1, 0, 0),
    ]
    out = bytearray()
    encode_events(batch, out)  # type: ignore[arg-type]
    assert decode_events(bytes(out)) == batch
