"""TCP client ↔ server round trip against a real service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.domain.errors import DexError, ErrorCode
from backend.engine import protocol as p
from backend.engine.client import EngineOutcomeUnknownError, EngineUnavailableError, Intake
from backend.engine.server import EngineServer
from backend.engine.service import EngineService
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.events import MarketAdded, OrderAccepted
from tests.unit.engine.helpers import MARKET, setup, workload


def test_submit_book_and_state_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path)
        server = EngineServer(service)
        port = await server.start("127.0.0.1", 0)
        client = TcpEngineClient("127.0.0.1", port)
        outcomes = [await client.submit(c, timeout=5, intake=i) for c, i in setup(3)]
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
        await client.close()
        await server.stop()
        await service.close()
        # The engine is gone: the caller learns it quickly, as a retryable error, and that
        # nothing was sent (not "outcome unknown").
        with pytest.raises(EngineUnavailableError) as gone:
            await TcpEngineClient("127.0.0.1", port).submit(setup(1)[1][0], timeout=1)
        assert not isinstance(gone.value, EngineOutcomeUnknownError)

    asyncio.run(main())


def test_request_sent_without_answer_is_outcome_unknown() -> None:
    """An engine that reads the command and dies (or stays silent) may have journaled it."""

    async def main() -> None:
        async def dies_after_reading(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await p.read_frame(reader)
            writer.close()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await p.read_frame(reader)
            await asyncio.sleep(5)

        command, intake = setup(1)[0]
        for handler in (dies_after_reading, silent):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            client = TcpEngineClient("127.0.0.1", port)
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
        server = EngineServer(service)
        port = await server.start("127.0.0.1", 0)
        client = TcpEngineClient("127.0.0.1", port)
        try:
            commands = setup(2)
            for command, intake in commands[:2]:
                await client.submit(command, timeout=5, intake=intake)
            ref = b"\x42" * 32
            credit = commands[2][0]
            sent = await client.submit(credit, timeout=5, intake=Intake(signed_hash=ref))
            for command, intake in commands[3:]:
                await client.submit(command, timeout=5, intake=intake)
            last = service.engine.last_seq
            other = b"\x43" * 32
            find = client.find_refs
            assert await find([ref, other], after_seq=0, before_seq=last + 1) == {ref: sent.seq}
            assert await find([ref], after_seq=sent.seq, before_seq=last + 1) == {}
            assert await find([ref], after_seq=0, before_seq=sent.seq) == {}
            assert await find([], after_seq=0, before_seq=last + 1) == {}
        finally:
            await client.close()
            await server.stop()
            await service.close()

    asyncio.run(main())
