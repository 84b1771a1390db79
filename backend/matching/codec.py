"""Compact, deterministic encoding of commands (the journal) and events (the outbox).

No pickle. A record is a tag byte, then one of two layouts:

- generic (tag = the type's index in COMMAND_TYPES / EVENT_TYPES): the non-integer fields in
  declaration order, then all integer fields as comma-separated hex in declaration order,
  filling the rest of the record (the caller frames records, so the block needs no length;
  a nested record — MarketSpec — length-prefixes its block).
  - str / bytes: length (1 byte, or 0xFF + u32) then the bytes; `X | None`: a presence byte
    first; enums Side, TimeInForce, MarketState, CancelReason: one byte; ErrorCode: u16.
  - integers of any size and sign (uint256 included). Formatting all integers of a record in
    one `%` operation costs a fraction of per-integer packing in Python.
- packed (tag | 0x80; PlaceOrder and CancelOrder only, the bulk of the journal): the integer
  fields first as little-endian u64 (one precompiled `struct`), then the other fields as
  above with 1-byte lengths. Used whenever every integer fits a u64 and every length is below
  255; anything else (a uint256 amount, say) takes the generic layout. It exists for replay:
  `Struct.unpack_from` reads six integers for the price of parsing one hex number.

The encoders of the records that make up the bulk of the journal and the outbox (PlaceOrder,
CancelOrder; BalanceChanged, OrderAccepted, Fill, OrderCancelled) are written out by hand as
one `%` operation each; the event ones produce exactly the generic layout (tests hold them
equal), the command ones the packed layout (tests hold both layouts decoding to the same
command).

The native crate (backend/native, src/codec.rs) writes and reads the event batches too
(`encode_events`, `decode_events`); `encode_events_python` and `decode_events_python` are
the reference, and take what the native side declines.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from backend import _native
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
from backend.matching.native import configured

assert configured  # the native encoder knows the event classes (native.py configures it)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_PACKED = 0x80

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
    end = pos + n
    if end > len(buf):
        raise ValueError("truncated record")
    return bytes(buf[pos:end]), end


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


def _w_opt_int(out: bytearray, v: int) -> None:
    _w_bytes(out, b"%x" % v)


def _r_opt_int(buf: bytes, pos: int) -> tuple[int, int]:
    raw, pos = _r_bytes(buf, pos)
    return int(raw, 16), pos


def _parse_ints(raw: bytes) -> list[int]:
    return [int(x, 16) for x in raw.split(b",")] if raw else []


def _record(cls: type[Any], *, nested: bool) -> tuple[Writer, Reader]:
    """Writer and reader for a dataclass, from its field annotations. A top-level record's
    integer block runs to the end of the buffer; a nested one's is length-prefixed."""
    spec = [(f.name, str(f.type)) for f in fields(cls)]
    others = [(name, _FIELD_CODECS[kind]) for name, kind in spec if kind != "int"]
    int_names = [name for name, kind in spec if kind == "int"]
    int_format = ",".join(["%x"] * len(int_names)).encode()
    is_int = [kind == "int" for _, kind in spec]

    def w(out: bytearray, v: Any) -> None:
        for name, (write, _) in others:
            write(out, getattr(v, name))
        ints = int_format % tuple(getattr(v, n) for n in int_names)
        if nested:
            _w_bytes(out, ints)
        else:
            out += ints

    def r(buf: bytes, pos: int) -> tuple[Any, int]:
        rest = []
        for _, (_, read) in others:
            value, pos = read(buf, pos)
            rest.append(value)
        if nested:
            raw, pos = _r_bytes(buf, pos)
        else:
            raw, pos = bytes(buf[pos:]), len(buf)
        ints = _parse_ints(raw)
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
    "int | None": _optional(_w_opt_int, _r_opt_int),
}
_FIELD_CODECS["MarketSpec"] = _record(MarketSpec, nested=True)

_COMMAND_CODECS = [_record(cls, nested=False) for cls in COMMAND_TYPES]
_COMMAND_TAGS: dict[type[Any], int] = {cls: i for i, cls in enumerate(COMMAND_TYPES)}
_EVENT_CODECS = [_record(cls, nested=False) for cls in EVENT_TYPES]
_EVENT_TAGS: dict[type[Any], int] = {cls: i for i, cls in enumerate(EVENT_TYPES)}
_SIDE_BYTE = {m: i for i, m in enumerate(Side)}
_TIF_BYTE = {m: i for i, m in enumerate(TimeInForce)}
_REASON_BYTE = {m: i for i, m in enumerate(CancelReason)}
_SIDES = list(Side)
_TIFS = list(TimeInForce)


