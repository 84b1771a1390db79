"""`hybridex indexer` against a separate `hybridex engine` process (production wiring): credits
travel over TCP, and an in-doubt command is resolved through the engine's FIND request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from backend.chain.anvil import Anvil, free_port
from backend.db import make_engine, session_factory, unit_of_work
from backend.db.models.indexer import IndexerCommand
from backend.db.models.reference import Token
from tests.integration.indexer.rig import Chain

pytestmark = pytest.mark.integration

HYBRIDEX = Path(sys.executable).parent / "hybridex"


@pytest.fixture
def chain() -> Iterator[Chain]:
    with Anvil() as node:
        yield Chain.start(node)


class Processes:
    def __init__(self, chain: Chain, db_url: str, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "HYBRIDEX_MODE": "dev",
            "HYBRIDEX_DATABASE_URL": db_url,
            "HYBRIDEX_RPC_URL": chain.node.url,
            "HYBRIDEX_CHAIN_ID": "31337",
            "HYBRIDEX_EXCHANGE_ADDRESS": chain.h.exchange.address,
            "HYBRIDEX_CONFIRMATIONS": "1",
            "HYBRIDEX_ENGINE_PORT": str(free_port()),
            "HYBRIDEX_ENGINE_JOURNAL_DIR": str(tmp / "journal"),
            "HYBRIDEX_INDEXER_POLL_INTERVAL_S": "0.05",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(HYBRIDEX), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, self.log(name)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited\n{self.log(name)}"
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out: {what}\n" + "\n".join(map(self.log, self.procs)))

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_credits_reach_a_separate_engine_and_in_doubt_ones_are_not_resent(
    chain: Chain, db_url: str, tmp_path: Path
) -> None:
    factory = session_factory(make_engine(db_url))
    with unit_of_work(factory) as session:
        for i, token in enumerate(chain.tokens):
            session.add(Token(address=token.address, symbol=f"T{i}", decimals=18))

    def totals() -> dict[tuple[str, str], int]:
        with factory() as session:
            rows = session.execute(text("SELECT trader, token, total FROM balances"))
            return {(t, k): int(v) for t, k, v in rows}

    def all_done() -> bool:
        with factory() as session:
            statuses = session.scalars(select(IndexerCommand.status)).all()
        return len(statuses) == 3 and set(statuses) == {"done"}

    traders = [t.address for t in chain.h.traders[:3]]
    weth = chain.h.weth.address
    expected = {(t, weth): 1_000 * (i + 1) for i, t in enumerate(traders)}
    p = Processes(chain, db_url, tmp_path)
    try:
        p.start("engine", "engine", "--feeds", "none")
        p.start("indexer", "indexer")
        for i, trader in enumerate(traders):
            chain.deposit(trader, chain.h.weth, 1_000 * (i + 1))
        chain.mine(2)
        p.wait("credits applied by the engine process", lambda: totals() == expected)
        p.wait("outbox drained", all_done)

        # The indexer dies with an answer unrecorded: the row says `submitted`, the command is
        # in the engine's journal. On restart it must ask the engine, not send it again.
        p.stop("indexer")
        with unit_of_work(factory) as session:
            session.execute(update(IndexerCommand).values(status="submitted"))
        p.start("indexer", "indexer")
        p.wait("in-doubt rows resolved", all_done)
        chain.mine(3)
        time.sleep(1.0)  # several polls: nothing may arrive twice
        assert totals() == expected
        assert "in-doubt command was applied" in p.log("indexer")
        p.stop("indexer")
        p.stop("engine")
    finally:
        p.kill_all()
        factory.kw["bind"].dispose()
