"""TCP client ↔ server round trip against a real service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.domain.errors import DexError, ErrorCode
from backend.engine.client import EngineUnavailableError
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
        # The engine is gone: the caller learns it quickly, as a retryable error.
        with pytest.raises(EngineUnavailableError):
            await TcpEngineClient("127.0.0.1", port).submit(setup(1)[1][0], timeout=1)

    asyncio.run(main())
