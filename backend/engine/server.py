"""The `hybridex engine` TCP server: `EngineService` behind the `protocol` frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from backend.domain.errors import DexError, ErrorCode
from backend.engine import protocol as p
from backend.engine.records import decode_record
from backend.engine.service import EngineService
from backend.matching.codec import encode_events

log = structlog.get_logger(__name__)


class EngineServer:
    def __init__(self, service: EngineService) -> None:
        self.service = service
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (pass 0 for an ephemeral one)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("engine_listening", host=host, port=bound)
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    kind, request_id, body = await p.read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                task = asyncio.create_task(self._handle(writer, kind, request_id, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ValueError:
            log.warning("engine_bad_frame")
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _handle(
        self, writer: asyncio.StreamWriter, kind: int, request_id: int, body: bytes
    ) -> None:
        try:
            answer_kind, answer = await self._answer(kind, body)
        except DexError as exc:
            answer_kind = p.ERROR
            answer = p.U16.pack(exc.code.value) + exc.message.encode()
        except Exception as exc:  # a malformed request must not take the server down
            log.warning("engine_request_failed", kind=kind, error=repr(exc))
            answer_kind = p.ERROR
            answer = p.U16.pack(ErrorCode.INVALID_ORDER.value) + repr(exc).encode()
        if not writer.is_closing():
            writer.write(p.frame(answer_kind, request_id, answer))

    async def _answer(self, kind: int, body: bytes) -> tuple[int, bytes]:
        service = self.service
        if kind == p.SUBMIT:
            command, intake = decode_record(body)
            outcome = await service.submit(command, intake)
            out = bytearray(p.U64.pack(outcome.seq))
            encode_events(outcome.events, out)
            return p.SUBMITTED, bytes(out)
        if kind == p.BOOK:
            (depth,) = p.U16.unpack_from(body)
            book = service.book(body[2:].decode(), depth)
            data: dict[str, Any] = {
                "marketId": book.market_id,
                "seq": book.seq,
                "feedSeq": book.feed_seq,
                "bids": book.bids,
                "asks": book.asks,
            }
            return p.BOOK_ANSWER, json.dumps(data).encode()
        if kind == p.STATE:
            seq, digest = service.state()
            return p.STATE_ANSWER, json.dumps({"seq": seq, "stateHash": digest}).encode()
        raise ValueError(f"unknown request kind {kind}")