def _encode_generic(
    value: Any, tags: dict[type[Any], int], codecs: list[tuple[Writer, Reader]]
) -> bytes:
    tag = tags[type(value)]
    out = bytearray((tag,))
    codecs[tag][0](out, value)
    return bytes(out)


_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_MAX = 100_000


def _str_field(v: str) -> bytes:
    """Length-prefixed UTF-8 of a string; addresses, tokens and market ids repeat endlessly,
    so their encodings are cached (bounded: cleared when it grows large). Hot callers look
    the cache up inline (`_STR_CACHE.get(v) or _str_field(v)`)."""
    got = _STR_CACHE.get(v)
    if got is None:
        out = bytearray()
        _w_str(out, v)
        got = bytes(out)
        if len(_STR_CACHE) >= _STR_CACHE_MAX:
            _STR_CACHE.clear()
        _STR_CACHE[v] = got
    return got


_TEXT_CACHE: dict[bytes, str] = {}


def _text(raw: bytes) -> str:
    """Decoded string, shared: replayed commands then carry the same trader and market
    objects, which keeps dict lookups cheap and memory flat. Hot callers look the cache up
    inline (`_TEXT_CACHE.get(raw) or _text(raw)`; "" is not cached, which is harmless)."""
    got = _TEXT_CACHE.get(raw)
    if got is None:
        got = raw.decode()
        if len(_TEXT_CACHE) >= _STR_CACHE_MAX:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[raw] = got
    return got


# ------------------------------------------------------------------ commands, packed

_PLACE_TAG = _COMMAND_TAGS[PlaceOrder]
_CANCEL_TAG = _COMMAND_TAGS[CancelOrder]
_PLACE_INTS = struct.Struct("<6Q")  # seq, now, price, amount, nonce, expiry
_CANCEL_INTS = struct.Struct("<2Q")  # seq, now
_PLACE_PACKED = bytes((_PLACE_TAG | _PACKED,))
_CANCEL_PACKED = bytes((_CANCEL_TAG | _PACKED,))


def _place(c: PlaceOrder) -> bytes:
    h, coid = c.order_hash, c.client_order_id
    trader, market = c.trader, c.market_id
    try:
        ints = _PLACE_INTS.pack(c.seq, c.now, c.price, c.amount, c.nonce, c.expiry)
    except struct.error:  # some integer beyond u64 (or negative): the generic layout
        return _encode_generic(c, _COMMAND_TAGS, _COMMAND_CODECS)
    t = _STR_CACHE.get(trader) or _str_field(trader)
    m = _STR_CACHE.get(market) or _str_field(market)
    if len(h) >= 0xFF or len(t) > 0xFF or len(m) > 0xFF:
        return _encode_generic(c, _COMMAND_TAGS, _COMMAND_CODECS)
    if coid is None:
        return b"%b%b%c%b%b%b%c%c\x00" % (
            _PLACE_PACKED, ints, len(h), h, t, m, _SIDE_BYTE[c.side], _TIF_BYTE[c.time_in_force]
        )  # fmt: skip
    raw = coid.encode()
    if len(raw) >= 0xFF:
        return _encode_generic(c, _COMMAND_TAGS, _COMMAND_CODECS)
    return b"%b%b%c%b%b%b%c%c\x01%c%b" % (
        _PLACE_PACKED, ints, len(h), h, t, m, _SIDE_BYTE[c.side], _TIF_BYTE[c.time_in_force],
        len(raw), raw,
    )  # fmt: skip


def _cancel(c: CancelOrder) -> bytes:
    h, trader = c.order_hash, c.trader
    try:
        ints = _CANCEL_INTS.pack(c.seq, c.now)
    except struct.error:
        return _encode_generic(c, _COMMAND_TAGS, _COMMAND_CODECS)
    t = _STR_CACHE.get(trader) or _str_field(trader)
    if len(h) >= 0xFF or len(t) > 0xFF:
        return _encode_generic(c, _COMMAND_TAGS, _COMMAND_CODECS)
    return b"%b%b%c%b%b" % (_CANCEL_PACKED, ints, len(h), h, t)


def _packed_place(buf: bytes, start: int, end: int) -> PlaceOrder:
    seq, now, price, amount, nonce, expiry = _PLACE_INTS.unpack_from(buf, start + 1)
    pos = start + 49
    n = buf[pos]
    h = buf[pos + 1 : pos + 1 + n]
    pos += 1 + n
    n = buf[pos]
    raw = buf[pos + 1 : pos + 1 + n]
    trader = _TEXT_CACHE.get(raw) or _text(raw)
    pos += 1 + n
    n = buf[pos]
    raw = buf[pos + 1 : pos + 1 + n]
    market = _TEXT_CACHE.get(raw) or _text(raw)
    pos += 1 + n
    side, tif, has_coid = buf[pos], buf[pos + 1], buf[pos + 2]
    pos += 3
    coid = None
    if has_coid:
        n = buf[pos]
        coid = bytes(buf[pos + 1 : pos + 1 + n]).decode()
        pos += 1 + n
    if pos != end or len(h) != buf[start + 49]:
        raise ValueError(f"packed PlaceOrder: {end - pos} bytes left over")
    return PlaceOrder(seq, now, bytes(h), trader, market, _SIDES[side], price, amount,
                      _TIFS[tif], nonce, expiry, coid)  # fmt: skip


