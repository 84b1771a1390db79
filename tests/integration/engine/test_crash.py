"""Crash test (SPEC §5): SIGKILL `hybridex engine` under load, restart it, lose nothing.

Orders and credits go through `TcpEngineClient`s (one per role, over TCP) at load from several
concurrent submitters;
the engine persists to a real PostgreSQL and publishes to a real Redis. After SIGKILL and a
restart: every acknowledged order and fill is in the database, and the live state hash equals
a clean replay of the journal from scratch (`hybridex engine --verify-journal`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db.session import make_engine
from backend.engine.auth import Role
from backend.engine.client import EngineUnavailableError, Outcome
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.events import Fill, OrderAccepted
from tests.unit.engine.helpers import RoleClients, key_env, setup, workload

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
# production mode refuses the built-in placeholder fee account; any real-looking one will do
FEE_RECIPIENT = "0x1000000000000000000000000000000000000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_engine(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli.main", "engine", *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def wait_ready(client: TcpEngineClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "engine exited during start-up"
        try:
            await client.state(timeout=2)
            return
        except EngineUnavailableError:
            await asyncio.sleep(0.1)
    raise AssertionError("engine did not start")


def test_sigkill_under_load_loses_nothing_acknowledged(
    db_url: str, redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    port = free_port()
    journal_dir = tmp_path / "journal"
    env = {
        **os.environ,
        "HYBRIDEX_DATABASE_URL": db_url,
        "HYBRIDEX_REDIS_URL": redis_prefix[0],
        "HYBRIDEX_REDIS_KEY_PREFIX": redis_prefix[1],
        "HYBRIDEX_ENGINE_TRANSPORT": "tcp",
        "HYBRIDEX_ENGINE_PORT": str(port),
        **key_env(),
        "HYBRIDEX_ENGINE_JOURNAL_DIR": str(journal_dir),
        "HYBRIDEX_ENGINE_SNAPSHOT_EVERY": "700",
        "HYBRIDEX_ENGINE_GROUP_MAX": "64",
        "HYBRIDEX_FEE_RECIPIENT": FEE_RECIPIENT,
    }
    log = tmp_path / "engine.log"
    acked: list[Outcome] = []

    async def load() -> None:
        proc = start_engine(env, log)
        client = RoleClients(("127.0.0.1", port))
        try:
            await wait_ready(client[Role.API], proc)
            for cmd, intake in setup(8):
                acked.append(await client.submit(cmd, timeout=5, intake=intake))
            commands = workload(200_000, 8, seed=11)
            stop = asyncio.Event()

            async def submitter(k: int) -> None:
                for cmd, intake in commands[k::16]:
                    if stop.is_set():
                        return
                    try:
                        acked.append(await client.submit(cmd, timeout=5, intake=intake))
                    except EngineUnavailableError:
                        return

            tasks = [asyncio.create_task(submitter(k)) for k in range(16)]
            while len(acked) < 2_500:
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)  # mid-stream: groups in flight, consumers lagging
            proc.wait(10)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            await client.close()
            if proc.poll() is None:
                proc.kill()

    asyncio.run(load())
    assert len(acked) >= 2_500

    async def restart() -> tuple[int, str]:
        proc = start_engine(env, log)
        client = RoleClients(("127.0.0.1", port))
        try:
            await wait_ready(client[Role.API], proc)
            state = await client[Role.API].state()
        finally:
            await client.close()
        proc.send_signal(signal.SIGTERM)  # graceful: flush the persister, snapshot
        assert proc.wait(30) == 0
        return state

    seq, digest = asyncio.run(restart())
    assert seq >= max(o.seq for o in acked)

    verify = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "engine", "--verify-journal", str(journal_dir)],
        cwd=ROOT, env=env, capture_output=True, check=True,
    )  # fmt: skip
    clean = json.loads(verify.stdout.decode().strip().splitlines()[-1])
    assert (clean["seq"], clean["state_hash"]) == (seq, digest)

    accepted = {e.order_hash for o in acked for e in o.events if isinstance(e, OrderAccepted)}
    fills = {(e.seq, e.fill_index) for o in acked for e in o.events if isinstance(e, Fill)}
    assert accepted
    assert fills
    engine = make_engine(db_url)
    with engine.connect() as conn:
        db_orders = {r[0] for r in conn.execute(text("SELECT order_hash FROM orders"))}
        db_fills = {tuple(r) for r in conn.execute(text("SELECT seq, fill_index FROM fills"))}
        cursor = conn.execute(text("SELECT seq FROM engine_cursors")).scalar_one()
    engine.dispose()
    assert accepted <= db_orders
    assert fills <= db_fills
    assert cursor == seq
