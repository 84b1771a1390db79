"""Compact, deterministic encoding of commands (the journal) and events (the outbox).

No pickle. A record is a tag byte (the type's index in COMMAND_TYPES / EVENT_TYPES), then its
non-integer fields in declaration order, then one block holding all its integer fields:

- str / bytes: length (1 byte, or 0xFF + u32) then the bytes; `X | None`: a presence byte first.
- enums: Side, TimeInForce, MarketState, CancelReason as one byte; ErrorCode as u16.
- MarketSpec: a nested record.
- integers (any size and sign, uint256 included): one length-prefixed ASCII block of
  comma-separated hex numbers, in declaration order. Formatting all integers of a record in
  one `%` operation costs a fraction of per-integer packing in Python, and hex is about as
  compact as length-prefixed binary for the sizes that occur.

`encode_command` and `encode_event(s)` have hand-written fast paths for the records that make
up the bulk of the journal and the outbox (PlaceOrder, CancelOrder; BalanceChanged,
OrderAccepted, Fill, OrderCancelled). They produce exactly the generic layout; tests hold
them equal.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from backend.domain.errors import ErrorCode
from backend.domain.types import MarketState, Side, TimeInForce
from backend.matching.commands import COMMAND_TYPES, CancelOrder, Command, MarketSpec, PlaceOrder
from backend.matching.events import (
    EVENT_TYPES,
    BalanceChanged,
    CancelReason,
    Event,
    Fill,
    OrderAccepted,
    OrderCancelled,
)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

Writer = Callable[[bytearray, Any], None]
Reader = Callable[[bytes, int], tuple[Any, int]]


def _w_bytes(out: bytearray, v: bytes | bytearray) -> None:
    n = len(v)
    if n < 0xFF:
        out.append(n)
    else:
        out.append(0xFF)
        out += _U32.pack(n)
    out += v


def _r_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = buf[pos]
    pos += 1
    if n == 0xFF:
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
    return bytes(buf[pos : pos + n]), pos + n


def _w_str(out: bytearray, v: str) -> None:
    _w_bytes(out, v.encode())


def _r_str(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _r_bytes(buf, pos)
    return raw.decode(), pos


def _optional(write: Writer, read: Reader) -> tuple[Writer, Reader]:
    def w(out: bytearray, v: Any) -> None:
        if v is None:
            out.append(0)
        else:
            out.append(1)
            write(out, v)

    def r(buf: bytes, pos: int) -> tuple[Any, int]:
        if buf[pos] == 0:
            return None, pos + 1
        return read(buf, pos + 1)

    return w, r


def _small_enum(members: list[Any]) -> tuple[Writer, Reader]:
    """One byte: the member's position in declaration order (stable: only ever append)."""
    index = {m: i for i, m in enumerate(members)}

    def w(out: bytearray, v: Any) -> None:
        out.append(index[v])

    def r(buf: bytes, pos: int) -> tuple[Any, int]:
        return members[buf[pos]], pos + 1

    return w, r


def _w_code(out: bytearray, v: ErrorCode) -> None:
    out += _U16.pack(v.value)


def _r_code(buf: bytes, pos: int) -> tuple[ErrorCode, int]:
    return ErrorCode(_U16.unpack_from(buf, pos)[0]), pos + 2


def _r_ints(buf: bytes, pos: int) -> tuple[list[int], int]:
    raw, pos = _r_bytes(buf, pos)
    return ([int(x, 16) for x in raw.split(b",")] if raw else []), pos


def _record(cls: type[Any]) -> tuple[Writer, Reader]:
    """Writer and reader for a dataclass, from its field annotations."""
    spec = [(f.name, str(f.type)) for f in fields(cls)]
    others = [(name, _FIELD_CODECS[kind]) for name, kind in spec if kind != "int"]
    int_names = [name for name, kind in spec if kind == "int"]
    int_format = ",".join(["%x"] * len(int_names))
    is_int = [kind == "int" for _, kind in spec]

    def w(out: bytearray, v: Any) -> None:
        for name, (write, _) in others:
            write(out, getattr(v, name))
        _w_bytes(out, (int_format % tuple(getattr(v, n) for n in int_names)).encode())

    def r(buf: bytes, pos: int) -> tuple[Any, int]:
        rest = []
        for _, (_, read) in others:
            value, pos = read(buf, pos)
            rest.append(value)
        ints, pos = _r_ints(buf, pos)
        if len(ints) != len(int_names):
            raise ValueError(f"{cls.__name__}: expected {len(int_names)} integers")
        ints_iter, rest_iter = iter(ints), iter(rest)
        return cls(*[next(ints_iter) if i else next(rest_iter) for i in is_int]), pos

    return w, r


