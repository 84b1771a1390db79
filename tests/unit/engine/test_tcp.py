"""TCP client ↔ server round trip against a real service, authenticated per role."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from backend.domain.errors import DexError, ErrorCode
from backend.engine import protocol as p
from backend.engine.auth import Role
from backend.engine.client import (
    EngineOutcomeUnknownError,
    EngineUnavailableError,
    Intake,
    Outcome,
)
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.journal import PendingGroup
from backend.engine.server import EngineServer
from backend.engine.service import EngineService
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.events import MarketAdded, OrderAccepted
from tests.unit.engine.helpers import (
    KEYS,
    MARKET,
    SERVER_KEYS,
    RoleClients,
    accept_handshake,
    setup,
    workload,
)


def api_client(port: int) -> TcpEngineClient:
    return TcpEngineClient(("127.0.0.1", port), role=Role.API, key=KEYS[Role.API])


def test_submit_book_and_state_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service, SERVER_KEYS)
        port = await server.start("127.0.0.1", 0)
        clients = RoleClients(("127.0.0.1", port))
        client = clients[Role.API]
        outcomes = [await clients.submit(c, timeout=5, intake=i) for c, i in setup(3)]
        assert isinstance(outcomes[0].events[0], MarketAdded)
        work = await asyncio.gather(
            *(client.submit(c, timeout=5, intake=i) for c, i in workload(300, 3))
        )
        assert sorted(o.seq for o in work) == list(range(8, 308))
        assert any(isinstance(e, OrderAccepted) for o in work for e in o.events)
        book = await client.book(MARKET, 3)
        assert book == service.book(MARKET, 3)
        assert await client.state() == service.state()
        with pytest.raises(DexError) as err:
            await client.book("NOPE-NOPE", 3)
        assert err.value.code is ErrorCode.UNKNOWN_MARKET
        await clients.close()
        await server.stop()
        await service.close()
        # The engine is gone: the caller learns it quickly, as a retryable error, and that
        # nothing was sent (not "outcome unknown").
        with pytest.raises(EngineUnavailableError) as gone:
            await api_client(port).submit(workload(1, 1)[0][0], timeout=1)
        assert not isinstance(gone.value, EngineOutcomeUnknownError)

    asyncio.run(main())


def test_request_sent_without_answer_is_outcome_unknown() -> None:
    """An engine that reads the command and dies (or stays silent) may have journaled it."""

    async def main() -> None:
        async def dies_after_reading(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await accept_handshake(reader, writer)
            await p.read_frame(reader)
            writer.close()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer)
            await p.read_frame(reader)
            await asyncio.sleep(5)

        command, intake = workload(1, 1)[0]
        for handler in (dies_after_reading, silent):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            client = api_client(port)
            with pytest.raises(EngineOutcomeUnknownError):
                await client.submit(command, timeout=0.5, intake=intake)
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_find_refs_tells_which_commands_were_journaled(tmp_path: Path) -> None:
    """What a submitter whose answer was lost asks before sending again (indexer outbox)."""

    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service, SERVER_KEYS)
        port = await server.start("127.0.0.1", 0)
        clients = RoleClients(("127.0.0.1", port))
        client = clients[Role.INDEXER]
        try:
            commands = setup(2)
            for command, intake in commands[:2]:
                await clients.submit(command, timeout=5, intake=intake)
            ref = b"\x42" * 32
            credit = commands[2][0]
            sent = await client.submit(credit, timeout=5, intake=Intake(signed_hash=ref))
            for command, intake in commands[3:]:
                await clients.submit(command, timeout=5, intake=intake)
            last = service.engine.last_seq
            other = b"\x43" * 32
            find = client.find_refs
            assert await find([ref, other], after_seq=0, before_seq=last + 1) == {ref: sent.seq}
            assert await find([ref], after_seq=sent.seq, before_seq=last + 1) == {}
            assert await find([ref], after_seq=0, before_seq=sent.seq) == {}
            assert await find([], after_seq=0, before_seq=last + 1) == {}
        finally:
            await clients.close()
            await server.stop()
            await service.close()

    asyncio.run(main())


def test_submit_many_answers_in_order_with_the_engines_refusals(tmp_path: Path) -> None:
    """One call puts a batch in flight: seqs follow the list, a refused command is its
    DexError in its slot, and both clients give the same answers."""

    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service, SERVER_KEYS)
        port = await server.start("127.0.0.1", 0)
        clients = RoleClients(("127.0.0.1", port))
        client = clients[Role.API]
        inproc = InProcessEngineClient(service, owns_service=False)
        listing, *credits = setup(3)
        first = await clients[Role.OPERATOR].submit_many([listing], timeout=5)
        first += await clients[Role.INDEXER].submit_many(credits, timeout=5)
        assert [o.seq for o in first if isinstance(o, Outcome)] == list(range(1, 8))
        batch = workload(200, 3)
        for c in (client, inproc):
            results = await c.submit_many(batch, timeout=5)
            assert len(results) == len(batch)
            assert all(isinstance(r, Outcome) for r in results)
            seqs = [r.seq for r in results if isinstance(r, Outcome)]
            assert seqs == list(range(seqs[0], seqs[0] + len(batch)))
        assert await client.submit_many([], timeout=5) == []
        await clients.close()
        await server.stop()
        await service.close()

    asyncio.run(main())


def test_submit_many_without_answer_is_outcome_unknown_and_without_engine_unavailable() -> None:
    """A batch that went out but got no answer may be journaled: every command is
    `EngineOutcomeUnknownError`, never a refusal; no engine at all: nothing was sent."""

    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer)
            while True:
                await p.read_frame(reader)

        async def dies_after_reading(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await accept_handshake(reader, writer)
            await p.read_frame(reader)
            writer.close()

        batch = workload(20, 2)
        for handler in (silent, dies_after_reading):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            client = api_client(port)
            results = await client.submit_many(batch, timeout=0.5)
            assert len(results) == len(batch)
            assert all(isinstance(r, EngineOutcomeUnknownError) for r in results)
            assert not client._pending  # nothing left waiting for an answer
            await client.close()
            server.close()
            await server.wait_closed()
        results = await api_client(port).submit_many(batch, timeout=0.5)
        assert all(
            isinstance(r, EngineUnavailableError) and not isinstance(r, EngineOutcomeUnknownError)
            for r in results
        )

    asyncio.run(main())


def test_in_process_submit_many_timeout_is_outcome_unknown_and_the_command_still_applies(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        client = InProcessEngineClient(service)
        await client.submit_many(setup(1), timeout=5)
        begin = service.journal.begin_group

        class SlowDisk:
            """The group, synced 0.3 s late: the loop's wake-up comes then, not before."""

            def __init__(self, pending: PendingGroup, notify_fd: int | None) -> None:
                self.pending, self.at = pending, time.monotonic() + 0.3
                assert notify_fd is not None
                threading.Timer(0.3, os.write, (notify_fd, b"\x01")).start()

            def done(self) -> bool:
                return time.monotonic() >= self.at and self.pending.done()

            def wait(self) -> int:
                return self.pending.wait()

        def begin_slowly(payloads: list[bytes], notify_fd: int | None = None) -> SlowDisk:
            return SlowDisk(begin(payloads), notify_fd)

        service.journal.begin_group = begin_slowly  # type: ignore[method-assign]
        batch = setup(1)[1:]
        results = await client.submit_many(batch, timeout=0.05)
        assert all(isinstance(r, EngineOutcomeUnknownError) for r in results)
        await asyncio.sleep(0.5)
        seq, _ = service.state()
        assert seq == 3 + len(batch)  # journaled and applied all the same (not cancelled)
        await client.close()

    asyncio.run(main())