def _packed_cancel(buf: bytes, start: int, end: int) -> CancelOrder:
    seq, now = _CANCEL_INTS.unpack_from(buf, start + 1)
    pos = start + 17
    n = buf[pos]
    h = buf[pos + 1 : pos + 1 + n]
    pos += 1 + n
    n = buf[pos]
    raw = buf[pos + 1 : pos + 1 + n]
    trader = _TEXT_CACHE.get(raw) or _text(raw)
    pos += 1 + n
    if pos != end or len(h) != buf[start + 17]:
        raise ValueError(f"packed CancelOrder: {end - pos} bytes left over")
    return CancelOrder(seq, now, bytes(h), trader)


_PACKED_READERS: dict[int, Callable[[bytes, int, int], Command]] = {
    _PLACE_TAG | _PACKED: _packed_place,
    _CANCEL_TAG | _PACKED: _packed_cancel,
}

# ------------------------------------------------------------------ events (generic layout)

_BALANCE_TAG = _EVENT_TAGS[BalanceChanged]
_ACCEPTED_TAG = _EVENT_TAGS[OrderAccepted]
_FILL_TAG = _EVENT_TAGS[Fill]
_CANCELLED_TAG = _EVENT_TAGS[OrderCancelled]


def _balance(e: BalanceChanged) -> bytes:
    trader, token = e.trader, e.token
    return b"%c%b%b%x,%x,%x" % (
        _BALANCE_TAG,
        _STR_CACHE.get(trader) or _str_field(trader),
        _STR_CACHE.get(token) or _str_field(token),
        e.seq, e.total, e.locked,
    )  # fmt: skip


def _accepted(e: OrderAccepted) -> bytes:
    h, trader, market = e.order_hash, e.trader, e.market_id
    if len(h) >= 0xFF or e.client_order_id is not None:
        return _encode_generic(e, _EVENT_TAGS, _EVENT_CODECS)
    return b"%c%c%b%b%b%c%c\x00%x,%x,%x,%x,%x" % (
        _ACCEPTED_TAG, len(h), h,
        _STR_CACHE.get(trader) or _str_field(trader),
        _STR_CACHE.get(market) or _str_field(market),
        _SIDE_BYTE[e.side], _TIF_BYTE[e.time_in_force],
        e.seq, e.price, e.amount, e.nonce, e.expiry,
    )  # fmt: skip


def _fill(e: Fill) -> bytes:
    mh, th, market, maker, taker = (
        e.maker_hash, e.taker_hash, e.market_id, e.maker_trader, e.taker_trader
    )  # fmt: skip
    if len(mh) >= 0xFF or len(th) >= 0xFF:
        return _encode_generic(e, _EVENT_TAGS, _EVENT_CODECS)
    return b"%c%b%c%b%b%c%b%b%c%x,%x,%x,%x,%x,%x,%x,%x,%x" % (
        _FILL_TAG,
        _STR_CACHE.get(market) or _str_field(market),
        len(mh), mh,
        _STR_CACHE.get(maker) or _str_field(maker),
        len(th), th,
        _STR_CACHE.get(taker) or _str_field(taker),
        _SIDE_BYTE[e.taker_side],
        e.seq, e.fill_index, e.price, e.amount, e.quote_amount, e.maker_fee, e.taker_fee,
        e.maker_remaining, e.taker_remaining,
    )  # fmt: skip


def _cancelled(e: OrderCancelled) -> bytes:
    h, trader, market = e.order_hash, e.trader, e.market_id
    if len(h) >= 0xFF:
        return _encode_generic(e, _EVENT_TAGS, _EVENT_CODECS)
    return b"%c%c%b%b%b%c%x,%x" % (
        _CANCELLED_TAG, len(h), h,
        _STR_CACHE.get(trader) or _str_field(trader),
        _STR_CACHE.get(market) or _str_field(market),
        _REASON_BYTE[e.reason], e.seq, e.remaining,
    )  # fmt: skip


_FAST_COMMANDS: dict[type[Any], Callable[[Any], bytes]] = {
    PlaceOrder: _place,
    CancelOrder: _cancel,
}
_FAST_EVENTS: dict[type[Any], Callable[[Any], bytes]] = {
    BalanceChanged: _balance,
    OrderAccepted: _accepted,
    Fill: _fill,
    OrderCancelled: _cancelled,
}

