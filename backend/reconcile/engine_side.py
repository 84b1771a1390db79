"""The engine's live ledger against the database's projection of it.

The engine answers every balance at one seq S (a read between two commands). The database is
read once its persister cursor is at or past S. A row the persister last wrote at or below S
must then equal the engine's row, since no command touched it in between. A row written after
S changed since the engine's read, and the next run checks it. So a busy exchange shows no
false alarm, and a row changed behind the engine's back (or an engine that diverged from what
it persisted) is found within one run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from web3 import Web3

from backend.config import Settings
from backend.db.models import EngineCursor
from backend.engine.persister import CURSOR_NAME as PERSISTER_CURSOR
from backend.engine.protocol import BalanceRow
from backend.reconcile.compare import Discrepancy
from backend.reconcile.reads import Pair

PERSISTER_WAIT_S = 10.0
"""How long a run waits for the persister to reach the engine's read before it gives up the
engine comparison (reported, not a discrepancy: the backlog has its own alert)."""


@dataclass(frozen=True, slots=True)
class LiveLedger:
    seq: int
    rows: list[BalanceRow]


EngineRead = Callable[[], LiveLedger]
"""Reads the live engine's ledger; raises when the engine cannot be reached."""


@dataclass
class EngineCheck:
    seq: int | None = None
    """The engine's seq at its read; None when it was not read."""
    compared: int = 0
    """Balances equal in the engine and the database."""
    changed_since: int = 0
    """Balances the persister rewrote after the engine's read: checked by the next run."""
    skipped: str | None = None
    """Why the engine's ledger was not compared (unreachable, database behind); None if it was."""
    discrepancies: list[Discrepancy] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "compared": self.compared,
            "changedSince": self.changed_since,
            "skipped": self.skipped,
        }


def compare_engine(
    live: LiveLedger, rows: dict[Pair, tuple[int, int, int]], persister_seq: int
) -> EngineCheck:
    """`rows`: the database's (total, locked, updated_seq) per (trader, token), read in a
    snapshot whose persister cursor is `persister_seq`."""
    check = EngineCheck(seq=live.seq)
    if persister_seq < live.seq:
        check.skipped = (
            f"the database (seq {persister_seq}) is behind the engine's read ({live.seq})"
        )
        return check
    stored = {(t.lower(), k.lower()): (t, k, v) for (t, k), v in rows.items()}
    engine = {(t.lower(), k.lower()): (total, locked) for t, k, total, locked in live.rows}
    for key in sorted(set(stored) | set(engine)):
        trader, token, (total, locked, updated) = stored.get(key, (None, None, (0, 0, 0)))
        if updated > live.seq:
            check.changed_since += 1
            continue
        engine_total, engine_locked = engine.get(key, (0, 0))
        if (engine_total, engine_locked) == (total, locked):
            check.compared += 1
            continue
        check.discrepancies.append(
            Discrepancy(
                "engine_mismatch",
                trader or Web3.to_checksum_address(key[0]),
                token or Web3.to_checksum_address(key[1]),
                amounts={
                    "engine": engine_total,
                    "engineLocked": engine_locked,
                    "database": total,
                    "databaseLocked": locked,
                    "difference": total - engine_total,
                },
                detail={"engineSeq": live.seq, "updatedSeq": updated},
            )
        )
    return check


def wait_for_persister(db: Engine, seq: int, timeout_s: float = PERSISTER_WAIT_S) -> None:
    """Until the persister's cursor is at or past `seq`, or `timeout_s` (then the comparison
    reports itself skipped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.connect() as conn:
            at = conn.scalar(select(EngineCursor.seq).where(EngineCursor.name == PERSISTER_CURSOR))
        if int(at or 0) >= seq or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def tcp_engine_read(settings: Settings, role: str) -> EngineRead:
    """A reader over the engine port (unix socket or TCP, as configured) as `role`: the worker
    reads as the settlement role, `hybridex reconcile` as the operator. Raises
    ConfigurationError now when that role's key is not set."""
    from backend.engine.auth import Role
    from backend.engine.tcp_client import TcpEngineClient

    TcpEngineClient.from_settings(settings, Role(role))  # refuse now rather than on every run

    def read() -> LiveLedger:
        async def go() -> LiveLedger:
            client = TcpEngineClient.from_settings(settings, Role(role))
            try:
                seq, rows = await client.balances()
            finally:
                await client.close()
            return LiveLedger(seq, rows)

        return asyncio.run(go())

    return read


def loop_engine_read(
    balances: Callable[[], Coroutine[Any, Any, tuple[int, list[BalanceRow]]]],
    loop: asyncio.AbstractEventLoop,
    timeout_s: float = 30.0,
) -> EngineRead:
    """A reader of an engine that runs on `loop` in this process (`hybridex dev`), for a thread."""

    def read() -> LiveLedger:
        seq, rows = asyncio.run_coroutine_threadsafe(balances(), loop).result(timeout_s)
        return LiveLedger(seq, rows)

    return read
