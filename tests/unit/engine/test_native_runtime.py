"""The engine process on the native core: a journal of either engine replays in the other, and a
failure inside the core stops the process, whose restart replays to the same state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backend.engine import service as service_module
from backend.engine.client import EngineOutcomeUnknownError
from backend.engine.replay import replay_from_scratch
from backend.engine.service import EngineService
from backend.matching import NativeEngine, PythonEngine
from backend.matching.commands import Command, SweepExpired
from backend.matching.events import Event
from tests.unit.engine.helpers import setup, workload


async def _run(journal_dir: Path, engine: str, commands: int) -> tuple[int, str]:
    service = await EngineService.open(journal_dir=journal_dir, engine=engine, group_max=50)
    if service.engine.last_seq == 0:
        for cmd, intake in setup(5):
            await service.submit(cmd, intake)
    await asyncio.gather(*(service.submit(c, i) for c, i in workload(commands, 5, seed=7)))
    state = service.state()
    await service.close(snapshot=True)
    return state


@pytest.mark.parametrize(("writer", "reader"), [("native", "python"), ("python", "native")])
def test_a_journal_of_either_engine_replays_in_the_other(
    tmp_path: Path, writer: str, reader: str
) -> None:
    state = asyncio.run(_run(tmp_path, writer, 1_000))
    assert replay_from_scratch(tmp_path, engine=reader) == state
    assert replay_from_scratch(tmp_path, engine=writer) == state

    async def reopen() -> tuple[int, str]:
        # From the writer's snapshot (taken at close) and journal, in the other engine.
        service = await EngineService.open(journal_dir=tmp_path, engine=reader)
        assert type(service.engine) is (NativeEngine if reader == "native" else PythonEngine)
        assert service.replayed == 0
        got = service.state()
        await service.close(snapshot=False)
        return got

    assert asyncio.run(reopen()) == state


class _PanicsAt(NativeEngine):
    """The native engine, with a genuine Rust panic when it reaches one command."""

    at_seq = 0

    def apply(self, command: Command) -> list[Event]:
        if command.seq == self.at_seq:
            self._panic_for_test()
        return super().apply(command)

    def apply_answer(self, command: Command) -> tuple[list[Event], bytes | bytearray]:
        if command.seq == self.at_seq:  # the engine service's path
            self._panic_for_test()
        return super().apply_answer(command)


def test_a_panic_in_the_core_stops_the_engine_and_a_restart_replays_to_the_same_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def classes(kind: str | None = None) -> Any:
        return _PanicsAt

    async def crash() -> None:
        monkeypatch.setattr(service_module, "engine_class", classes)
        service = await EngineService.open(journal_dir=tmp_path, group_max=50)
        for cmd, intake in setup(5):
            await service.submit(cmd, intake)
        _PanicsAt.at_seq = service.engine.last_seq + 301
        results = await asyncio.gather(
            *(service.submit(c, i) for c, i in workload(600, 5, seed=11)),
            return_exceptions=True,
        )
        await asyncio.wait_for(service.stopped.wait(), 5)
        assert isinstance(service.failed, RuntimeError)
        assert service.engine.poisoned is not None
        assert any(isinstance(r, EngineOutcomeUnknownError) for r in results)
        with pytest.raises(RuntimeError, match="engine stopped"):
            service.engine.apply(SweepExpired(10**9, 0))
        await service.close(snapshot=False)
        monkeypatch.undo()

    asyncio.run(crash())

    async def restart() -> tuple[int, str]:
        service = await EngineService.open(journal_dir=tmp_path)
        assert type(service.engine) is NativeEngine
        state = service.state()
        await service.close(snapshot=False)
        return state

    seq, digest = asyncio.run(restart())
    assert seq >= _PanicsAt.at_seq  # the journaled command the core panicked on is applied now
    assert (seq, digest) == replay_from_scratch(tmp_path, engine="python")
