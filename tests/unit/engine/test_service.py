"""EngineService: group commit, acknowledgement order, replay from snapshot + journal."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import structlog

from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.engine.client import Outcome
from backend.engine.feed_memory import MemoryFeedStore
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.journal import Journal, JournalBehindError
from backend.engine.persister import read_cursor
from backend.engine.records import decode_record
from backend.engine.service import EngineService
from backend.matching.engine import Engine
from backend.matching.events import OrderAccepted
from tests.unit.engine.helpers import MARKET, setup, workload


def _clean_replay(journal_dir: Path) -> str:
    engine = Engine()
    for _, payload in Journal(journal_dir).read_from(1):
        engine.apply(decode_record(payload)[0])
    return engine.state_hash()


def test_concurrent_submits_all_acknowledged_with_contiguous_seqs(tmp_path: Path) -> None:
    async def main() -> list[Outcome]:
        service = await EngineService.open(journal_dir=tmp_path, feeds=MemoryFeedStore())
        client = InProcessEngineClient(service)
        for cmd, intake in setup(10):
            await client.submit(cmd, timeout=5, intake=intake)
        outcomes = await asyncio.gather(
            *(client.submit(c, timeout=5, intake=i) for c, i in workload(2_000, 10))
        )
        book = await client.book(MARKET, 5)
        assert book.seq == service.engine.last_seq
        assert book.bids
        assert book.asks
        service.engine.validate_invariants()
        await client.close()
        return list(outcomes)

    outcomes = asyncio.run(main())
    seqs = [o.seq for o in outcomes]
    assert sorted(seqs) == list(range(seqs[0], seqs[0] + 2_000))
    assert any(isinstance(e, OrderAccepted) for o in outcomes for e in o.events)
    assert Journal(tmp_path).last_seq == 21 + 2_000


def test_an_unencodable_command_is_refused_alone_and_its_group_goes_on(tmp_path: Path) -> None:
    """One command of a group that cannot be journaled (an amount that is not an int) fails
    its own submit; the others of the same group are journaled with contiguous seqs."""

    async def main() -> None:
        service = await EngineService.open(journal_dir=tmp_path, feeds=MemoryFeedStore())
        client = InProcessEngineClient(service)
        for cmd, intake in setup(4):
            await client.submit(cmd, timeout=5, intake=intake)
        before = service.engine.last_seq
        good = [c for c, _ in workload(6, 4)]
        bad = dataclasses.replace(good[2], amount="12")  # type: ignore[arg-type]
        group = [*good[:2], bad, *good[3:]]
        results = await asyncio.gather(
            *(client.submit(c, timeout=5) for c in group), return_exceptions=True
        )
        assert isinstance(results[2], TypeError | ValueError)
        seqs = [r.seq for r in results if isinstance(r, Outcome)]
        assert seqs == list(range(before + 1, before + 6))
        assert Journal(tmp_path).last_seq == before + 5
        await client.close()

    asyncio.run(main())


def test_restart_from_snapshot_and_journal_gives_same_state(tmp_path: Path) -> None:
    async def run(commands: int, snapshot_every: int) -> tuple[int, str]:
        service = await EngineService.open(
            journal_dir=tmp_path, snapshot_every=snapshot_every, group_max=50
        )
        if service.engine.last_seq == 0:
            for cmd, intake in setup(5):
                await service.submit(cmd, intake)
        await asyncio.gather(*(service.submit(c, i) for c, i in workload(commands, 5, seed=3)))
        state = service.state()
        await service.close(snapshot=False)
        return state

    first = asyncio.run(run(1_500, snapshot_every=400))
    assert len(list((tmp_path / "snapshots").glob("*.snap"))) >= 1

    async def reopen() -> tuple[int, str, int]:
        service = await EngineService.open(journal_dir=tmp_path)
        state = service.state()
        replayed = service.replayed
        await service.close(snapshot=False)
        return (*state, replayed)

    seq, digest, replayed = asyncio.run(reopen())
    assert (seq, digest) == first
    assert 0 < replayed < 1_500  # started from a snapshot, not from scratch
    assert digest == _clean_replay(tmp_path)


# ---------------------------------------------------------------------- journal behind


async def _run_and_lose_the_tail(
    journal_dir: Path, *, feeds: MemoryFeedStore | None = None, url: str | None = None
) -> int:
    """Journal and consume 300 commands (persister, feeds, a snapshot), then lose the journal's
    last group as a disk fault or a bad restore would. Returns the journal's new last seq."""
    factory = None
    if url is not None:
        upgrade(url)
        factory = session_factory(make_engine(url))
    service = await EngineService.open(
        journal_dir=journal_dir, feeds=feeds, session_factory=factory, group_max=50
    )
    for cmd, intake in setup(5):
        await service.submit(cmd, intake)
    await asyncio.gather(*(service.submit(c, i) for c, i in workload(300, 5, seed=4)))
    await service.close(snapshot=url is None and feeds is None)
    journal = Journal(journal_dir)
    ((_, path),) = journal.segments()
    journal.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a torn "tail": moved aside on the next open
    again = Journal(journal_dir)
    again.close()
    return again.last_seq


