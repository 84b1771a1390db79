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
from collections.abc import Sequence

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

    async def submit_many(
        self, commands: Sequence[tuple[Command, Intake | None]], *, timeout: float
    ) -> list[Outcome | BaseException]:
        """Enqueues every command (in order: the engine sequences them so), then waits for all
        with one timeout. `asyncio.wait` never cancels what it waits for, so a command still
        unanswered at the timeout stays in the engine's queue: outcome unknown, not refused."""
        enqueue = self.service.enqueue
        futures = [enqueue(command, intake) for command, intake in commands]
        pending = [f for f in futures if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        out: list[Outcome | BaseException] = []
        for fut in futures:
            if not fut.done():
                fut.add_done_callback(_discard)
                out.append(EngineOutcomeUnknownError(f"no answer from the engine in {timeout}s"))
            elif fut.cancelled():
                out.append(EngineOutcomeUnknownError("the engine dropped the command's answer"))
            else:
                exc = fut.exception()
                out.append(fut.result() if exc is None else exc)
        return out

    async def book(self, market_id: str, depth: int) -> BookSnapshot:
        await self.service.settled()
        return self.service.book(market_id, depth)

    async def state(self) -> tuple[int, str]:
        await self.service.settled()
        return self.service.state()

    async def balances(self) -> tuple[int, list[tuple[str, str, int, int]]]:
        await self.service.settled()
        return self.service.balances()

    async def close(self) -> None:
        if self.owns_service:
            await self.service.close()


def _discard(fut: asyncio.Future[Outcome]) -> None:
    """Retrieves a late answer nobody waits for any more (no "exception never retrieved")."""
    if not fut.cancelled():
        fut.exception()
