"""Wire format between `TcpEngineClient` and the `hybridex engine` server.

FIND asks for the journaled commands whose intakes carry the refs, with after < seq < before:
how a submitter whose answer was lost learns whether the command was journaled.

Frame: `u32 length` (of what follows), `u8 kind`, `u32 request id`, body, and after the
handshake (`backend.engine.auth`: CHALLENGE, HELLO, WELCOME) a 32-byte tag. Requests are
multiplexed on one connection; answers carry the request's id and may come in any order.

| kind | request body | answer kind: body |
| --- | --- | --- |
| SUBMIT | journal record payload (`records.encode_record`) | SUBMITTED: u64 seq + `encode_events` |
| BOOK | u16 depth + market id (UTF-8) | BOOK: JSON `{marketId, seq, feedSeq, bids, asks}` |
| STATE | — | STATE: JSON `{seq, stateHash}` |
| FIND | u64 after + u64 before + n × 32-byte intake ref | FOUND: n × u64 seq (0 = none) |
| BALANCES | — | BALANCES: every (trader, token, total, locked) at one seq (`encode_balances`) |
| any | | ERROR: u16 `ErrorCode` value + UTF-8 message |
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from collections.abc import Iterable

from backend.engine.auth import TAG, FrameMac

HEADER = struct.Struct("<IBI")
U64 = struct.Struct("<Q")
U16 = struct.Struct("<H")
MAX_FRAME = 16 * 1024 * 1024
MAX_HANDSHAKE_FRAME = 1024  # what an unauthenticated peer can make the engine read

FIND_RANGE = struct.Struct("<QQ")

SUBMIT, BOOK, STATE, FIND, BALANCES = 1, 2, 3, 4, 5
SUBMITTED, BOOK_ANSWER, STATE_ANSWER, FOUND, ERROR = 0x81, 0x82, 0x83, 0x84, 0xFF
BALANCES_ANSWER = 0x85
CHALLENGE, HELLO, WELCOME = 0x10, 0x11, 0x90


class FrameAuthError(ValueError):
    """A frame's tag does not match: forged, altered, replayed or out of place."""


def frame(kind: int, request_id: int, body: bytes) -> bytes:
    return HEADER.pack(len(body) + 5, kind, request_id) + body


def sealed_frame(mac: FrameMac, kind: int, request_id: int, body: bytes | bytearray) -> bytes:
    head = HEADER.pack(len(body) + 5 + TAG, kind, request_id)
    return b"".join((head, body, mac.tag(head, body)))


async def read_frame(
    reader: asyncio.StreamReader, mac: FrameMac | None = None, *, max_frame: int = MAX_FRAME
) -> tuple[int, int, bytes]:
    """(kind, request id, body), checking the tag when `mac` is given; raises
    IncompleteReadError at EOF, FrameAuthError on a bad tag, ValueError on a bad length."""
    head = await reader.readexactly(HEADER.size)
    length, kind, request_id = HEADER.unpack(head)
    tag = 0 if mac is None else TAG
    if not 5 + tag <= length <= max_frame:
        raise ValueError(f"bad frame length {length}")
    data = await reader.readexactly(length - 5)
    if mac is None:
        return kind, request_id, data
    body = data[:-TAG]
    if not hmac.compare_digest(mac.tag(head, body), data[-TAG:]):
        raise FrameAuthError(f"bad tag on a frame of kind {kind}")
    return kind, request_id, body


_BALANCES_HEAD = struct.Struct("<QIH")

BalanceRow = tuple[str, str, int, int]
"""(trader, token, total, locked); addresses as 0x-hex."""


def encode_balances(seq: int, rows: Iterable[BalanceRow]) -> bytes:
    """`u64 seq`, `u32` rows, `u16 n` tokens of 20 bytes, then per row: 20-byte trader, `u16`
    token index, total and locked each as `u8 length` + big-endian bytes. Compact (about 32
    bytes a row) so one frame carries some 500k balances; raises ValueError past MAX_FRAME."""
    tokens: dict[str, int] = {}
    out = bytearray()
    count = 0
    for trader, token, total, locked in rows:
        index = tokens.setdefault(token.lower(), len(tokens))
        out += bytes.fromhex(trader[2:])
        out += U16.pack(index)
        for amount in (total, locked):
            raw = amount.to_bytes((amount.bit_length() + 7) // 8, "big")
            out.append(len(raw))
            out += raw
        count += 1
    head = _BALANCES_HEAD.pack(seq, count, len(tokens))
    head += b"".join(bytes.fromhex(t[2:]) for t in tokens)
    if len(head) + len(out) > MAX_FRAME - 64:
        raise ValueError(f"{count} balances do not fit one frame")
    return head + bytes(out)


def decode_balances(body: bytes) -> tuple[int, list[BalanceRow]]:
    """(seq, rows) of `encode_balances`, addresses lower-case; ValueError when malformed."""
    try:
        seq, count, n = _BALANCES_HEAD.unpack_from(body)
        at = _BALANCES_HEAD.size
        tokens = ["0x" + body[at + 20 * i : at + 20 * (i + 1)].hex() for i in range(n)]
        at += 20 * n
        rows: list[BalanceRow] = []
        for _ in range(count):
            trader = "0x" + body[at : at + 20].hex()
            (index,) = U16.unpack_from(body, at + 20)
            at += 22
            amounts = []
            for _ in range(2):
                size = body[at]
                amounts.append(int.from_bytes(body[at + 1 : at + 1 + size], "big"))
                at += 1 + size
            rows.append((trader, tokens[index], amounts[0], amounts[1]))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed BALANCES answer: {exc}") from exc
    if at != len(body) or any(len(t) != 42 for t in tokens):
        raise ValueError("malformed BALANCES answer: its length does not match its rows")
    return seq, rows