_FIELD_CODECS: dict[str, tuple[Writer, Reader]] = {
    "str": (_w_str, _r_str),
    "bytes": (_w_bytes, _r_bytes),
    "str | None": _optional(_w_str, _r_str),
    "Side": _small_enum(list(Side)),
    "TimeInForce": _small_enum(list(TimeInForce)),
    "MarketState": _small_enum(list(MarketState)),
    "CancelReason": _small_enum(list(CancelReason)),
    "ErrorCode": (_w_code, _r_code),
}
_FIELD_CODECS["MarketSpec"] = _record(MarketSpec)

_COMMAND_CODECS = [_record(cls) for cls in COMMAND_TYPES]
_COMMAND_TAGS: dict[type[Any], int] = {cls: i for i, cls in enumerate(COMMAND_TYPES)}
_EVENT_CODECS = [_record(cls) for cls in EVENT_TYPES]
_EVENT_TAGS: dict[type[Any], int] = {cls: i for i, cls in enumerate(EVENT_TYPES)}
_SIDE_BYTE = {m: i for i, m in enumerate(Side)}
_TIF_BYTE = {m: i for i, m in enumerate(TimeInForce)}
_REASON_BYTE = {m: i for i, m in enumerate(CancelReason)}


def _encode_generic(
    value: Any, tags: dict[type[Any], int], codecs: list[tuple[Writer, Reader]]
) -> bytearray:
    tag = tags[type(value)]
    out = bytearray((tag,))
    codecs[tag][0](out, value)
    return out


_STR_CACHE: dict[str, bytes] = {}


def _str_field(v: str) -> bytes:
    """Length-prefixed UTF-8 of a string; addresses, tokens and market ids repeat endlessly,
    so their encodings are cached (bounded: cleared when it grows large)."""
    got = _STR_CACHE.get(v)
    if got is None:
        out = bytearray()
        _w_str(out, v)
        got = bytes(out)
        if len(_STR_CACHE) > 100_000:
            _STR_CACHE.clear()
        _STR_CACHE[v] = got
    return got


# ------------------------------------------------------------------ fast paths


def _place(c: PlaceOrder, out: bytearray) -> None:
    out.append(_PLACE_TAG)
    _w_bytes(out, c.order_hash)
    out += _str_field(c.trader)
    out += _str_field(c.market_id)
    out.append(_SIDE_BYTE[c.side])
    out.append(_TIF_BYTE[c.time_in_force])
    if c.client_order_id is None:
        out.append(0)
    else:
        out.append(1)
        _w_str(out, c.client_order_id)
    _w_bytes(out, _PLACE_INTS % (c.seq, c.now, c.price, c.amount, c.nonce, c.expiry))


def _cancel(c: CancelOrder, out: bytearray) -> None:
    out.append(_CANCEL_TAG)
    _w_bytes(out, c.order_hash)
    out += _str_field(c.trader)
    _w_bytes(out, b"%x,%x" % (c.seq, c.now))


def _balance(e: BalanceChanged, out: bytearray) -> None:
    out.append(_BALANCE_TAG)
    out += _str_field(e.trader)
    out += _str_field(e.token)
    _w_bytes(out, b"%x,%x,%x" % (e.seq, e.total, e.locked))


def _accepted(e: OrderAccepted, out: bytearray) -> None:
    out.append(_ACCEPTED_TAG)
    _w_bytes(out, e.order_hash)
    out += _str_field(e.trader)
    out += _str_field(e.market_id)
    out.append(_SIDE_BYTE[e.side])
    out.append(_TIF_BYTE[e.time_in_force])
    if e.client_order_id is None:
        out.append(0)
    else:
        out.append(1)
        _w_str(out, e.client_order_id)
    _w_bytes(out, b"%x,%x,%x,%x,%x" % (e.seq, e.price, e.amount, e.nonce, e.expiry))