def test_a_failed_snapshot_is_logged_and_the_engine_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots are written on a thread of their own, whose result nobody awaits: a failure
    (here a full disk) must be logged there, and commands go on being applied and journaled."""

    def disk_full(seq: int, body: bytes) -> Path:
        raise OSError(28, "No space left on device")

    async def run() -> tuple[int, str]:
        service = await EngineService.open(journal_dir=tmp_path, snapshot_every=50)
        monkeypatch.setattr(service.snapshots, "write", disk_full)
        for cmd, intake in setup(3):
            await service.submit(cmd, intake)
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(*(service.submit(c, i) for c, i in workload(300, 3)))
            await asyncio.gather(*service._snapshot_futures)
        failed = [e for e in logs if e["event"] == "engine_snapshot_failed"]
        assert failed
        assert all(e["log_level"] == "error" for e in failed)
        state = service.state()
        await service.close(snapshot=False)
        return state

    state = asyncio.run(run())
    assert state[0] == len(setup(3)) + 300
    assert not list((tmp_path / "snapshots").glob("*.snap"))

    async def reopen() -> tuple[int, str]:
        service = await EngineService.open(journal_dir=tmp_path)
        state = service.state()
        await service.close(snapshot=False)
        return state

    assert asyncio.run(reopen()) == state  # replayed from the journal alone


def test_start_refused_when_the_journal_is_behind_the_persister(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    last = asyncio.run(_run_and_lose_the_tail(tmp_path / "journal", url=url))
    cursor = read_cursor(session_factory(make_engine(url)))
    assert cursor > last

    async def reopen() -> None:
        factory = session_factory(make_engine(url))
        await EngineService.open(journal_dir=tmp_path / "journal", session_factory=factory)

    with pytest.raises(JournalBehindError, match=f"persister cursor is {cursor}"):
        asyncio.run(reopen())
    assert Journal(tmp_path / "journal").last_seq == last  # nothing appended


def test_start_refused_when_the_journal_is_behind_the_feeds(tmp_path: Path) -> None:
    feeds = MemoryFeedStore()
    last = asyncio.run(_run_and_lose_the_tail(tmp_path, feeds=feeds))
    published = asyncio.run(feeds.load_state())[0]
    assert published > last

    async def reopen() -> None:
        await EngineService.open(journal_dir=tmp_path, feeds=feeds)

    with pytest.raises(JournalBehindError, match=f"feed store's engine seq is {published}"):
        asyncio.run(reopen())


def test_start_refused_when_a_snapshot_is_ahead_of_the_journal(tmp_path: Path) -> None:
    asyncio.run(_run_and_lose_the_tail(tmp_path))

    async def reopen() -> None:
        await EngineService.open(journal_dir=tmp_path)

    with pytest.raises(JournalBehindError, match="a snapshot exists at seq 311"):
        asyncio.run(reopen())
