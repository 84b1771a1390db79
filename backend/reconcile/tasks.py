"""Reconciliation as a periodic job: the Celery task beat schedules, and the same body for
`hybridex dev`'s thread. Each run is stored (`reconciliation_runs`) for the admin endpoint."""

from __future__ import annotations

import json
import threading
import time

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db.models import ReconciliationRun
from backend.db.session import unit_of_work
from backend.domain.errors import DexError
from backend.reconcile.chain import ChainReader
from backend.reconcile.compare import Report
from backend.reconcile.engine_side import EngineRead, tcp_engine_read
from backend.reconcile.run import reconcile
from backend.settlement.celery_app import app
from backend.settlement.context import get_context
from backend.stream import events, outbox
from backend.stream.outbox import StreamEvent
from indexer.rpc import RpcClient

log = structlog.get_logger(__name__)

KEEP_RUNS = 1_000


def run_and_store(
    factory: sessionmaker[Session],
    reader: ChainReader,
    settings: Settings,
    engine_read: EngineRead | None = None,
) -> Report:
    started = time.monotonic()
    report = reconcile(
        factory.kw["bind"],
        reader,
        fallback_fee_recipient=settings.fee_recipient,
        engine_read=engine_read,
    )
    with unit_of_work(factory) as session:
        run = ReconciliationRun(
            block_number=report.block,
            accounts=report.accounts,
            discrepancies=len(report.discrepancies),
            clean=report.clean,
            report=json.dumps(report.as_json()),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        session.add(run)
        session.flush()
        if settings.stream_url is not None:  # the run's result on the event stream
            outbox.add(session, [reconciliation_event(run.id, run.duration_ms, report)])
        floor = session.scalar(
            select(ReconciliationRun.id)
            .order_by(ReconciliationRun.id.desc())
            .offset(KEEP_RUNS)
            .limit(1)
        )
        if floor is not None:
            session.execute(delete(ReconciliationRun).where(ReconciliationRun.id <= floor))
    return report


def reconciliation_event(run_id: int, duration_ms: int, report: Report) -> StreamEvent:
    """The stream's `reconciliation` event of a stored run (docs/events.md): the counts and
    each discrepancy's kind, pair and amounts."""
    return events.reconciliation(
        str(run_id),
        {
            "run_id": run_id,
            "block": report.block,
            "persister_seq": report.persister_seq,
            "accounts": report.accounts,
            "pairs": report.pairs,
            "clean": report.clean,
            "duration_ms": duration_ms,
            "in_flight_fills": report.in_flight_fills,
            "in_flight_chain_effects": report.in_flight_chain_effects,
            "reverted_fills": report.reverted_fills,
            "discrepancies": [
                {
                    "kind": d.kind,
                    "trader": d.trader,
                    "token": d.token,
                    "amounts": {k: str(v) for k, v in d.amounts.items()},
                }
                for d in report.discrepancies
            ],
        },
    )


@app.task(name="reconcile.run", acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile_task() -> int:
    """One reconciliation; returns the number of discrepancies (also gauges and logs)."""
    ctx = get_context()
    rpc = RpcClient(ctx.settings.rpc_url, timeout_s=ctx.settings.rpc_timeout_s)
    try:
        # The worker holds the settlement role's key; reads are open to every role.
        engine_read = tcp_engine_read(ctx.settings, "settlement")
        report = run_and_store(
            ctx.factory, ChainReader(rpc, ctx.exchange), ctx.settings, engine_read
        )
    finally:
        rpc.close()
    return len(report.discrepancies)


class ReconcileLoop:
    """`hybridex dev`: one reconciliation every `reconcile_interval_s` in a daemon thread."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        exchange: str,
        engine_read: EngineRead | None = None,
    ) -> None:
        self.factory, self.settings, self.exchange = factory, settings, exchange
        self.engine_read = engine_read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        rpc = RpcClient(self.settings.rpc_url, timeout_s=self.settings.rpc_timeout_s)
        try:
            while not self._stop.wait(self.settings.reconcile_interval_s):
                try:
                    run_and_store(
                        self.factory,
                        ChainReader(rpc, self.exchange),
                        self.settings,
                        self.engine_read,
                    )
                except DexError as exc:
                    log.warning("reconcile_failed", code=exc.code.name, error=exc.message)
                except Exception:
                    log.exception("reconcile_crashed")
        finally:
            rpc.close()
