"""`TcpEngineClient`: the `EngineClient` of the `hybridex engine` process, over its unix
socket or TCP, authenticated as one role (`backend.engine.auth`).

One connection, requests multiplexed by id (any number in flight), reconnect on the next call
after a failure. No connection raises `EngineUnavailableError` (nothing was sent; the API
answers 503), and so does a refused handshake (`EngineAuthError`: wrong or missing key); a
timeout or a connection lost after the request was written raises
`EngineOutcomeUnknownError`: the command may have been journaled (the API answers 202 and the
outcome follows on the feeds).

    client = TcpEngineClient.from_settings(settings, Role.API)
    outcome = await client.submit(command, timeout=2.0, intake=Intake(signature=sig))
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING

from backend.domain.errors import DexError, ErrorCode
from backend.engine import auth
from backend.engine import protocol as p
from backend.engine.auth import FrameMac, Role
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

if TYPE_CHECKING:
    from backend.config import Settings

Address = Path | tuple[str, int]
"""A unix socket path, or (host, port)."""


class EngineAuthError(EngineUnavailableError):
    """The engine refused this client's role key (or could not prove its own): nothing was
    sent. A deployment fault: check HYBRIDEX_ENGINE_KEY_<ROLE> on both ends."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode.ENGINE_UNAUTHENTICATED


@dataclass(slots=True)
class _Link:
    writer: asyncio.StreamWriter
    sealer: FrameMac  # client → engine


class TcpEngineClient:
    def __init__(
        self, address: Address, *, role: Role, key: bytes, connect_timeout: float = 2.0
    ) -> None:
        self.address = address
        self.role = role
        self._key = key
        self.connect_timeout = connect_timeout
        self._ids = count(1)
        self._pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._link: _Link | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._out: list[bytes] = []
        self._out_link: _Link | None = None
        self._flush_scheduled = False

    @classmethod
    def from_settings(
        cls, settings: Settings, role: Role, *, connect_timeout: float = 2.0
    ) -> TcpEngineClient:
        """The engine as configured (transport, address) with this role's current key;
        raises ConfigurationError in production when the key is not set."""
        address: Address = (
            settings.engine_socket_path()
            if settings.engine_transport == "unix"
            else (settings.engine_host, settings.engine_port)
        )
        key = settings.engine_keys(role.value)[0]
        return cls(address, role=role, key=key, connect_timeout=connect_timeout)

    async def _connection(self) -> _Link:
        link = self._link
        if link is not None and not link.writer.is_closing():
            return link
        async with self._lock:
            link = self._link
            if link is not None and not link.writer.is_closing():
                return link
            try:
                async with asyncio.timeout(self.connect_timeout):
                    if isinstance(self.address, Path):
                        reader, writer = await asyncio.open_unix_connection(str(self.address))
                    else:
                        reader, writer = await asyncio.open_connection(*self.address)
                    try:
                        link, opener = await self._handshake(reader, writer)
                    except BaseException:
                        writer.close()
                        raise
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                raise EngineUnavailableError(f"cannot reach the engine: {exc!r}") from None
            self._link = link
            self._reader_task = asyncio.create_task(self._read(reader, link, opener))
            return link

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[_Link, FrameMac]:
        kind, _, server_nonce = await p.read_frame(reader, max_frame=p.MAX_HANDSHAKE_FRAME)
        if kind != p.CHALLENGE or len(server_nonce) != auth.NONCE:
            raise ValueError("the engine did not send a CHALLENGE")
        client_nonce = auth.new_nonce()
        hello = auth.hello_body(self._key, self.role, server_nonce, client_nonce)
        writer.write(p.frame(p.HELLO, 0, hello))
        kind, _, body = await p.read_frame(reader, max_frame=p.MAX_HANDSHAKE_FRAME)
        if kind == p.ERROR:
            raise EngineAuthError(
                f"the engine refused role {self.role.value}: {body[2:].decode(errors='replace')}"
            )
        expected = auth.welcome_proof(self._key, self.role, server_nonce, client_nonce)
        if kind != p.WELCOME or not hmac.compare_digest(body, expected):
            raise EngineAuthError("the engine did not prove it holds this role's key")
        sealer, opener = auth.session_macs(self._key, server_nonce, client_nonce)
        return _Link(writer, sealer), opener

    async def _read(self, reader: asyncio.StreamReader, link: _Link, opener: FrameMac) -> None:
        writer = link.writer
        try:
            while True:
                kind, request_id, body = await p.read_frame(reader, opener)
                fut = self._pending.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result((kind, body))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            if self._link is link:
                self._link = None
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
                link = await self._connection()
                self._pending[request_id] = fut
                self._send(link, kind, request_id, body)
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

    def _send(self, link: _Link, kind: int, request_id: int, body: bytes) -> None:
        """Queue a frame; every frame queued during one event-loop pass leaves in one write
        (tagged in the order queued, which is the order written)."""
        if self._out_link is not link:
            self._flush()  # reconnected meanwhile: what was queued belongs to the old one
            self._out_link = link
        self._out.append(p.sealed_frame(link.sealer, kind, request_id, body))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        frames, self._out = self._out, []
        link = self._out_link
        if frames and link is not None and not link.writer.is_closing():
            link.writer.write(b"".join(frames))

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
        link: _Link | None
        try:
            async with asyncio.timeout(timeout):
                link = await self._connection()
        except TimeoutError:
            link = None
        except EngineUnavailableError as exc:
            return [exc if o is None else o for o in out]
        if link is None:
            gone = EngineUnavailableError(f"no connection to the engine within {timeout}s")
            return [gone if o is None else o for o in out]
        sent: list[tuple[int, int, asyncio.Future[tuple[int, bytes]]]] = []
        try:
            for i, body in bodies:
                request_id = next(self._ids) & 0xFFFFFFFF
                fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
                self._pending[request_id] = fut
                self._send(link, p.SUBMIT, request_id, body)
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

    async def balances(self, *, timeout: float = 30.0) -> tuple[int, list[p.BalanceRow]]:
        """(seq, every (trader, token, total, locked)) of the live engine, addresses lower-case."""
        _, answer = await self._request(p.BALANCES, b"", timeout)
        return p.decode_balances(answer)

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
        link, self._link = self._link, None
        if link is not None:
            link.writer.close()
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
