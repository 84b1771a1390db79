"""The `hybridex engine` server: `EngineService` behind the `protocol` frames, on a unix
socket or TCP. Each connection authenticates as one role first (`backend.engine.auth`); a
frame that is not authenticated, or a command outside the role's allow-list, is refused,
logged and counted (`hybridex_engine_refused_frames_total`) and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from backend.domain.errors import ConfigurationError, DexError, ErrorCode
from backend.engine import auth
from backend.engine import protocol as p
from backend.engine.auth import FrameMac, Role
from backend.engine.client import EngineOutcomeUnknownError, Outcome
from backend.engine.metrics import REFUSED_FRAMES
from backend.engine.records import decode_submission, find_intake_refs
from backend.engine.service import EngineService
from backend.matching.codec import encode_events

log = structlog.get_logger(__name__)

HANDSHAKE_TIMEOUT_S = 5.0
UNIX_PATH_MAX = 107  # sun_path, less the terminating NUL


@dataclass(slots=True)
class _Session:
    role: Role
    opener: FrameMac  # client → engine
    sealer: FrameMac  # engine → client


class EngineServer:
    def __init__(self, service: EngineService, keys: Mapping[Role, Sequence[bytes]]) -> None:
        missing = [role.value for role in Role if not keys.get(role)]
        if missing:
            raise ConfigurationError("the engine needs a key for every role", missing=missing)
        self.service = service
        self.keys = {role: list(keys[role]) for role in Role}
        self._server: asyncio.Server | None = None
        self._socket: Path | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on TCP; returns the bound port (pass 0 for an ephemeral one)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("engine_listening", host=host, port=bound)
        return bound

    async def start_unix(self, path: Path) -> None:
        """Listen on a unix socket, readable by the owner and group only."""
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ConfigurationError(
                f"unix socket path longer than {UNIX_PATH_MAX} bytes: set a shorter "
                "HYBRIDEX_ENGINE_SOCKET",
                path=str(path),
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            _remove_stale_socket(path)
        old = os.umask(0o117)  # the socket is created 0660: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        finally:
            os.umask(old)
        self._socket = path
        log.info("engine_listening", socket=str(path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
        if self._socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket.unlink()  # after a crash the next start removes it instead

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        tasks: set[asyncio.Task[None]] = set()
        session: _Session | None = None
        try:
            session = await self._handshake(reader, writer)
            if session is None:
                return
            out = _Outbox(writer, session.sealer)
            while True:
                try:
                    kind, request_id, body = await p.read_frame(reader, session.opener)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if kind == p.SUBMIT:  # the hot path: no task, the answer is the future's callback
                    self._submit(out, session.role, request_id, body)
                    continue
                task = asyncio.create_task(self._handle(out, kind, request_id, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except p.FrameAuthError:
            # The stream cannot be trusted past a bad tag: refuse and hang up.
            assert session is not None
            self._refuse(writer, "bad_tag", session.role.value, 0, "frame tag does not match")
        except ValueError:
            log.warning("engine_bad_frame")
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Session | None:
        """Challenge the peer to prove a role key; None (refused, or gone) closes."""
        server_nonce = auth.new_nonce()
        writer.write(p.frame(p.CHALLENGE, 0, server_nonce))
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                kind, request_id, body = await p.read_frame(reader, max_frame=p.MAX_HANDSHAKE_FRAME)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            return None  # a probe that only connects, or a peer that never speaks
        except ValueError:
            self._refuse(writer, "unauthenticated", "unknown", 0, "authenticate first (HELLO)")
            return None
        if kind != p.HELLO:
            self._refuse(
                writer, "unauthenticated", "unknown", request_id,
                "authenticate first: the engine port needs a role key (HELLO)",
            )  # fmt: skip
            return None
        try:
            client_nonce, proof, claimed = auth.parse_hello(body)
            role = Role(claimed)
        except ValueError:
            self._refuse(writer, "bad_key", "unknown", request_id, "malformed HELLO or role")
            return None
        key = auth.match_key(self.keys[role], role, server_nonce, client_nonce, proof)
        if key is None:
            self._refuse(
                writer, "bad_key", role.value, request_id,
                f"wrong key for role {role.value} (HYBRIDEX_ENGINE_KEY_{role.name})",
            )  # fmt: skip
            return None
        proof = auth.welcome_proof(key, role, server_nonce, client_nonce)
        writer.write(p.frame(p.WELCOME, request_id, proof))
        opener, sealer = auth.session_macs(key, server_nonce, client_nonce)
        return _Session(role, opener, sealer)

    def _refuse(
        self, writer: asyncio.StreamWriter, reason: str, role: str, request_id: int, message: str
    ) -> None:
        """A plain ERROR (the peer holds no session key to check a tag), counted and logged."""
        REFUSED_FRAMES.labels(reason, role).inc()
        log.warning("engine_frame_refused", reason=reason, role=role, peer=_peer(writer))
        code = ErrorCode.ENGINE_UNAUTHENTICATED
        if not writer.is_closing():
            writer.write(p.frame(p.ERROR, request_id, p.U16.pack(code.value) + message.encode()))

    def _submit(self, out: _Outbox, role: Role, request_id: int, body: bytes) -> None:
        try:
            command, intake, intake_bytes = decode_submission(body)
        except Exception as exc:
            answer = _error_answer(exc)
            if answer is not None:
                out.send(answer[0], request_id, answer[1])
            return
        if not auth.allowed(role, command):
            name = type(command).__name__
            REFUSED_FRAMES.labels("forbidden", role.value).inc()
            log.warning("engine_command_forbidden", role=role.value, command=name)
            message = f"{name} is not allowed for role {role.value}".encode()
            out.send(p.ERROR, request_id, p.U16.pack(ErrorCode.ENGINE_FORBIDDEN.value) + message)
            return
        fut = self.service.enqueue(command, intake, intake_bytes)

        def answered(f: asyncio.Future[Outcome]) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None:
                outcome = f.result()
                payload = outcome.answer
                if payload is None:
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
        service = self.service  # SUBMIT never comes here: `_submit` checks the allow-list
        if kind in (p.BOOK, p.STATE, p.BALANCES):
            await service.settled()
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
        if kind == p.BALANCES:
            seq, rows = service.balances()  # on the loop: one seq; encoding is off it
            return p.BALANCES_ANSWER, await asyncio.to_thread(p.encode_balances, seq, rows)
        raise ValueError(f"unknown request kind {kind}")


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer) if peer else "unix"


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by an engine that died; refuse to take over a live one."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise ConfigurationError("another engine is listening on this socket", path=str(path))


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

    __slots__ = ("_frames", "_mac", "_scheduled", "_writer")

    def __init__(self, writer: asyncio.StreamWriter, mac: FrameMac) -> None:
        self._writer = writer
        self._mac = mac
        self._frames: list[bytes] = []
        self._scheduled = False

    def send(self, kind: int, request_id: int, body: bytes | bytearray) -> None:
        # tagged in the order appended, which is the order written
        head = p.HEADER.pack(len(body) + 5 + auth.TAG, kind, request_id)
        self._frames.append(head)
        self._frames.append(bytes(body))
        self._frames.append(self._mac.tag(head, body))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        frames, self._frames = self._frames, []
        if not self._writer.is_closing():
            self._writer.write(b"".join(frames))
