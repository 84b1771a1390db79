"""SIGKILL the `hybridex indexer` process mid-backfill and mid-follow; restart; the ledger and
the engine's balances equal an uninterrupted index of the same chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from backend.chain.anvil import Anvil
from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.db.models.indexer import IndexerCommand, IndexerCursor
from backend.db.models.reference import Token
from tests.integration.indexer.rig import Chain, Rig, fresh_ledger

pytestmark = pytest.mark.integration

CONFIRMATIONS, WINDOW = 2, 6
HYBRIDEX = Path(sys.executable).parent / "hybridex"


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


class Daemon:
    """`hybridex indexer --embedded-engine` as a child process on a SQLite file."""

    def __init__(self, chain: Chain, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.url = f"sqlite:///{workdir / 'indexer.db'}"
        upgrade(self.url)
        self.factory = session_factory(make_engine(self.url))
        with unit_of_work(self.factory) as session:
            for i, token in enumerate(chain.tokens):
                session.add(Token(address=token.address, symbol=f"T{i}", decimals=18))
        self.env = {
            **os.environ,
            "HYBRIDEX_MODE": "dev",  # a development chain: 2 confirmations
            "HYBRIDEX_DATABASE_URL": self.url,
            "HYBRIDEX_RPC_URL": chain.node.url,
            "HYBRIDEX_CHAIN_ID": "31337",
            "HYBRIDEX_EXCHANGE_ADDRESS": chain.h.exchange.address,
            "HYBRIDEX_CONFIRMATIONS": str(CONFIRMATIONS),
            "HYBRIDEX_REORG_WINDOW": str(WINDOW),
            "HYBRIDEX_ENGINE_JOURNAL_DIR": str(workdir / "journal"),
            "HYBRIDEX_INDEXER_POLL_INTERVAL_S": "0.02",
            "HYBRIDEX_INDEXER_MAX_LOG_RANGE": "3",  # a long backfill to kill in the middle
            "HYBRIDEX_LOG_JSON": "true",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.workdir / f"run{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(HYBRIDEX), "indexer", "--embedded-engine"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def cursor(self, name: str = "exchange") -> int:
        for _ in range(50):
            try:
                with unit_of_work(self.factory) as session:
                    row = session.get(IndexerCursor, name)
                    return -2 if row is None else row.block_number
            except OperationalError:  # the child holds the write lock for a moment
                time.sleep(0.01)
        raise RuntimeError("database stayed locked")

    def pending(self) -> int:
        with unit_of_work(self.factory) as session:
            q = select(func.count()).where(IndexerCommand.status != "done")
            return int(session.scalar(q.select_from(IndexerCommand)) or 0)

    def wait_for(self, what: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            assert self.proc.poll() is None, self.last_log()
            if what():
                return
            time.sleep(0.01)
        raise TimeoutError(self.last_log())

    def last_log(self) -> str:
        return (self.workdir / f"run{self.runs}.log").read_text()[-3000:]

    def kill_all(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_sigkill_mid_backfill_and_mid_follow_then_restart_equals_uninterrupted(
    chain: Chain, tmp_path: Path
) -> None:
    traders = [t.address for t in chain.h.traders[:3]]
    for i in range(24):  # ~600 blocks, a deposit every 25
        chain.deposit(traders[i % 3], chain.h.weth if i % 2 else chain.h.usdc, 1_000 + i)
        chain.mine(24)
    head = chain.head()
    final = head - WINDOW
    daemon = Daemon(chain, tmp_path / "live")
    try:
        # 1. Mid-backfill: some chunks committed, far from done.
        daemon.start()
        daemon.wait_for(lambda: daemon.cursor() > final // 3)
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = daemon.cursor()
        assert 0 < killed_at < final  # it really was in the middle of the backfill

        # 2. Restart, reach the head, then SIGKILL while it follows new deposits.
        daemon.start()
        daemon.wait_for(lambda: daemon.cursor() == head and daemon.pending() == 0)
        following_from = daemon.cursor()
        done = threading.Event()

        def produce() -> None:
            for i in range(12):
                chain.deposit(traders[i % 3], chain.h.weth, 70_000 + i)
                time.sleep(0.05)
            done.set()

        producer = threading.Thread(target=produce)
        producer.start()
        daemon.wait_for(lambda: daemon.cursor() >= following_from + 4)
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        producer.join()
        assert daemon.cursor() < chain.head()  # killed before it followed everything

        # 3. Restart, let it catch up, stop cleanly.
        daemon.start()
        tip = chain.head()
        daemon.wait_for(
            lambda: (
                daemon.cursor() == tip
                and daemon.cursor("exchange:confirmed") == tip - CONFIRMATIONS
                and daemon.pending() == 0
            )
        )
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        daemon.kill_all()
    # Open what the killed-and-restarted process left (DB + engine journal replay).
    after = Rig(chain, tmp_path / "live", confirmations=CONFIRMATIONS, reorg_window=WINDOW)
    try:
        live = after.ledger()
    finally:
        after.close()
    fresh = fresh_ledger(
        chain, tmp_path / "fresh", confirmations=CONFIRMATIONS, reorg_window=WINDOW
    )
    assert live == fresh
    assert len(live["deposits"]) == 36
    credited_total = sum(live["engine"].values())
    assert credited_total == sum(
        v[2] for v in live["deposits"].values() if v[3].value == "credited"
    )