def _fill(e: Fill, out: bytearray) -> None:
    out.append(_FILL_TAG)
    out += _str_field(e.market_id)
    _w_bytes(out, e.maker_hash)
    out += _str_field(e.maker_trader)
    _w_bytes(out, e.taker_hash)
    out += _str_field(e.taker_trader)
    out.append(_SIDE_BYTE[e.taker_side])
    ints = (
        e.seq,
        e.fill_index,
        e.price,
        e.amount,
        e.quote_amount,
        e.maker_fee,
        e.taker_fee,
        e.maker_remaining,
        e.taker_remaining,
    )
    _w_bytes(out, b"%x,%x,%x,%x,%x,%x,%x,%x,%x" % ints)


def _cancelled(e: OrderCancelled, out: bytearray) -> None:
    out.append(_CANCELLED_TAG)
    _w_bytes(out, e.order_hash)
    out += _str_field(e.trader)
    out += _str_field(e.market_id)
    out.append(_REASON_BYTE[e.reason])
    _w_bytes(out, b"%x,%x" % (e.seq, e.remaining))


_PLACE_TAG = _COMMAND_TAGS[PlaceOrder]
_PLACE_INTS = b"%x,%x,%x,%x,%x,%x"
_CANCEL_TAG = _COMMAND_TAGS[CancelOrder]
_BALANCE_TAG = _EVENT_TAGS[BalanceChanged]
_ACCEPTED_TAG = _EVENT_TAGS[OrderAccepted]
_FILL_TAG = _EVENT_TAGS[Fill]
_CANCELLED_TAG = _EVENT_TAGS[OrderCancelled]

_FAST_COMMANDS: dict[type[Any], Callable[[Any, bytearray], None]] = {
    PlaceOrder: _place,
    CancelOrder: _cancel,
}
_FAST_EVENTS: dict[type[Any], Callable[[Any, bytearray], None]] = {
    BalanceChanged: _balance,
    OrderAccepted: _accepted,
    Fill: _fill,
    OrderCancelled: _cancelled,
}

# ------------------------------------------------------------------ public interface


def encode_command(command: Command) -> bytes:
    """Journal record of one command (without framing: the journal adds length and CRC)."""
    fast = _FAST_COMMANDS.get(type(command))
    if fast is None:
        return bytes(_encode_generic(command, _COMMAND_TAGS, _COMMAND_CODECS))
    out = bytearray()
    fast(command, out)
    return bytes(out)


def encode_command_generic(command: Command) -> bytes:
    """The reference layout the fast paths must match (used by tests)."""
    return bytes(_encode_generic(command, _COMMAND_TAGS, _COMMAND_CODECS))


def decode_command(data: bytes) -> Command:
    value, end = _COMMAND_CODECS[data[0]][1](data, 1)
    if end != len(data):
        raise ValueError(f"trailing bytes after command: {len(data) - end}")
    command: Command = value
    return command


def encode_event(event: Event) -> bytes:
    fast = _FAST_EVENTS.get(type(event))
    if fast is None:
        return bytes(_encode_generic(event, _EVENT_TAGS, _EVENT_CODECS))
    out = bytearray()
    fast(event, out)
    return bytes(out)


def encode_event_generic(event: Event) -> bytes:
    """The reference layout the fast paths must match (used by tests)."""
    return bytes(_encode_generic(event, _EVENT_TAGS, _EVENT_CODECS))


def encode_events(events: list[Event], out: bytearray) -> None:
    """Append each event, length-prefixed, to `out` (the outbox batch of one command)."""
    fast_events = _FAST_EVENTS
    for event in events:
        fast = fast_events.get(type(event))
        if fast is None:
            body = _encode_generic(event, _EVENT_TAGS, _EVENT_CODECS)
        else:
            body = bytearray()
            fast(event, body)
        _w_bytes(out, body)


def decode_event(data: bytes) -> Event:
    value, end = _EVENT_CODECS[data[0]][1](data, 1)
    if end != len(data):
        raise ValueError(f"trailing bytes after event: {len(data) - end}")
    event: Event = value
    return event


def decode_events(data: bytes) -> list[Event]:
    out: list[Event] = []
    pos = 0
    while pos < len(data):
        body, pos = _r_bytes(data, pos)
        out.append(decode_event(body))
    return out
