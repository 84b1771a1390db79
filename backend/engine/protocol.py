"""Wire format between `TcpEngineClient` and the `hybridex engine` server (loopback only).

FIND asks for the journaled commands whose intakes carry the refs, with after < seq < before:
how a submitter whose answer was lost learns whether the command was journaled.

Frame: `u32 length` (of what follows), `u8 kind`, `u32 request id`, body. Requests are
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
import struct

HEADER = struct.Struct("<IBI")
U64 = struct.Struct("<Q")
U16 = struct.Struct("<H")
MAX_FRAME = 16 * 1024 * 1024

FIND_RANGE = struct.Struct("<QQ")

SUBMIT, BOOK, STATE, FIND = 1, 2, 3, 4
SUBMITTED, BOOK_ANSWER, STATE_ANSWER, FOUND, ERROR = 0x81, 0x82, 0x83, 0x84, 0xFF


def frame(kind: int, request_id: int, body: bytes) -> bytes:
    return HEADER.pack(len(body) + 5, kind, request_id) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(kind, request id, body); raises IncompleteReadError at EOF."""
    head = await reader.readexactly(HEADER.size)
    length, kind, request_id = HEADER.unpack(head)
    if not 5 <= length <= MAX_FRAME:
        raise ValueError(f"bad frame length {length}")
    body = await reader.readexactly(length - 5)
    return kind, request_id, body