# ------------------------------------------------------------------ public interface


def encode_command(command: Command) -> bytes:
    """Journal record of one command (without framing: the journal adds length and CRC). The
    native encoder writes the packed layouts; `encode_command_python` is the reference."""
    packed = _native.encode_command(command)
    if packed is not None:
        return packed
    return encode_command_python(command)


def encode_command_python(command: Command) -> bytes:
    fast = _FAST_COMMANDS.get(type(command))
    if fast is None:
        return _encode_generic(command, _COMMAND_TAGS, _COMMAND_CODECS)
    return fast(command)


def encode_command_generic(command: Command) -> bytes:
    """The generic layout of any command (tests: both layouts decode to the same command)."""
    return _encode_generic(command, _COMMAND_TAGS, _COMMAND_CODECS)


def decode_command_at(buf: bytes, start: int, end: int) -> Command:
    """The command encoded in `buf[start:end]`, without slicing out a copy first: natively
    for the packed layouts (the engine port's hot path); the Python readers below are the
    reference, and read whatever the native decoder declines (and refuse what is damaged)."""
    tag = buf[start]
    if tag & _PACKED:
        native = _native.decode_packed(buf, start, end)
        if native is not None:
            return native
        return decode_packed_python(buf, start, end)
    data = buf[start:end] if start or end != len(buf) else buf
    try:
        value, pos = _COMMAND_CODECS[tag][1](data, 1)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated command: {exc}") from None
    if pos != len(data):
        raise ValueError(f"trailing bytes after command: {len(data) - pos}")
    command: Command = value
    return command


def decode_packed_python(buf: bytes, start: int, end: int) -> Command:
    """The reference decoder of the packed layouts (`buf[start]` has the packed bit)."""
    tag = buf[start]
    reader = _PACKED_READERS.get(tag)
    if reader is None:
        raise ValueError(f"unknown packed command tag {tag}")
    try:
        return reader(buf, start, end)
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated packed command: {exc}") from None


def decode_command(data: bytes) -> Command:
    return decode_command_at(data, 0, len(data))


def encode_event(event: Event) -> bytes:
    fast = _FAST_EVENTS.get(type(event))
    if fast is None:
        return _encode_generic(event, _EVENT_TAGS, _EVENT_CODECS)
    return fast(event)


def encode_event_generic(event: Event) -> bytes:
    """The reference layout the fast paths must match (used by tests)."""
    return _encode_generic(event, _EVENT_TAGS, _EVENT_CODECS)


def encode_events(events: list[Event], out: bytearray) -> None:
    """Append each event, length-prefixed (1 byte, or 0xFF + u32), to `out` (the outbox batch
    of one command). The native encoder writes the same bytes; what it does not take (a
    negative integer, a field of the wrong type) goes through `encode_events_python`."""
    if not _native.encode_events(events, out):
        encode_events_python(events, out)


def encode_events_python(events: list[Event], out: bytearray) -> None:
    """The reference encoder of `encode_events`."""
    for event in events:
        # Dispatch inline, most frequent first: a call per event is a third of the cost.
        if type(event) is BalanceChanged:
            trader, token = event.trader, event.token
            body = b"%c%b%b%x,%x,%x" % (
                _BALANCE_TAG,
                _STR_CACHE.get(trader) or _str_field(trader),
                _STR_CACHE.get(token) or _str_field(token),
                event.seq, event.total, event.locked,
            )  # fmt: skip
        else:
            fast = _FAST_EVENTS.get(type(event))
            body = (
                _encode_generic(event, _EVENT_TAGS, _EVENT_CODECS) if fast is None else fast(event)
            )
        n = len(body)
        if n < 0xFF:
            out.append(n)
        else:
            out.append(0xFF)
            out += _U32.pack(n)
        out += body


def decode_event(data: bytes) -> Event:
    value, end = _EVENT_CODECS[data[0]][1](data, 1)
    if end != len(data):
        raise ValueError(f"trailing bytes after event: {len(data) - end}")
    event: Event = value
    return event


def decode_events(data: bytes) -> list[Event]:
    """The events of an `encode_events` batch (the engine port's SUBMITTED answer). The native
    decoder builds the same objects and refuses damaged input with ValueError wherever the
    reference refuses; `decode_events_python` is the reference and reads what it declines."""
    native = _native.decode_events(data)
    if native is not None:
        return native
    return decode_events_python(data)


def decode_events_python(data: bytes) -> list[Event]:
    """The reference decoder of `decode_events`."""
    out: list[Event] = []
    pos = 0
    while pos < len(data):
        body, pos = _r_bytes(data, pos)
        out.append(decode_event(body))
    return out
