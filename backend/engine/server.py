"""The `hybridex engine` TCP server: `EngineService` behind the `protocol` frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from backend.domain.errors import DexError, ErrorCode
from backend.engine import protocol as p
from backend.engine.client import EngineOutcomeUnknownError, Outcome
from backend.engine.records import decode_record, find_intake_refs
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
        out = _Outbox(writer)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    kind, request_id, body = await p.read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if kind == p.SUBMIT:  # the hot path: no task, the answer is the future's callback
                    self._submit(out, request_id, body)
                    continue
                task = asyncio.create_task(self._handle(out, kind, request_id, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ValueError:
            log.warning("engine_bad_frame")
        finally:
            self._connections.discard(writer)
            writer.close()

    def _submit(self, out: _Outbox, request_id: int, body: bytes) -> None:
        try:
            command, intake = decode_record(body)
        except Exception as exc:
            answer = _error_answer(exc)
            if answer is not None:
                out.send(answer[0], request_id, answer[1])
            return
        fut = self.service.enqueue(command, intake)

        def answered(f: asyncio.Future[Outcome]) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None:
                outcome = f.result()
                payload = bytearray(p.U64.pack(outcome.seq))
                encode_events(outcome.events, payload)
                out.send(p.SUBMITTED, request_id, payload)
                return
            answer = _error_answer(exc)
            if answer is not None:
                out.send(answer[0], request_id, answer[1])

        fut.add_done_callback(answered)

    async def _handle(self, out: _Outbox, kind: int, request_id: int, body: bytes) -> None:
        try:
            answer_kind, answer = await self._answer(kind, body)
        except Exception as exc:
            error = _error_answer(exc)
            if error is None:
                return
            answer_kind, answer = error
        out.send(answer_kind, request_id, answer)

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
        if kind == p.FIND:
            after, before = p.FIND_RANGE.unpack_from(body)
            refs = [bytes(body[i : i + 32]) for i in range(p.FIND_RANGE.size, len(body), 32)]
            found = await asyncio.to_thread(
                find_intake_refs, service.journal.read_from(after + 1), refs, before_seq=before
            )
            return p.FOUND, b"".join(p.U64.pack(found.get(ref, 0)) for ref in refs)
        if kind == p.STATE:
            seq, digest = service.state()
            return p.STATE_ANSWER, json.dumps({"seq": seq, "stateHash": digest}).encode()
        raise ValueError(f"unknown request kind {kind}")


def _error_answer(exc: BaseException) -> tuple[int, bytes] | None:
    """The ERROR answer to a failed request, or None when it must go unanswered."""
    if isinstance(exc, EngineOutcomeUnknownError):
        # Journaled or maybe not, and the engine is stopping: no answer, so the client sees
        # a timeout or a lost connection (= unknown), never a refusal.
        return None
    if isinstance(exc, DexError):
        return p.ERROR, p.U16.pack(exc.code.value) + exc.message.encode()
    # a malformed request must not take the server down
    log.warning("engine_request_failed", error=repr(exc))
    return p.ERROR, p.U16.pack(ErrorCode.INVALID_ORDER.value) + repr(exc).encode()


class _Outbox:
    """The answers of one connection, written once per event-loop pass: a group commit
    resolves hundreds of submissions at once, and they leave in one `write`."""

    __slots__ = ("_frames", "_scheduled", "_writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._frames: list[bytes] = []
        self._scheduled = False

    def send(self, kind: int, request_id: int, body: bytes | bytearray) -> None:
        self._frames.append(p.HEADER.pack(len(body) + 5, kind, request_id))
        self._frames.append(bytes(body))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        frames, self._frames = self._frames, []
        if not self._writer.is_closing():
            self._writer.write(b"".join(frames))
