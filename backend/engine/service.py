"""`EngineService`: the sequencer around the pure engine — the single writer (SPEC §5, §11).

One asyncio task takes every pending submission (up to `group_max`), stamps each with the next
`seq` and `now` (unix seconds, read here at the edge: the engine never reads a clock), encodes
them, appends the group to the journal with ONE fsync on a dedicated thread (the next group
accumulates meanwhile), then applies each command and resolves its caller's future with
`Outcome(seq, events)`: acknowledgement strictly after the fsync. Consumers (DB persister,
feeds) get the events afterwards and never hold up an acknowledgement.

Start-up: the newest snapshot not beyond what every consumer has already stored, then replay
of the journal after it (consumers skip what they have: they are idempotent by seq), with a
progress line every 100k commands. Taking an older snapshot when a consumer lags is what lets
a restart re-persist and republish the events of commands journaled but never consumed.
A journal that ends before the persister's cursor, the feed store's engine seq or a snapshot
lost acknowledged commands: start-up refuses it (`JournalBehindError`), as it refuses a
damaged journal (`JournalCorruptError`); docs/runbook.md says what to do.

Usage (tests, `hybridex dev`)::

    feeds = MemoryFeedStore()
    service = await EngineService.open(journal_dir=tmp_path / "journal", feeds=feeds,
                                       session_factory=None)   # or a sessionmaker: DB persister
    client = InProcessEngineClient(service)
    outcome = await client.submit(Credit(0, 0, trader, token, 10**18), timeout=5)
    ...
    await service.close()   # finishes the current group, flushes consumers, snapshots
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from backend.domain.errors import DexError, ErrorCode
from backend.domain.types import Side
from backend.engine.client import (
    BookSnapshot,
    EngineOutcomeUnknownError,
    EngineUnavailableError,
    Intake,
    Outcome,
)
from backend.engine.feeds import FeedMessage, FeedStore
from backend.engine.journal import (
    DEFAULT_SEGMENT_BYTES,
    Journal,
    JournalBehindError,
    JournalCorruptError,
    PendingGroup,
)
from backend.engine.publisher import FeedPublisher
from backend.engine.records import (
    Applied,
    decode_record,
    encode_intake,
    stamp_record_with,
    stamp_records,
)
from backend.engine.snapshots import SnapshotStore
from backend.matching import engine_class
from backend.matching.commands import (
    ArmCancelOnDisconnect,
    CancelAll,
    CancelOnDisconnect,
    CancelOrder,
    Command,
    PlaceOrder,
    ReserveWithdrawal,
    ScheduleCancel,
    SweepExpired,
)
from backend.matching.view import EngineView, FrozenState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger(__name__)

PROGRESS_EVERY = 100_000
QUIET_BATCH = 4_096
CONSUMER_BATCH = 1_000
# Feeds (market data, order and balance channels) are written to Redis at most this often,
# taking every group applied meanwhile: below full load groups are small, and a Redis write
# per group took 0.8 writes a command and ~7% more of the engine process's CPU at 1,000
# commands/s (docs/benchmarks.md). Subscribers see updates up to this much later; answers,
# the journal and the persister never wait for feeds.
FEED_MIN_INTERVAL_S = 0.005
# Backpressure (docs/runbook.md "The database is behind the engine"). Past `persist_lag_max`
# applied-but-unstored commands, new orders and withdrawals are refused; cancels pass until
# CANCEL_LAG_FACTOR times that, so the persister's queue stays bounded even under a cancel
# flood. What the indexer and settlement send (credits, debits, freezes, releases, reverts)
# always passes: it is paced by the chain, and refusing it would only delay money moves.
CANCEL_LAG_FACTOR = 2
_SHED_AT_LAG = (PlaceOrder, ReserveWithdrawal)
# The switches only ever cancel (or arm a cancel): they pass with the cancels.
_SHED_AT_CANCEL_LAG = (
    CancelOrder,
    CancelAll,
    ScheduleCancel,
    ArmCancelOnDisconnect,
    CancelOnDisconnect,
)


class EventSink(Protocol):
    """A consumer of applied commands that stores its own cursor (the DB persister)."""

    def cursor(self) -> int: ...
    @property
    def lag(self) -> int: ...
    def push(self, batch: list[Applied]) -> None: ...
    def close(self) -> None: ...


# (command, its intake, its future, the intake encoded for the journal: b"" for none)
_Pending = tuple[Command, Intake | None, asyncio.Future[Outcome] | None, bytes]


def _check_not_behind(
    journal: Journal, snapshots: SnapshotStore, sink: EventSink | None, published: int
) -> None:
    """Refuse a journal that ends before what the consumers or a snapshot already hold: its
    tail was lost, and the next commands would reuse those seqs — the persister would skip
    them as already stored and the feeds would publish under old numbers."""
    ahead = []
    if sink is not None and sink.cursor() > journal.last_seq:
        ahead.append(f"the database's persister cursor is {sink.cursor()}")
    if published > journal.last_seq:
        ahead.append(f"the feed store's engine seq is {published}")
    newest = max(snapshots.seqs(), default=0)
    if newest > journal.last_seq:
        ahead.append(f"a snapshot exists at seq {newest}")
    if ahead:
        raise JournalBehindError(
            f"journal {journal.directory} ends at seq {journal.last_seq} but "
            + ", ".join(ahead)
            + ": acknowledged commands are missing from the journal; refusing to start — see "
            "docs/runbook.md, 'Engine journal behind'"
        )


class EngineService:
    def __init__(
        self,
        *,
        journal: Journal,
        snapshots: SnapshotStore,
        engine: EngineView,
        sink: EventSink | None,
        feeds: FeedStore | None,
        publisher: FeedPublisher | None,
        snapshot_every: int,
        group_max: int,
        sweep_interval: float,
        clock: Callable[[], float],
        session_factory: sessionmaker[Session] | None,
        persist_lag_max: int | None = None,
    ) -> None:
        self.journal = journal
        self.snapshots = snapshots
        self.engine = engine
        self.sink = sink
        self.feeds = feeds
        self.publisher = publisher
        self.snapshot_every = snapshot_every
        self.group_max = group_max
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.session_factory = session_factory
        self.persist_lag_max = persist_lag_max
        self.refused_for_lag: dict[str, int] = {}
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._feed_queue: asyncio.Queue[tuple[int, list[FeedMessage]] | None] = asyncio.Queue()
        self._wake: tuple[int, int] | None = None  # the journal writer's wake-up pipe
        self._journal_waits: list[tuple[PendingGroup, asyncio.Future[int]]] = []
        self._snapshot_thread = ThreadPoolExecutor(1, thread_name_prefix="engine-snapshot")
        self._last_now = 0
        self._last_snapshot_seq = engine.last_seq
        self._snapshot_futures: list[asyncio.Future[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.failed: BaseException | None = None
        self.replayed = 0
        self.replay_seconds = 0.0
        self.stopped = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()

    # ------------------------------------------------------------------ start-up

    @classmethod
    async def open(
        cls,
        *,
        journal_dir: Path,
        session_factory: sessionmaker[Session] | None = None,
        feeds: FeedStore | None = None,
        sink: EventSink | None = None,
        snapshot_every: int = 100_000,
        group_max: int = 1_000,
        sweep_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        keep_snapshots: int = 3,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fee_recipient: str | None = None,
        persist_lag_max: int | None = None,
        engine: str | None = None,
        stream: bool = False,
    ) -> EngineService:
        """Load the newest usable snapshot, replay the journal after it, start the loop."""
        journal_dir = Path(journal_dir)
        journal = Journal(journal_dir, segment_bytes=segment_bytes)
        snapshots = SnapshotStore(journal_dir / "snapshots", keep=keep_snapshots)
        if sink is None and session_factory is not None:
            from backend.engine.persister import DbPersister

            sink = DbPersister(session_factory, stream=stream)
        try:
            published, channel_seqs = 0, dict[str, int]()
            if feeds is not None:
                published, channel_seqs = await feeds.load_state()
            _check_not_behind(journal, snapshots, sink, published if feeds is not None else 0)
        except BaseException:
            journal.close()
            if sink is not None:
                sink.close()
            raise
        floor = journal.last_seq
        if sink is not None:
            floor = min(floor, sink.cursor())
        if feeds is not None:
            floor = min(floor, published)
        found = snapshots.latest_at_most(floor)
        # Either engine loads the other's snapshots and replays the other's journal.
        engine_cls = engine_class(engine)
        state: EngineView
        if found is not None:
            state = engine_cls.from_snapshot(found[1])
        else:
            state = engine_cls() if fee_recipient is None else engine_cls(fee_recipient)
        publisher = None if feeds is None else FeedPublisher(state, published, channel_seqs)
        service = cls(
            journal=journal,
            snapshots=snapshots,
            engine=state,
            sink=sink,
            feeds=feeds,
            publisher=publisher,
            snapshot_every=snapshot_every,
            group_max=group_max,
            sweep_interval=sweep_interval,
            clock=clock,
            session_factory=session_factory,
            persist_lag_max=persist_lag_max,
        )
        log.info(
            "engine_starting",
            snapshot_seq=state.last_seq,
            engine=type(state).__name__,
            journal_seq=journal.last_seq,
            consumer_floor=floor,
        )
        try:
            await service._replay()
        except BaseException:
            journal.close()
            if sink is not None:
                sink.close()
            raise
        service._start()
        return service

    async def _replay(self) -> None:
        engine, publisher, sink = self.engine, self.publisher, self.sink
        start = time.perf_counter()
        first = engine.last_seq + 1
        # Records up to `quiet` are ones every consumer already holds (each skips what it has,
        # by seq): they only rebuild the engine's state, so they are applied without building
        # commands or events (the native core reads them straight from the journal's bytes).
        quiet = self.journal.last_seq
        if sink is not None:
            quiet = min(quiet, sink.cursor())
        if publisher is not None:
            quiet = min(quiet, publisher.published_seq)
        n = 0
        quiet_applied = False
        batch: list[Applied] = []
        messages: list[FeedMessage] = []
        pending: list[bytes] = []
        pending_seq = first
        for seq, payload in self.journal.read_from(first):
            if seq <= quiet:
                if not pending:
                    pending_seq = seq
                pending.append(payload)
                if len(pending) >= QUIET_BATCH:
                    before = n
                    n += self._apply_quietly(pending, pending_seq)
                    pending, quiet_applied = [], True
                    if n // PROGRESS_EVERY > before // PROGRESS_EVERY:
                        self._progress(n, seq, start)
                continue
            if pending:
                n += self._apply_quietly(pending, pending_seq)
                pending, quiet_applied = [], True
            if quiet_applied and publisher is not None:
                publisher.reset(engine)  # it saw none of the quiet records
                quiet_applied = False
            command, intake = decode_record(payload)
            if command.seq != seq:
                raise JournalCorruptError(
                    self.journal.directory, -1, seq, f"its record holds command seq {command.seq}"
                )
            level = publisher.before(engine, command) if publisher is not None else None
            events = engine.apply(command)
            self._last_now = max(self._last_now, command.now)
            if publisher is not None:
                messages += publisher.on_command(engine, command, events, level)
            if sink is not None:
                batch.append(Applied(command, intake, events))
                if len(batch) >= CONSUMER_BATCH:
                    sink.push(batch)
                    batch = []
            n += 1
            if n % PROGRESS_EVERY == 0:
                self._progress(n, seq, start)
                if messages and self.feeds is not None:
                    await self.feeds.append(seq, messages)
                    messages = []
        if pending:
            n += self._apply_quietly(pending, pending_seq)
            quiet_applied = True
        if quiet_applied and publisher is not None:
            publisher.reset(engine)
        if sink is not None and batch:
            sink.push(batch)
        if self.feeds is not None and messages:
            await self.feeds.append(engine.last_seq, messages)
        elapsed = time.perf_counter() - start
        log.info(
            "engine_replay_done",
            commands=n,
            seq=engine.last_seq,
            duration_ms=round(elapsed * 1000, 1),
            rate=int(n / elapsed) if elapsed > 0 else 0,
        )
        self.replayed = n
        self.replay_seconds = elapsed

    @staticmethod
    def _progress(n: int, seq: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        log.info("engine_replay_progress", commands=n, seq=seq, rate=int(n / elapsed))

    def _apply_quietly(self, payloads: list[bytes], seq: int) -> int:
        """Apply journal records with seqs `seq`… whose events nobody needs; returns how many."""
        engine = self.engine
        native = getattr(engine, "apply_records", None)
        i = 0
        while i < len(payloads):
            if native is not None:
                i, now = native(payloads, i, seq + i)
                self._last_now = max(self._last_now, now)
                if i == len(payloads):
                    break
            # Not in a layout the core reads (or damaged): the Python decoder takes it.
            command, _ = decode_record(payloads[i])
            if command.seq != seq + i:
                raise JournalCorruptError(
                    self.journal.directory, -1, seq + i,
                    f"its record holds command seq {command.seq}",
                )  # fmt: skip
            engine.apply(command)
            self._last_now = max(self._last_now, command.now)
            i += 1
        return len(payloads)

    def _start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="engine-loop"))
        if self.feeds is not None:
            self._tasks.append(asyncio.create_task(self._write_feeds(), name="engine-feeds"))
        if self.sweep_interval > 0:
            self._tasks.append(asyncio.create_task(self._sweep(), name="engine-sweep"))

    # ------------------------------------------------------------------ submissions

    def enqueue(
        self, command: Command, intake: Intake | None = None, intake_bytes: bytes | None = None
    ) -> asyncio.Future[Outcome]:
        """`intake_bytes`: `intake` as `encode_intake` (or the engine port's wire) has it, when
        the caller holds them already."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self._closing or self.failed is not None:
            fut.set_exception(EngineUnavailableError("engine is shutting down"))
        elif (refusal := self._backpressure(command)) is not None:
            fut.set_exception(refusal)
        else:
            tail = encode_intake(intake) if intake_bytes is None else intake_bytes
            self._queue.put_nowait((command, intake, fut, tail))
        return fut

    def _backpressure(self, command: Command) -> DexError | None:
        """A refusal when the database is too far behind for this kind of command: refused
        before it is journaled, so nothing of it exists anywhere and a retry is safe."""
        limit, sink = self.persist_lag_max, self.sink
        if limit is None or sink is None:
            return None
        if isinstance(command, _SHED_AT_LAG):
            pass
        elif isinstance(command, _SHED_AT_CANCEL_LAG):
            limit *= CANCEL_LAG_FACTOR
        else:
            return None
        lag = sink.lag
        if lag < limit:
            return None
        kind = type(command).__name__
        self.refused_for_lag[kind] = self.refused_for_lag.get(kind, 0) + 1
        return DexError(
            ErrorCode.PERSISTENCE_LAGGING,
            f"the exchange's database is {lag} commands behind the engine; new orders and "
            "withdrawals are refused until it catches up (cancels still pass): retry in a few "
            "seconds",
            lag=str(lag),
        )

    async def submit(self, command: Command, intake: Intake | None = None) -> Outcome:
        return await self.enqueue(command, intake)

    def book(self, market_id: str, depth: int) -> BookSnapshot:
        """The live book; consistent with the `book:{market_id}` feed seq it reports."""
        engine = self.engine
        if not engine.has_market(market_id):
            raise DexError(ErrorCode.UNKNOWN_MARKET, f"unknown market {market_id}")
        feed_seq = 0 if self.publisher is None else self.publisher.feed_seq(f"book:{market_id}")
        return BookSnapshot(
            market_id=market_id,
            seq=self.engine.last_seq,
            feed_seq=feed_seq,
            bids=engine.depth(market_id, Side.BUY, depth),
            asks=engine.depth(market_id, Side.SELL, depth),
        )

    @property
    def queue_depth(self) -> int:
        """Commands enqueued but not yet journaled (metrics)."""
        return self._queue.qsize()

    @property
    def feed_backlog(self) -> int:
        """Applied groups whose feed messages are not yet written (metrics)."""
        return self._feed_queue.qsize()

    def state(self) -> tuple[int, str]:
        """(last applied seq, `state_hash()`) — what the crash test compares."""
        return self.engine.last_seq, self.engine.state_hash()

    def balances(self) -> tuple[int, list[tuple[str, str, int, int]]]:
        """(last applied seq, every (trader, token, total, locked)): the ledger reconciliation
        compares with the database. One read between commands, so all rows are of that seq."""
        return self.engine.last_seq, self.engine.balance_rows()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        queue, loop = self._queue, asyncio.get_running_loop()
        try:
            while True:
                first = await queue.get()
                if first is None:
                    break
                group = [first]
                stop = False
                while len(group) < self.group_max and not queue.empty():
                    item = queue.get_nowait()
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                await self._commit(group, loop)
                if stop:
                    break
        except BaseException as exc:
            self.failed = exc
            log.exception("engine_loop_failed")
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None and item[2] is not None and not item[2].done():
                    item[2].set_exception(EngineUnavailableError("engine stopped"))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.stopped.set()

    async def _commit(self, group: list[_Pending], loop: asyncio.AbstractEventLoop) -> None:
        now = max(int(self.clock()), self._last_now)
        self._last_now = now
        seq = self.journal.last_seq
        submitted = [item[0] for item in group]
        intakes: list[Intake | None] = [item[1] for item in group]
        futures: list[asyncio.Future[Outcome] | None] = [item[2] for item in group]
        try:  # the whole group in one native call
            commands, payloads = stamp_records(submitted, seq + 1, now, [i[3] for i in group])
        except Exception:  # one by one, to refuse only the commands that cannot be encoded
            commands, intakes, futures, payloads = [], [], [], []
            for command, intake, fut, tail in group:
                try:
                    stamped, payload = stamp_record_with(command, seq + 1, now, tail)
                except Exception as exc:  # an unencodable command is the caller's error
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)
                    continue
                seq += 1
                commands.append(stamped)
                intakes.append(intake)
                futures.append(fut)
                payloads.append(payload)
        if not payloads:
            return

        def fail(why: str) -> None:
            for fut in futures:
                if fut is not None and not fut.done():
                    fut.set_exception(EngineOutcomeUnknownError(why))

        # The group is applied while the journal thread writes and fsyncs it, so the two
        # overlap; nothing of it leaves the engine — answers, consumers, reads of the book or
        # the state hash (`settled`) — before the fsync returns. If the write fails, the engine
        # holds commands the journal does not: the loop fails and the process stops, and a
        # restart replays the journal (no snapshot is taken of a failed engine).
        self._settled.clear()
        try:
            # The native writer starts on the group at once, without the GIL, and wakes the
            # loop through a pipe when it is synced: no Python thread has to take the GIL in
            # between, so the answers wait for the disk and not for a GIL switch.
            try:
                pending = self.journal.begin_group(payloads, self._wake_fd())
            except BaseException:
                fail("journal write failed")
                raise
            written = self._written(pending, loop)
            engine, publisher = self.engine, self.publisher
            applied: list[Applied] = []
            answers: list[bytes | bytearray | None] = []
            messages: list[FeedMessage] = []
            # The native core writes each command's engine-port answer (seq and events) as it
            # applies it, from its own values rather than from the event objects.
            apply_answer = getattr(engine, "apply_answer", None)
            try:
                for command, intake in zip(commands, intakes, strict=True):
                    level = publisher.before(engine, command) if publisher is not None else None
                    if apply_answer is not None:
                        events, answer = apply_answer(command)
                        answers.append(answer)
                    else:
                        events = engine.apply(command)
                        answers.append(None)
                    if publisher is not None:
                        messages += publisher.on_command(engine, command, events, level)
                    applied.append(Applied(command, intake, events))
            except BaseException:
                # A broken invariant: the command is journaled (or about to be) but the engine
                # cannot apply it. Stop (the loop fails) rather than guess; nobody is left
                # waiting forever.
                with contextlib.suppress(BaseException):
                    await written
                fail("engine stopped")
                raise
            try:
                await written
            except BaseException:
                fail("journal write failed")
                raise
        finally:
            self._settled.set()
        for item, answer, fut in zip(applied, answers, futures, strict=True):
            if fut is not None and not fut.done():
                fut.set_result(Outcome(item.command.seq, item.events, answer))
        if self.sink is not None:
            self.sink.push(applied)
        if publisher is not None:
            self._feed_queue.put_nowait((engine.last_seq, messages))
        if engine.last_seq - self._last_snapshot_seq >= self.snapshot_every:
            self._snapshot()

    def _wake_fd(self) -> int | None:
        """The write end of the pipe the journal's writer signals (made on first use, in the
        loop that runs the group commit)."""
        if self._wake is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            asyncio.get_running_loop().add_reader(r, self._journal_woken)
            self._wake = (r, w)
        return self._wake[1]

    def _written(
        self, pending: PendingGroup, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[int]:
        """Resolved with the group's last seq once it is synced (or with its OSError)."""
        fut: asyncio.Future[int] = loop.create_future()
        self._journal_waits.append((pending, fut))
        if pending.done():  # written in Python, or already synced: no byte will come
            self._journal_woken()
        return fut

    def _journal_woken(self) -> None:
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake[0], 4096):
                    pass
        waiting = []
        for pending, fut in self._journal_waits:
            if not pending.done():
                waiting.append((pending, fut))
            elif not fut.done():
                try:
                    fut.set_result(pending.wait())
                except Exception as exc:
                    fut.set_exception(exc)
        self._journal_waits = waiting

    async def settled(self) -> None:
        """Wait until no group is between its apply and its fsync: what reads the engine's
        state (the book, the state hash) must not see commands that are not yet durable."""
        # A loop, not one wait: another group may start between the set that wakes this task
        # and its turn on the loop. The caller reads right after, with no await in between, so
        # no group can start before its read.
        while not self._settled.is_set():
            await self._settled.wait()
        if self.failed is not None:
            raise EngineUnavailableError("engine stopped")

    def _snapshot(self) -> None:
        """Freeze the state here, encode and write it on the snapshot thread: the native core's
        copy stops the loop for a fraction of what encoding would (~1.4 µs a resting order)."""
        start = time.perf_counter()
        frozen = self.engine.freeze()
        freeze_ms = round((time.perf_counter() - start) * 1000, 1)
        self._last_snapshot_seq = frozen.last_seq
        fut = asyncio.get_running_loop().run_in_executor(
            self._snapshot_thread, self._write_snapshot, frozen, freeze_ms
        )
        self._snapshot_futures = [f for f in self._snapshot_futures if not f.done()] + [fut]

    def _write_snapshot(self, frozen: FrozenState, freeze_ms: float) -> None:
        start = time.perf_counter()
        seq = frozen.last_seq
        try:
            body, digest = frozen.snapshot_and_hash()
            self.snapshots.write(seq, body)
            if self.session_factory is not None:
                from backend.engine.persister import record_snapshot

                record_snapshot(self.session_factory, seq, digest)
        except Exception:
            # Not fatal: the journal holds every command, so a start-up replays from the
            # previous snapshot. But nobody awaits this thread's result: say it here.
            log.exception("engine_snapshot_failed", seq=seq)
            return
        log.info(
            "engine_snapshot_written",
            seq=seq,
            size_bytes=len(body),
            freeze_ms=freeze_ms,  # the engine's stop; the rest ran beside it
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    async def _sweep(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.sweep_interval)
            next_expiry = self.engine.next_expiry()
            if next_expiry is not None and next_expiry <= self.clock() and not self._closing:
                self._queue.put_nowait((SweepExpired(0, 0), None, None, b""))

    async def _write_feeds(self) -> None:
        assert self.feeds is not None
        queue, loop = self._feed_queue, asyncio.get_running_loop()
        done = False
        written_at = -FEED_MIN_INTERVAL_S
        while not done:
            item = await queue.get()
            if item is None:
                break
            # Coalesce (FEED_MIN_INTERVAL_S): wait out the interval, then take all that came.
            wait = written_at + FEED_MIN_INTERVAL_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last, messages = item
            while not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    done = True
                    break
                last, more = nxt
                messages += more
            delay = 0.05
            while True:
                try:
                    written_at = loop.time()
                    await self.feeds.append(last, messages)
                    break
                except Exception:
                    # Never drop: a dropped batch would be a gap every subscriber sees.
                    log.exception("feed_write_failed", engine_seq=last, retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)

    # ------------------------------------------------------------------ shutdown

    async def close(self, *, snapshot: bool = True) -> None:
        """Finish queued commands, flush consumers, write a final snapshot, release files."""
        if self._closing:
            await self.stopped.wait()
            return
        self._closing = True
        self._queue.put_nowait(None)
        await self.stopped.wait()
        if self.feeds is not None:
            self._feed_queue.put_nowait(None)
        for task in self._tasks:
            if task.get_name() == "engine-sweep":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if snapshot and self.failed is None and self.engine.last_seq > self._last_snapshot_seq:
            self._snapshot()
        if self._snapshot_futures:
            await asyncio.gather(*self._snapshot_futures, return_exceptions=True)
        if self.sink is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.sink.close)
        self._snapshot_thread.shutdown()
        self.journal.close()
        if self._wake is not None:
            asyncio.get_running_loop().remove_reader(self._wake[0])
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        log.info("engine_stopped", seq=self.engine.last_seq)
