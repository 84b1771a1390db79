"""The relay: outbox → broker, at least once, in order, never dropping (`hybridex relay`).

Each step reads the oldest outbox rows (id order), publishes them, and deletes them in one
transaction once the broker acknowledged them. A crash between the ack and the delete publishes
them again on restart, with the same event ids (JetStream's duplicate window drops them, a
consumer drops them by id). A broker that is down or refuses leaves the rows where they are:
the relay retries the same rows with backoff, so the outbox grows (the lag metrics show it)
and nothing is skipped or reordered; the exchange keeps trading meanwhile, since the writers
only touch their own database.

Rows are always read from the oldest, never after a cursor: a writer's transaction that took
an id early but committed late is picked up on the next step instead of being passed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.stream import metrics, outbox
from backend.stream.outbox import OutboxRow
from backend.stream.publish import Publisher, PublishError, StreamOptions, publisher_for

log = structlog.get_logger("backend.stream.relay")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    batch_size: int = 1000
    poll_interval_s: float = 0.1
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    lag_interval_s: float = 1.0  # how often the lag gauges are refreshed while busy


class Relay:
    def __init__(
        self, factory: sessionmaker[Session], publisher: Publisher, config: RelayConfig
    ) -> None:
        self.factory = factory
        self.publisher = publisher
        self.config = config
        self.stop_event = asyncio.Event()
        self.published = 0  # events acknowledged by this relay (re-sends included)
        self._started = False
        self._backoff = config.backoff_initial_s
        self._lag_at = 0.0

    def stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        """Relay until `stop()`; the batch in flight is finished (published and deleted)."""
        try:
            while not self.stop_event.is_set():
                sent = await self.step()
                if sent == 0:
                    await self._sleep(self.config.poll_interval_s)
        finally:
            await self._refresh_lag(force=True)  # what is left, for the last scrape
            await self.publisher.close()

    async def step(self) -> int:
        """One batch: the number of rows published and deleted (0: none pending, or the broker
        failed, in which case the relay has already waited its backoff)."""
        if not self._started and not await self._start():
            return 0
        try:
            rows = await asyncio.to_thread(self._pending)
        except SQLAlchemyError as exc:  # the database is down: wait for it like for the broker
            await self._failed("outbox_unreadable", exc, 0)
            return 0
        if not rows:
            await self._refresh_lag(force=True)
            return 0
        try:
            await self.publisher.publish(rows)
        except PublishError as exc:
            await self._failed("publish_failed", exc, len(rows))
            self._started = False  # connect/ensure the stream again before the retry
            return 0
        self._succeeded()
        await self._delete([r.id for r in rows])
        self.published += len(rows)
        metrics.PUBLISHED.inc(len(rows))
        await self._refresh_lag(force=False)
        return len(rows)

    async def _start(self) -> bool:
        try:
            await self.publisher.start()
        except Exception as exc:  # PublishError, nats' NoServersError, JetStream API errors…
            await self._failed("broker_unreachable", exc, 0)
            return False
        self._started = True
        return True

    async def _delete(self, ids: list[int]) -> None:
        """Delete what the broker acknowledged; until the database takes it, retry (a stop
        or crash meanwhile only re-sends those rows, which the ids make harmless)."""
        while True:
            try:
                await asyncio.to_thread(self._remove, ids)
                return
            except SQLAlchemyError as exc:
                await self._failed("outbox_delete_failed", exc, len(ids))
                if self.stop_event.is_set():
                    return

    def _pending(self) -> list[OutboxRow]:
        with self.factory() as session:
            return outbox.pending(session, self.config.batch_size)

    def _remove(self, ids: Sequence[int]) -> None:
        with self.factory.begin() as session:
            outbox.remove(session, ids)

    async def _failed(self, what: str, exc: BaseException, rows: int) -> None:
        metrics.PUBLISH_ERRORS.inc()
        metrics.BROKER_UP.set(0)
        log.warning(what, error=str(exc), rows=rows, retry_in_s=round(self._backoff, 2))
        await self._refresh_lag(force=True)
        await self._sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self.config.backoff_max_s)

    def _succeeded(self) -> None:
        metrics.BROKER_UP.set(1)
        self._backoff = self.config.backoff_initial_s

    async def _refresh_lag(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._lag_at < self.config.lag_interval_s:
            return
        self._lag_at = now
        try:
            rows, oldest = await asyncio.to_thread(self._lag)
        except SQLAlchemyError:
            return
        metrics.OUTBOX_ROWS.set(rows)
        metrics.OUTBOX_OLDEST.set(oldest)

    def _lag(self) -> tuple[int, float]:
        with self.factory() as session:
            return outbox.lag(session)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), seconds)


def from_settings(settings: Settings, factory: sessionmaker[Session], url: str) -> Relay:
    """The relay of `url` with the HYBRIDEX_STREAM_* / HYBRIDEX_RELAY_* settings."""
    options = StreamOptions(
        prefix=settings.stream_subject_prefix,
        ack_timeout_s=settings.stream_ack_timeout_s,
        replicas=settings.stream_replicas,
        duplicate_window_s=settings.stream_duplicate_window_s,
    )
    config = RelayConfig(
        batch_size=settings.relay_batch_size, poll_interval_s=settings.relay_poll_interval_s
    )
    return Relay(factory, publisher_for(url, options), config)
