"""`InProcessEngineClient`: the production `EngineService` inside the caller's process.

For `hybridex dev` and tests: the same sequencer, journal (real files, real fsync), snapshots,
persister and feeds as the `hybridex engine` process, without the TCP hop::

    from backend.engine.feed_memory import MemoryFeedStore
    from backend.engine.inprocess import InProcessEngineClient
    from backend.engine.service import EngineService

    feeds = MemoryFeedStore()
    service = await EngineService.open(
        journal_dir=tmp_path / "journal",
        session_factory=None,          # or session_factory(make_engine(url)) to persist to a DB
        feeds=feeds,                   # FeedReader for the WebSocket layer
    )
    client = InProcessEngineClient(service)   # an EngineClient
    ...
    await client.close()               # closes the service too (owns_service=True)

The service must be opened and used on one event loop (it runs a task there).
"""

from __future__ import annotations

import asyncio

from backend.engine.client import BookSnapshot, EngineOutcomeUnknownError, Intake, Outcome
from backend.engine.service import EngineService
from backend.matching.commands import Command


class InProcessEngineClient:
    def __init__(self, service: EngineService, *, owns_service: bool = True) -> None:
        self.service = service
        self.owns_service = owns_service

    async def submit(
        self, command: Command, *, timeout: float, intake: Intake | None = None
    ) -> Outcome:
        fut = self.service.enqueue(command, intake)
        try:
            # shield: a timed-out caller must not cancel a command that may be journaled.
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise EngineOutcomeUnknownError(
                f"no answer from the engine within {timeout}s"
            ) from None

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        return self.service.book(market_id, depth)

    async def state(self) -> tuple[int, str]:
        return self.service.state()

    async def close(self) -> None:
        if self.owns_service:
            await self.service.close()
