"""Backpressure: PostgreSQL stops while orders flow into `hybridex engine`.

Past HYBRIDEX_ENGINE_PERSIST_LAG_MAX applied-but-unstored commands the engine refuses new orders
with PERSISTENCE_LAGGING and cancels still pass; past twice that even cancels are refused, so
the persister's queue stays bounded; credits (paced by the chain) always pass. When the
database returns, the persister catches up and nothing acknowledged is missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from backend.db.migrate import upgrade
from backend.db.session import make_engine
from backend.domain.errors import DexError, ErrorCode
from backend.engine.auth import Role
from backend.engine.client import Intake, Outcome
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.commands import CancelOrder, Command, Credit, PlaceOrder
from backend.matching.events import OrderAccepted
from tests.integration.engine.test_crash import FEE_RECIPIENT, free_port, start_engine, wait_ready
from tests.integration.private_postgres import PrivatePostgres
from tests.unit.engine.helpers import (
    QUOTE,
    RoleClients,
    key_env,
    order_hash,
    setup,
    trader,
    workload,
)

pytestmark = pytest.mark.integration

LAG_MAX = 200


def _metric(port: int, name: str) -> dict[str, float]:
    """Every sample of one metric family, keyed by its label text."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key[len(name) :]] = float(value)
    return out


def _cursor(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT coalesce(max(seq), 0) FROM engine_cursors")).scalar_one()
            )
    finally:
        engine.dispose()


def test_database_down_refuses_orders_bounds_the_queue_and_loses_nothing(tmp_path: Path) -> None:
    with PrivatePostgres() as pg:
        admin = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "hybridex"'))
        admin.dispose()
        db_url = pg.url("hybridex")
        upgrade(db_url)
        port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "HYBRIDEX_DATABASE_URL": db_url,
            "HYBRIDEX_ENGINE_TRANSPORT": "tcp",
            "HYBRIDEX_ENGINE_PORT": str(port),
            **key_env(),
            "HYBRIDEX_ENGINE_JOURNAL_DIR": str(tmp_path / "journal"),
            "HYBRIDEX_ENGINE_METRICS_PORT": str(metrics_port),
            "HYBRIDEX_ENGINE_PERSIST_LAG_MAX": str(LAG_MAX),
            "HYBRIDEX_FEE_RECIPIENT": FEE_RECIPIENT,
        }
        log = tmp_path / "engine.log"
        proc = start_engine(env, log, "--feeds", "none")
        acked: list[Outcome] = []
        refused: dict[str, int] = {}
        max_lag = 0.0

        async def send(
            client: TcpEngineClient, commands: Sequence[tuple[Command, Intake | None]]
        ) -> list[Outcome | BaseException]:
            answers = await client.submit_many(commands, timeout=20)
            for (cmd, _), answer in zip(commands, answers, strict=True):
                if isinstance(answer, Outcome):
                    acked.append(answer)
                else:
                    assert isinstance(answer, DexError), answer
                    assert answer.code is ErrorCode.PERSISTENCE_LAGGING, answer
                    refused[type(cmd).__name__] = refused.get(type(cmd).__name__, 0) + 1
            return answers

        def sample_lag() -> float:
            nonlocal max_lag
            lag = _metric(metrics_port, "hybridex_engine_persist_lag_commands")[""]
            max_lag = max(max_lag, lag)
            return lag

        async def run() -> None:
            clients = RoleClients(("127.0.0.1", port))
            client = clients[Role.API]
            try:
                await wait_ready(client, proc)
                orders = [c for c in workload(6_000, 8, seed=5) if isinstance(c[0], PlaceOrder)]
                for cmd, intake in setup(8):  # the market (operator) and credits (indexer)
                    acked.append(await clients.submit(cmd, timeout=20, intake=intake))
                await send(client, orders[:50])
                deadline = time.monotonic() + 30
                while _cursor(db_url) < acked[-1].seq:
                    assert time.monotonic() < deadline, "the persister did not catch up"
                    await asyncio.sleep(0.1)

                pg.stop()
                # orders flow in groups while the database is gone: accepted up to the bar
                for k in range(50, 2_050, 50):
                    await send(client, orders[k : k + 50])
                    await asyncio.sleep(0.02)
                    sample_lag()
                placed = sum(1 for o in acked for e in o.events if isinstance(e, OrderAccepted))
                assert refused.get("PlaceOrder", 0) > 1_500, refused
                assert placed < 50 + LAG_MAX + 100, placed

                # cancels still pass: pull resting orders
                resting = [e for o in acked for e in o.events if isinstance(e, OrderAccepted)]
                cancels = [(CancelOrder(0, 0, e.order_hash, e.trader), None) for e in resting[:40]]
                answers = await send(client, cancels)
                assert all(isinstance(a, Outcome) for a in answers), refused

                # a cancel flood is stopped at twice the bar: the queue stays bounded
                flood = [
                    (CancelOrder(0, 0, order_hash("flood", n), trader(0)), None)
                    for n in range(3 * LAG_MAX)
                ]
                for k in range(0, len(flood), 50):
                    await send(client, flood[k : k + 50])
                    await asyncio.sleep(0.02)
                assert refused.get("CancelOrder", 0) > LAG_MAX // 2, refused

                # a deposit's credit is paced by the chain and is never refused
                await send(clients[Role.INDEXER], [(Credit(0, 0, trader(1), QUOTE, 7), None)])
                assert "Credit" not in refused
                await asyncio.sleep(1.5)  # the sampler runs every second
                assert sample_lag() >= LAG_MAX
                assert max_lag <= 2 * LAG_MAX + 100, max_lag
                assert _metric(metrics_port, "hybridex_engine_refused_persistence_lagging_total")

                pg.start()  # the persister's retries find it again and catch up
                deadline = time.monotonic() + 60
                while _cursor_or_none(db_url) != acked[-1].seq:
                    assert time.monotonic() < deadline, "the persister did not catch up"
                    await asyncio.sleep(0.2)
                # and orders are taken again
                late = orders[3_000:3_001]
                answers = await send(client, late)
                assert isinstance(answers[0], Outcome), answers
            finally:
                await clients.close()

        try:
            asyncio.run(run())
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # a failed run may leave the database stopped:
                proc.kill()  # the engine then waits for it on SIGTERM, so stop it hard
                proc.wait(10)

        accepted = {e.order_hash for o in acked for e in o.events if isinstance(e, OrderAccepted)}
        engine = make_engine(db_url)
        with engine.connect() as conn:
            stored = {r[0] for r in conn.execute(text("SELECT order_hash FROM orders"))}
        engine.dispose()
        assert accepted <= stored


def _cursor_or_none(url: str) -> int | None:
    try:
        return _cursor(url)
    except Exception:  # the server is still starting
        return None
