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
| any | | ERROR: u16 `ErrorCode` value + UTF-8 message |
"""

from __future__ import annotations

import asyncio
import hmac
import struct

from backend.engine.auth import TAG, FrameMac

HEADER = struct.Struct("<IBI")
U64 = struct.Struct("<Q")
U16 = struct.Struct("<H")
MAX_FRAME = 16 * 1024 * 1024
MAX_HANDSHAKE_FRAME = 1024  # what an unauthenticated peer can make the engine read

FIND_RANGE = struct.Struct("<QQ")

SUBMIT, BOOK, STATE, FIND = 1, 2, 3, 4
SUBMITTED, BOOK_ANSWER, STATE_ANSWER, FOUND, ERROR = 0x81, 0x82, 0x83, 0x84, 0xFF
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
