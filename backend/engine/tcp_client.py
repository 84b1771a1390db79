"""`TcpEngineClient`: the API's `EngineClient` for the `hybridex engine` process.

One connection, requests multiplexed by id (any number in flight), reconnect on the next call
after a failure. No connection raises `EngineUnavailableError` (nothing was sent; the API
answers 503); a timeout or a connection lost after the request was written raises
`EngineOutcomeUnknownError`: the command may have been journaled (the API answers 202 and the
outcome follows on the feeds).

    client = TcpEngineClient("127.0.0.1", 7700)
    outcome = await client.submit(command, timeout=2.0, intake=Intake(signature=sig))
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from itertools import count

from backend.domain.errors import DexError, ErrorCode
from backend.engine import protocol as p
from backend.engine.client import (
    BookSnapshot,
    EngineOutcomeUnknownError,
    EngineUnavailableError,
    Intake,
    Outcome,
)
from backend.engine.records import encode_record
from backend.matching.codec import decode_events
from backend.matching.commands import Command


class TcpEngineClient:
    def __init__(self, host: str, port: int, *, connect_timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._ids = count(1)
        self._pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._out: list[bytes] = []
        self._out_writer: asyncio.StreamWriter | None = None
        self._flush_scheduled = False

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                raise EngineUnavailableError(f"cannot reach the engine: {exc!r}") from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                kind, request_id, body = await p.read_frame(reader)
                fut = self._pending.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result((kind, body))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            pending, self._pending = self._pending, {}
            for fut in pending.values():  # every pending request was written: fate unknown
                if not fut.done():
                    fut.set_exception(EngineOutcomeUnknownError("engine connection lost"))

    async def _request(self, kind: int, body: bytes, timeout: float) -> tuple[int, bytes]:
        request_id = next(self._ids) & 0xFFFFFFFF
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        sent = False
        try:
            async with asyncio.timeout(timeout):
                writer = await self._connection()
                self._pending[request_id] = fut
                self._send(writer, p.frame(kind, request_id, body))
                sent = True
                answer_kind, answer = await fut
        except TimeoutError:
            error = EngineOutcomeUnknownError if sent else EngineUnavailableError
            raise error(f"no answer from the engine within {timeout}s") from None
        finally:
            self._pending.pop(request_id, None)
        if answer_kind == p.ERROR:
            (code,) = p.U16.unpack_from(answer)
            raise DexError(ErrorCode(code), answer[2:].decode(errors="replace"))
        return answer_kind, answer

    def _send(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        """Queue a frame; every frame queued during one event-loop pass leaves in one write."""
        if self._out_writer is not writer:
            self._flush()  # reconnected meanwhile: what was queued belongs to the old one
            self._out_writer = writer
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        frames, self._out = self._out, []
        writer = self._out_writer
        if frames and writer is not None and not writer.is_closing():
            writer.write(b"".join(frames))

    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        _, body = await self._request(p.SUBMIT, encode_record(command, intake), timeout)
        (seq,) = p.U64.unpack_from(body)
        return Outcome(seq, decode_events(body[p.U64.size :]))

    async def submit_many(
        self, commands: Sequence[tuple[Command, Intake | None]], *, timeout: float
    ) -> list[Outcome | BaseException]:
        """Every command as its own SUBMIT frame, all queued in list order so they leave in one
        write (the server enqueues them in that order), awaited with one timeout; answers are
        matched by request id. Nothing sent (no connection) → `EngineUnavailableError` for
        each; sent, no answer (timeout, connection lost) → `EngineOutcomeUnknownError`."""
        if not commands:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[Outcome | BaseException | None] = [None] * len(commands)
        bodies: list[tuple[int, bytes]] = []
        for i, (command, intake) in enumerate(commands):
            try:
                bodies.append((i, encode_record(command, intake)))
            except Exception as exc:  # the caller's error, like `submit`: nothing sent
                out[i] = exc
        try:
            async with asyncio.timeout(timeout):
                writer = await self._connection()
        except TimeoutError:
            writer = None
        except EngineUnavailableError as exc:
            return [exc if o is None else o for o in out]
        if writer is None:
            gone = EngineUnavailableError(f"no connection to the engine within {timeout}s")
            return [gone if o is None else o for o in out]
        sent: list[tuple[int, int, asyncio.Future[tuple[int, bytes]]]] = []
        try:
            for i, body in bodies:
                request_id = next(self._ids) & 0xFFFFFFFF
                fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
                self._pending[request_id] = fut
                self._send(writer, p.frame(p.SUBMIT, request_id, body))
                sent.append((i, request_id, fut))
            waiting = [f for _, _, f in sent]
            await asyncio.wait(waiting, timeout=max(0.0, deadline - loop.time()))
        finally:
            for _, request_id, _ in sent:
                self._pending.pop(request_id, None)
        for i, _, fut in sent:
            out[i] = _answer(fut, timeout)
        results: list[Outcome | BaseException] = []
        for o in out:
            assert o is not None  # each command was either refused before sending, or sent
            results.append(o)
        return results

    async def book(self, market_id: str, depth: int, *, timeout: float = 2.0) -> BookSnapshot:
        body = p.U16.pack(min(depth, 0xFFFF)) + market_id.encode()
        _, answer = await self._request(p.BOOK, body, timeout)
        data = json.loads(answer)
        return BookSnapshot(
            market_id=data["marketId"],
            seq=data["seq"],
            feed_seq=data["feedSeq"],
            bids=[(price, amount) for price, amount in data["bids"]],
            asks=[(price, amount) for price, amount in data["asks"]],
        )

    async def state(self, *, timeout: float = 10.0) -> tuple[int, str]:
        """(last applied seq, state_hash) of the live engine."""
        _, answer = await self._request(p.STATE, b"", timeout)
        data = json.loads(answer)
        return int(data["seq"]), str(data["stateHash"])

    async def find_refs(
        self, refs: Sequence[bytes], *, after_seq: int, before_seq: int, timeout: float = 60.0
    ) -> dict[bytes, int]:
        """ref → seq of the journaled commands whose intake carries one of `refs`, within
        (after_seq, before_seq); refs not journaled there are absent."""
        if any(len(ref) != 32 for ref in refs):
            raise ValueError("refs are 32 bytes")
        body = p.FIND_RANGE.pack(after_seq, before_seq) + b"".join(refs)
        _, answer = await self._request(p.FIND, body, timeout)
        seqs = [p.U64.unpack_from(answer, 8 * i)[0] for i in range(len(refs))]
        return {ref: seq for ref, seq in zip(refs, seqs, strict=True) if seq}

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


def _answer(fut: asyncio.Future[tuple[int, bytes]], timeout: float) -> Outcome | BaseException:
    """A sent SUBMIT's result: its Outcome, the engine's refusal, or outcome unknown."""
    if not fut.done() or fut.cancelled():
        if not fut.done():
            fut.cancel()  # nobody resolves it any more: its request id is forgotten
        return EngineOutcomeUnknownError(f"no answer from the engine within {timeout}s")
    exc = fut.exception()
    if exc is not None:
        return exc
    kind, body = fut.result()
    if kind == p.ERROR:
        (code,) = p.U16.unpack_from(body)
        return DexError(ErrorCode(code), body[2:].decode(errors="replace"))
    (seq,) = p.U64.unpack_from(body)
    return Outcome(seq, decode_events(body[p.U64.size :]))
