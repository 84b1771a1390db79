"""Settlement end to end: anvil + the real engine persisting into PostgreSQL + a real Celery
worker process (threads pool, embedded beat) on Redis under the test's key prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.chain.anvil import Anvil, rpc_call
from backend.chain.exchange import SignedOrder
from backend.config import DEV_PRIVATE_KEYS, Settings
from backend.db.session import make_engine, session_factory
from backend.domain.types import PRICE_SCALE, Side, TimeInForce
from backend.eip712.hashing import digest
from backend.eip712.messages import Cancel as CancelMessage
from backend.engine.client import Intake, TokenInfo
from backend.engine.feed_redis import RedisFeedStore
from backend.engine.feeds import FeedMessage
from backend.engine.service import EngineService
from backend.matching.commands import (
    AddMarket,
    CancelOrder,
    Command,
    Credit,
    MarketSpec,
    PlaceOrder,
)
from backend.matching.events import Fill
from backend.settlement.context import SettlementContext
from tests.integration.contracts.conftest import anvil_accounts
from tests.unit.contracts.harness import LOT, PRICE, UNIT, USDC, Account, Harness

REPO = Path(__file__).resolve().parents[3]
CELERY = Path(sys.executable).parent / "celery"
MARKET = "WETH-USDC"
TICK = 10**6  # LOT * TICK is a multiple of 1e18, PRICE a multiple of TICK
OPERATOR_KEY = DEV_PRIVATE_KEYS[1]  # the harness's operator (accounts[1])
WAIT_S = 40.0


@dataclass
class Stack:
    """The chain (harness), the engine's database, and the worker process."""

    h: Harness
    node: Anvil
    db_url: str
    redis: tuple[str, str]
    tmp: Path
    factory: sessionmaker[Session]
    env_overrides: dict[str, str] = field(default_factory=dict)
    worker: subprocess.Popen[bytes] | None = None
    nonces: dict[str, int] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    stream: bool = False  # the engine and the worker write the event stream's outbox

    # --- engine ----------------------------------------------------------------------------
    def engine(self, commands: list[tuple[Command, Intake | None]]) -> int:
        """Runs `commands` through the real engine service (journal + DB persister); returns
        the number of fills they produced."""

        async def run() -> int:
            service = await EngineService.open(
                journal_dir=self.tmp / "journal",
                session_factory=self.factory,
                fee_recipient=self.h.fee_recipient.address,
                stream=self.stream,
            )
            fills = 0
            try:
                for cmd, intake in commands:
                    outcome = await service.submit(cmd, intake)
                    fills += sum(isinstance(e, Fill) for e in outcome.events)
            finally:
                await service.close()
            return fills

        return asyncio.run(run())

    def listing(self) -> list[tuple[Command, Intake | None]]:
        h = self.h
        spec = MarketSpec(
            MARKET, h.weth.address, h.usdc.address, TICK, LOT, LOT,
            maker_fee_bps=5, taker_fee_bps=10,
        )  # fmt: skip
        tokens = (TokenInfo(h.weth.address, "WETH", 18), TokenInfo(h.usdc.address, "USDC", 6))
        return [(AddMarket(0, 0, spec), Intake(tokens=tokens))]

    def fund(self, trader: Account, weth: int, usdc: int) -> list[tuple[Command, Intake | None]]:
        """Deposits on chain and the matching engine credits (the indexer's job)."""
        out: list[tuple[Command, Intake | None]] = []
        for token, amount in ((self.h.weth, weth), (self.h.usdc, usdc)):
            if amount:
                self.h.fund(trader, token, amount)
                out.append((Credit(0, 0, trader.address, token.address, amount), None))
        return out

    def place(self, trader: Account, side: Side, lots: int) -> tuple[Command, Intake | None]:
        return self.place_signed(self.h.order(trader, side, lots * LOT, PRICE))

    def place_signed(self, signed: SignedOrder) -> tuple[Command, Intake | None]:
        o = signed.order
        side = Side(o.side)
        cmd = PlaceOrder(
            0, 0, self.h.order_hash(signed), o.trader, MARKET, side, o.price, o.amount,
            TimeInForce(o.timeInForce), o.nonce, o.expiry,
        )  # fmt: skip
        return cmd, Intake(signature=signed.signature.to_bytes())

    def cancel(self, signed: SignedOrder) -> tuple[Command, Intake | None]:
        """The trader's signed `Cancel` of `signed`, as the API hands it to the engine."""
        o, h = signed.order, self.h.order_hash(signed)
        signature = self.h.cancel(signed).signature.to_bytes()
        cancel_hash = digest(CancelMessage(trader=o.trader, orderHash=h), self.h.domain)
        return CancelOrder(0, 0, h, o.trader), Intake(signature=signature, signed_hash=cancel_hash)

    def trades(
        self, pairs: list[tuple[Account, Account, int]]
    ) -> list[tuple[Command, Intake | None]]:
        """Each (maker seller, taker buyer, lots) becomes one fill at PRICE."""
        out: list[tuple[Command, Intake | None]] = []
        for maker, taker, lots in pairs:
            out.append(self.place(maker, Side.SELL, lots))
            out.append(self.place(taker, Side.BUY, lots))
        return out

    # --- worker ----------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        url, prefix = self.redis
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HYBRIDEX_MODE": "dev",
            "HYBRIDEX_DATABASE_URL": self.db_url,
            "HYBRIDEX_REDIS_URL": url,
            "HYBRIDEX_REDIS_KEY_PREFIX": prefix,
            "HYBRIDEX_RPC_URL": self.node.url,
            "HYBRIDEX_EXCHANGE_ADDRESS": self.h.exchange.address,
            "HYBRIDEX_OPERATOR_KEY": OPERATOR_KEY,
            "HYBRIDEX_CONFIRMATIONS": "1",
            "HYBRIDEX_BATCH_MAX_FILLS": "4",
            "HYBRIDEX_BATCH_MAX_AGE_S": "0.2",
            "HYBRIDEX_SETTLEMENT_TICK_S": "0.25",
            "HYBRIDEX_STUCK_AFTER_BLOCKS": "2",
            "HYBRIDEX_LOG_LEVEL": "INFO",
        }
        if self.stream:  # no relay runs here: the URL only turns the outbox on
            env["HYBRIDEX_STREAM_URL"] = "nats://127.0.0.1:4222"
        env.update(self.env_overrides)
        env.update(extra)
        return env

    def start_worker(self, **extra: str) -> subprocess.Popen[bytes]:
        assert self.worker is None or self.worker.poll() is not None
        log = self.tmp / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        cmd = [
            str(CELERY), "-A", "backend.settlement.celery_app", "worker", "-B",
            "--pool=threads", "--concurrency=2", "--loglevel=INFO",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
            f"--schedule={self.tmp / 'beat-schedule'}",
        ]  # fmt: skip
        with log.open("wb") as out:
            self.worker = subprocess.Popen(
                cmd, cwd=self.tmp, env=self.env(**extra), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self.worker

    def stop_worker(self) -> None:
        proc, self.worker = self.worker, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGKILL)  # the test's own child group: worker + beat
        proc.wait(10)

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-6000:] for p in self.logs if p.exists())

    # --- observations ----------------------------------------------------------------------
    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.factory() as session:
            return [tuple(r) for r in session.execute(text(sql), params)]

    def context(self, w3: Web3 | None = None, **settings: Any) -> SettlementContext:
        """The worker's context over this stack (dev mode, the harness's operator key)."""
        return SettlementContext.from_settings(
            Settings(
                mode="dev",
                database_url=self.db_url,
                rpc_url=self.node.url,
                exchange_address=self.h.exchange.address,
                operator_key=OPERATOR_KEY,
                **settings,
            ),
            w3=w3 or self.h.w3,
            factory=self.factory,
        )

    def execute(self, sql: str, **params: Any) -> None:
        """A write standing in for a state another component would reach (committed)."""
        with self.factory() as session:
            session.execute(text(sql), params)
            session.commit()

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.worker is not None and self.worker.poll() is not None:
                pass  # a crash point may have killed it on purpose; the caller checks
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.worker_log()}")

    def feed(self, channel: str) -> list[FeedMessage]:
        """Every message of a feed channel the worker wrote under the test's Redis prefix."""
        url, prefix = self.redis

        async def read() -> list[FeedMessage]:
            store = RedisFeedStore(url, prefix=prefix)
            try:
                return await store.read_after(channel, 0) or []
            finally:
                await store.close()

        return asyncio.run(read())

    def fill_states(self) -> dict[str, int]:
        rows = self.query(
            "SELECT coalesce(fs.status, 'unclaimed'), count(*) FROM fills f "
            "LEFT JOIN fill_settlements fs ON fs.fill_id = f.id GROUP BY 1"
        )
        return {str(s): int(n) for s, n in rows}

    def all_settled(self, failed: int = 0) -> bool:
        states = self.fill_states()
        total = sum(states.values())
        return (
            total > 0
            and states.get("settled", 0) + failed == total
            and states.get("failed", 0) == failed
        )

    def engine_balances(self) -> dict[tuple[str, str], int]:
        return {
            (t, k): int(v) for t, k, v in self.query("SELECT trader, token, total FROM balances")
        }

    def assert_chain_matches_engine(self) -> None:
        for (trader, token), total in self.engine_balances().items():
            assert self.h.exchange.balance_of(trader, token) == total, (trader, token)

    def assert_batches_sequential(self) -> list[int]:
        ids = [int(r[0]) for r in self.query("SELECT batch_id FROM settlement_batches ORDER BY 1")]
        assert ids == list(range(1, len(ids) + 1))
        assert self.h.exchange.last_batch_id() == len(ids)
        statuses = {r[0] for r in self.query("SELECT status FROM settlement_batches")}
        assert statuses == {"settled"}
        return ids


@pytest.fixture
def stack(db_url: str, redis_prefix: tuple[str, str], tmp_path: Path) -> Iterator[Stack]:
    with Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        h = Harness(w3, anvil_accounts())
        engine = make_engine(db_url)
        s = Stack(h, node, db_url, redis_prefix, tmp_path, session_factory(engine))
        try:
            yield s
        finally:
            s.stop_worker()
            engine.dispose()


def automine(node: Anvil, on: bool) -> None:
    rpc_call(node.url, "evm_setAutomine", [on])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The worker's /metrics: (sample name, labels) → value."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


__all__ = ["PRICE_SCALE", "UNIT", "USDC", "Stack", "automine", "scrape"]
