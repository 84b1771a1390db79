"""A real anvil + Exchange, a real in-process engine (journal on disk) and an indexer on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.chain.anvil import Anvil, rpc_call
from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.db.models.indexer import ChainBalance, Deposit
from backend.db.models.reference import Token
from backend.domain.errors import RetryableError
from backend.domain.types import DepositStatus
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from indexer.daemon import Indexer, IndexerConfig
from indexer.engine_sink import EngineClientSink, JournalDirLookup
from indexer.projection import Outbox
from indexer.rpc import Backoff, RpcClient
from tests.integration.contracts.conftest import anvil_accounts
from tests.unit.contracts.harness import Harness

GAS = 300_000
BIG = 10**30


@dataclass
class EngineBox:
    """The production engine service on its own event loop, journaling under `journal_dir`."""

    journal_dir: Path
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    client: InProcessEngineClient = field(init=False)

    def __post_init__(self) -> None:
        service = self.loop.run_until_complete(
            EngineService.open(journal_dir=self.journal_dir, sweep_interval=3600)
        )
        self.client = InProcessEngineClient(service)

    @property
    def service(self) -> EngineService:
        return self.client.service

    def sink(self) -> EngineClientSink:
        return EngineClientSink(self.client, self.loop)

    def total(self, trader: str, token: str) -> int:
        return self.service.engine.balance(trader, token)[0]

    def frozen(self, trader: str) -> bool:
        return self.service.engine.is_frozen(trader)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@dataclass
class Chain:
    node: Anvil
    h: Harness

    @classmethod
    def start(cls, node: Anvil) -> Chain:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        h = Harness(w3, anvil_accounts())
        # The admin pays every deposit (depositFor): one big mint up front, so a replacement
        # deposit in a reorg needs nothing else from the orphaned blocks.
        for token in (h.weth, h.usdc, h.wbtc):
            h.send(token.functions.mint(h.admin.address, BIG), h.admin)
        return cls(node, h)

    @property
    def w3(self) -> Web3:
        return self.h.w3

    @property
    def tokens(self) -> list[Any]:
        return [self.h.weth, self.h.usdc, self.h.wbtc]

    def head(self) -> int:
        return self.w3.eth.block_number

    def deposit(self, trader: str, token: Any, amount: int) -> None:
        fn = self.h.contract.functions.depositFor(trader, token.address, amount)
        self.h.send(fn, self.h.admin, gas=GAS)

    def raw_deposit(self, trader: str, token: Any, amount: int, nonce: int) -> str:
        """A signed depositFor by the admin with an explicit nonce (for anvil_reorg)."""
        tx = self.h.contract.functions.depositFor(trader, token.address, amount).build_transaction(
            {
                "from": self.h.admin.address,
                "nonce": nonce,
                "gas": GAS,
                "gasPrice": 10 * 10**9,
                "chainId": self.w3.eth.chain_id,
            }
        )
        signed = EthAccount.from_key(self.h.admin.key).sign_transaction(tx)
        return "0x" + bytes(signed.raw_transaction).hex()

    def reorg(self, depth: int, deposits: Sequence[tuple[str, Any, int]] = ()) -> None:
        """Replace the last `depth` blocks; `deposits` go into the first new block."""
        ancestor = self.head() - depth
        nonce = self.w3.eth.get_transaction_count(self.h.admin.address, ancestor)
        txs = [
            [self.raw_deposit(t, tok, amt, nonce + i), 0]
            for i, (t, tok, amt) in enumerate(deposits)
        ]
        rpc_call(self.node.url, "anvil_reorg", [depth, txs], timeout=30)

    def mine(self, n: int) -> None:
        rpc_call(self.node.url, "anvil_mine", [hex(n)])

    def request_exit(self, trader_index: int) -> None:
        trader = self.h.traders[trader_index]
        self.h.send(self.h.contract.functions.requestExit(), trader, gas=GAS)


@dataclass
class Rig:
    chain: Chain
    workdir: Path
    confirmations: int = 2
    reorg_window: int = 16
    max_blocks_per_poll: int = 500
    rpc_url: str | None = None
    """Another way to the node (a fault-injecting proxy); the node itself by default."""
    rpc_timeout_s: float = 10.0
    stream: bool = False
    """Write deposits and withdrawals to the event stream's outbox."""
    factory: sessionmaker[Session] = field(init=False)
    engine: EngineBox = field(init=False)
    indexer: Indexer = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{self.workdir / 'indexer.db'}"
        upgrade(url)
        self.factory = session_factory(make_engine(url))
        with unit_of_work(self.factory) as session:
            if session.scalar(select(Token.address).limit(1)) is None:
                for i, token in enumerate(self.chain.tokens):
                    session.add(Token(address=token.address, symbol=f"T{i}", decimals=18))
        self.engine = EngineBox(self.workdir / "journal")
        self.indexer = self.make_indexer()

    def make_indexer(self) -> Indexer:
        rpc = RpcClient(
            self.rpc_url or self.chain.node.url,
            timeout_s=self.rpc_timeout_s,
            backoff=Backoff(base_s=0.01, cap_s=0.2),
        )
        outbox = Outbox(self.factory, self.engine.sink(), JournalDirLookup(self.engine.journal_dir))
        config = IndexerConfig(
            exchange_address=self.chain.h.exchange.address,
            chain_id=31337,
            confirmations=self.confirmations,
            reorg_window=self.reorg_window,
            start_block=0,
            poll_interval_s=0.05,
            max_blocks_per_poll=self.max_blocks_per_poll,
            stream=self.stream,
        )
        indexer = Indexer(config, rpc, self.factory, outbox)
        indexer.check_chain()
        indexer.outbox.resolve_in_doubt()
        return indexer

    def sync(self) -> None:
        self.indexer.run_until_synced()

    def sync_through_faults(self, max_steps: int = 10_000) -> int:
        """Steps until at the head, retrying a step that failed as the daemon's loop does;
        returns how many steps failed."""
        failed = 0
        for _ in range(max_steps):
            try:
                if not self.indexer.step():
                    return failed
            except RetryableError:
                failed += 1
        raise RuntimeError("still not at the head")

    def close(self) -> None:
        self.indexer.rpc.close()
        self.engine.close()

    # ------------------------------------------------------------------ what we compare

    def ledger(self) -> dict[str, Any]:
        """Live deposits, on-chain balances and the engine's totals for every trader/token."""
        with unit_of_work(self.factory) as session:
            deposits = {
                (d.block_hash, d.log_index): (d.trader, d.token, d.amount, d.status)
                for d in session.scalars(
                    select(Deposit).where(Deposit.status != DepositStatus.ORPHANED)
                )
            }
            balances = {
                (b.trader, b.token): b.amount
                for b in session.scalars(select(ChainBalance))
                if b.amount
            }
        engine = {
            (trader, token): total
            for trader, token, total, _ in self.engine.service.engine.balance_rows()
            if total
        }
        return {"deposits": deposits, "chain_balances": balances, "engine": engine}


def fresh_ledger(chain: Chain, workdir: Path, **kwargs: Any) -> dict[str, Any]:
    """Index the canonical chain from scratch into a new DB and a new engine."""
    rig = Rig(chain, workdir, **kwargs)
    try:
        rig.sync()
        return rig.ledger()
    finally:
        rig.close()
