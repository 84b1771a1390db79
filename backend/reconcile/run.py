"""One reconciliation: a database snapshot, the chain at its confirmed block, the comparison.

Each discrepancy is also a structured log event and a Prometheus gauge (for a process that
runs reconciliation periodically and serves `/metrics`).
"""

from __future__ import annotations

import structlog
from prometheus_client import Gauge
from sqlalchemy import Engine

from backend.domain.errors import ConfigurationError
from backend.reconcile.chain import ChainReader
from backend.reconcile.compare import Report, compare, pairs_to_read
from backend.reconcile.engine_side import (
    EngineCheck,
    EngineRead,
    LiveLedger,
    compare_engine,
    wait_for_persister,
)
from backend.reconcile.reads import confirmed_block, read_balance_rows, read_ledger, snapshot

log = structlog.get_logger("hybridex.reconcile")

DISCREPANCIES = Gauge(
    "hybridex_reconcile_discrepancies", "Discrepancies found by the last reconciliation", ["kind"]
)
ACCOUNTS = Gauge("hybridex_reconcile_accounts", "Accounts checked by the last reconciliation")
UNATTRIBUTED = Gauge(
    "hybridex_reconcile_unattributed",
    "Tokens the Exchange holds beyond its internal balances (base units, as a float gauge)",
    ["token"],
)
BLOCK = Gauge("hybridex_reconcile_block", "Block the last reconciliation read the chain at")
ENGINE_CHECKED = Gauge(
    "hybridex_reconcile_engine_checked",
    "1 when the last reconciliation compared the live engine's ledger with the database",
)
KINDS = (
    "balance_mismatch",
    "failed_fill",
    "refused_chain_effect",
    "batch_mismatch",
    "token_deficit",
    "engine_mismatch",
)


def reconcile(
    engine: Engine,
    reader: ChainReader,
    *,
    fallback_fee_recipient: str | None,
    engine_read: EngineRead | None = None,
) -> Report:
    """`engine_read`: the live engine's ledger, compared with the database as well; without it
    the run compares the database with the chain only."""
    live: LiveLedger | None = None
    unreachable: str | None = None
    if engine_read is not None:
        try:
            live = engine_read()  # first: the database is then read at or past its seq
        except Exception as exc:  # any failure to read is reported, never a crash of the run
            unreachable = f"the engine could not be read: {exc or type(exc).__name__}"
            log.warning("reconcile_engine_unreadable", error=unreachable)
    with snapshot(engine) as session:
        block = confirmed_block(session)
        if block is None:
            raise ConfigurationError("the indexer has confirmed no block yet: nothing to reconcile")
        view = read_ledger(
            session,
            block=block,
            last_batch_at=reader.last_batch_id,
            fallback_fee_recipient=fallback_fee_recipient,
        )
    chain = reader.internal_balances(pairs_to_read(view), block)
    report = compare(view, chain, reader.held(view.tokens, block))
    if live is not None:
        # Its own snapshot, once the persister has the engine's seq. Not the chain comparison's:
        # right after the persister catches up, the indexer may not have recorded the engine's
        # answer to a deposit yet, and that comparison would count the deposit twice.
        wait_for_persister(engine, live.seq)
        with snapshot(engine) as session:
            persister_seq, rows = read_balance_rows(session)
        check = compare_engine(live, rows, persister_seq)
        report.discrepancies += check.discrepancies
        report.engine = check.as_json()
    elif unreachable is not None:
        report.engine = EngineCheck(skipped=unreachable).as_json()
    _publish(report)
    return report


def _publish(report: Report) -> None:
    for kind in KINDS:
        DISCREPANCIES.labels(kind=kind).set(sum(d.kind == kind for d in report.discrepancies))
    ACCOUNTS.set(report.accounts)
    BLOCK.set(report.block)
    ENGINE_CHECKED.set(report.engine is not None and report.engine["skipped"] is None)
    for token, sides in report.tokens.items():
        UNATTRIBUTED.labels(token=token).set(sides["unattributed"])
    for d in report.discrepancies:
        log.error("reconciliation_discrepancy", **d.as_json(report.block))
    log.info(
        "reconciled",
        block=report.block,
        accounts=report.accounts,
        discrepancies=len(report.discrepancies),
        in_flight_fills=report.in_flight_fills,
        in_flight_chain_effects=report.in_flight_chain_effects,
        engine=report.engine,
    )
