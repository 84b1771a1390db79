"""Settlement under a sustained flow of fills, on anvil mining one block per second (SPEC §12).

The real engine service (journal + persister into a fresh PostgreSQL database) matches a
steady stream of crossing orders between repeat traders at `--rate` fills/s for `--duration`
seconds; the settlement tick (`backend.settlement.tick`, the code the Celery beat task runs,
here driven in-process by `SettlementLoop`) batches them, simulates, signs, broadcasts and
follows the transactions. Per fill: latency in blocks = block that settled it − chain head when
the engine matched it (1 = the very next block). Target: p99 ≤ 2 blocks at 200 fills/s.

    .venv/bin/python bench/settlement.py                 # 200 fills/s for 20 s, table
    .venv/bin/python bench/settlement.py --quick         # 50 fills/s for 5 s (smoke)
    .venv/bin/python bench/settlement.py --json          # table, then one JSON object last
    .venv/bin/python bench/settlement.py --batch-max-age 1.0 --tick 0.25   # other tuning

The worker's tuning defaults to what an operator would set for this load (200 fills/s, 1 s
blocks; docs/settlement.md "Tuning"): batches of up to 200 fills or 0.3 s, a tick every 0.1 s,
4 transactions in flight, 1 confirmation.

Needs PostgreSQL (HYBRIDEX_BENCH_PG_ADMIN_URL, default the local server as `postgres`); the
database it creates is dropped afterwards. Bounded: generation stops after `--duration`, the
drain after `--drain-timeout` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine, print_machine
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from web3 import Web3

from backend.chain.anvil import Anvil, rpc_call
from backend.chain.artifacts import load
from backend.chain.exchange import deploy_exchange
from backend.config import DEV_PRIVATE_KEYS, Settings
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.domain.types import Side, TimeInForce
from backend.eip712 import Domain, Order
from backend.eip712.hashing import digest
from backend.eip712.signing import sign
from backend.engine.client import Intake, TokenInfo
from backend.engine.service import EngineService
from backend.matching.commands import AddMarket, Credit, MarketSpec, PlaceOrder
from backend.settlement.context import SettlementContext
from backend.settlement.inprocess import SettlementLoop

PG_ADMIN_URL = os.environ.get(
    "HYBRIDEX_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARKET = "WETH-USDC"
LOT = 10**15  # 0.001 WETH
TICK = 10**6
PRICE = 3_000 * 10**6  # 3000 USDC per WETH (quote units per base unit × 1e18)
FUND = 10**24  # per trader and token: never the limit
TRADERS = 20
BLOCK_TIME_S = 1
TARGET = {"rate": 200, "latency_p99_blocks": 2}


@dataclass(frozen=True)
class Tuning:
    """The worker settings under test (HYBRIDEX_BATCH_MAX_FILLS, …)."""

    batch_max_fills: int = 200
    batch_max_age_s: float = 0.3
    settlement_tick_s: float = 0.1
    max_in_flight_txs: int = 4
    confirmations: int = 1

    def describe(self) -> str:
        return (
            f"batches ≤ {self.batch_max_fills} fills or {self.batch_max_age_s} s; "
            f"tick {self.settlement_tick_s} s; ≤ {self.max_in_flight_txs} txs in flight; "
            f"confirmations {self.confirmations}"
        )


@dataclass
class Chain:
    node: Anvil
    w3: Web3
    exchange: str
    weth: str
    usdc: str
    admin: str
    operator_key: str
    fee_recipient: str

    def head(self) -> int:
        return int(self.w3.eth.block_number)


def _wait(w3: Web3, tx: Any) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError(f"setup transaction failed: {receipt}")


def setup_chain(node: Anvil, traders: list[LocalAccount]) -> Chain:
    """Deploys and funds with auto-mining, then switches anvil to one block per second."""
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
    admin, operator, fee = (Account.from_key(k).address for k in DEV_PRIVATE_KEYS[:3])
    exchange = deploy_exchange(
        w3, deployer=admin, admin=admin, operator=operator, fee_recipient=fee, exit_delay=10
    )
    artifact = load("DemoToken")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tokens = []
    for name, symbol, decimals in (("Wrapped Ether", "WETH", 18), ("USD Coin", "USDC", 6)):
        tx = factory.constructor(name, symbol, decimals).transact({"from": admin, "gas": 3_000_000})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        tokens.append(w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi))
    ex = w3.eth.contract(address=exchange, abi=load("Exchange").abi)
    last: Any = None
    for token in tokens:
        _wait(w3, token.functions.mint(admin, FUND * len(traders)).transact({"from": admin}))
        _wait(w3, token.functions.approve(exchange, 2**256 - 1).transact({"from": admin}))
        for t in traders:
            fn = ex.functions.depositFor(t.address, token.address, FUND)
            last = fn.transact({"from": admin, "gas": 200_000})
    _wait(w3, last)
    rpc_call(node.url, "evm_setIntervalMining", [BLOCK_TIME_S])
    return Chain(
        node, w3, exchange, tokens[0].address, tokens[1].address, admin, DEV_PRIVATE_KEYS[1], fee
    )


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"hybridex_bench_settlement_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class BlockWatcher:
    """(wall time, head) at every new block, so a moment maps to the head at that moment."""

    w3: Web3
    times: list[float] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            head = int(self.w3.eth.block_number)
            if not self.heads or head != self.heads[-1]:
                self.times.append(time.time())
                self.heads.append(head)
            self.stop.wait(0.02)

    def head_at(self, moment: float) -> int:
        i = bisect.bisect_right(self.times, moment) - 1
        return self.heads[max(i, 0)]


def signed_orders(
    chain: Chain, traders: list[LocalAccount], fills: int, seed: int
) -> list[tuple[PlaceOrder, Intake, PlaceOrder, Intake]]:
    """`fills` (maker sell, taker buy) pairs between random distinct repeat traders."""
    rng = random.Random(seed)
    domain = Domain(chain.w3.eth.chain_id, chain.exchange)
    nonces = dict.fromkeys((t.address for t in traders), 1)

    def one(trader: LocalAccount, side: Side, lots: int) -> tuple[PlaceOrder, Intake]:
        nonce = nonces[trader.address]
        nonces[trader.address] = nonce + 1
        order = Order(
            trader=trader.address, baseToken=chain.weth, quoteToken=chain.usdc, side=side,
            price=PRICE, amount=lots * LOT, timeInForce=TimeInForce.GTC, nonce=nonce, expiry=0,
        )  # fmt: skip
        sig = sign(order, domain, trader.key).to_bytes()
        cmd = PlaceOrder(
            0, 0, digest(order, domain), trader.address, MARKET, side, PRICE, lots * LOT,
            TimeInForce.GTC, nonce, 0,
        )  # fmt: skip
        return cmd, Intake(signature=sig)

    out = []
    for _ in range(fills):
        maker, taker = rng.sample(traders, 2)
        lots = rng.randint(1, 5)
        out.append((*one(maker, Side.SELL, lots), *one(taker, Side.BUY, lots)))
    return out


async def generate(
    service: EngineService,
    pairs: list[tuple[PlaceOrder, Intake, PlaceOrder, Intake]],
    rate: float,
) -> dict[int, float]:
    """Submits one crossing pair every 1/rate s (paced, catching up if late); seq → time."""
    matched: dict[int, float] = {}
    start = time.monotonic()
    for i, (maker, mi, taker, ti) in enumerate(pairs):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await service.submit(maker, mi)
        outcome = await service.submit(taker, ti)
        matched[outcome.seq] = time.time()
    return matched


def percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]  # nearest rank


def run(
    rate: float, duration: float, drain_timeout: float, seed: int, tuning: Tuning | None = None
) -> dict[str, Any]:
    tuning = tuning or Tuning()
    traders = [Account.from_key(keccak(text=f"hybridex-bench-{i}")) for i in range(TRADERS)]
    n_fills = max(1, int(rate * duration))
    with Anvil() as node, fresh_database() as db_url, tempfile.TemporaryDirectory() as tmp:
        chain = setup_chain(node, traders)
        pairs = signed_orders(chain, traders, n_fills, seed)
        factory = session_factory(make_engine(db_url))
        settings = Settings(
            mode="dev",
            database_url=db_url,
            rpc_url=node.url,
            exchange_address=chain.exchange,
            operator_key=chain.operator_key,
            confirmations=tuning.confirmations,
            batch_max_fills=tuning.batch_max_fills,
            batch_max_age_s=tuning.batch_max_age_s,
            settlement_tick_s=tuning.settlement_tick_s,
            max_in_flight_txs=tuning.max_in_flight_txs,
        )
        ctx = SettlementContext.from_settings(settings, w3=chain.w3, factory=factory)
        watcher = BlockWatcher(chain.w3)
        watch = threading.Thread(target=watcher.run, daemon=True)
        watch.start()

        async def engine_phase() -> tuple[dict[int, float], float, float]:
            service = await EngineService.open(
                journal_dir=Path(tmp) / "journal",
                session_factory=factory,
                fee_recipient=chain.fee_recipient,
                sweep_interval=3600,
            )
            try:
                spec = MarketSpec(MARKET, chain.weth, chain.usdc, TICK, LOT, LOT, 5, 10)
                tokens = (TokenInfo(chain.weth, "WETH", 18), TokenInfo(chain.usdc, "USDC", 6))
                await service.submit(AddMarket(0, 0, spec), Intake(tokens=tokens))
                for t in traders:
                    for token in (chain.weth, chain.usdc):
                        await service.submit(Credit(0, 0, t.address, token, FUND))
                loop.start()
                t0 = time.time()
                matched = await generate(service, pairs, rate)
                return matched, t0, time.time()
            finally:
                await service.close()  # flushes the persister

        loop = SettlementLoop(ctx)
        try:
            matched, t0, t_gen = asyncio.run(engine_phase())
            deadline = time.monotonic() + drain_timeout
            settled = 0
            while time.monotonic() < deadline:
                with factory() as s:
                    settled = int(
                        s.scalar(
                            text("SELECT count(*) FROM fill_settlements WHERE status = 'settled'")
                        )
                        or 0
                    )
                if settled >= n_fills:
                    break
                time.sleep(0.1)
            t_end = time.time()
        finally:
            loop.stop()
            watcher.stop.set()
            watch.join(5)
        with factory() as s:
            rows = s.execute(
                text(
                    "SELECT f.seq, b.settled_block FROM fills f "
                    "JOIN fill_settlements fs ON fs.fill_id = f.id "
                    "JOIN settlement_batches b ON b.batch_id = fs.batch_id "
                    "WHERE fs.status = 'settled'"
                )
            ).all()
            gas, batches = s.execute(
                text(
                    "SELECT coalesce(sum(gas_used), 0), count(*) FROM settlement_batches "
                    "WHERE status = 'settled'"
                )
            ).one()
            failed = int(
                s.scalar(text("SELECT count(*) FROM fill_settlements WHERE status <> 'settled'"))
                or 0
            )
        factory.kw["bind"].dispose()
    latencies = [int(block) - watcher.head_at(matched[int(seq)]) for seq, block in rows]
    settled = len(rows)
    return {
        "rate_offered": rate,
        "duration_s": duration,
        "fills": n_fills,
        "fills_settled": settled,
        "fills_not_settled": n_fills - settled,
        "fills_other_state": failed,
        "batches": int(batches),
        "fills_per_batch": round(settled / max(1, int(batches)), 1),
        "fills_per_s": round(settled / max(1e-9, t_end - t0), 1),
        "generated_fills_per_s": round(n_fills / max(1e-9, t_gen - t0), 1),
        "latency_p50_blocks": percentile(latencies, 0.50) if latencies else None,
        "latency_p99_blocks": percentile(latencies, 0.99) if latencies else None,
        "latency_max_blocks": max(latencies) if latencies else None,
        "gas_per_fill": int(gas) // max(1, settled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="Offered fills per second.")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of offered flow.")
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="50 fills/s for 5 s (smoke).")
    parser.add_argument("--json", action="store_true")
    default = Tuning()
    parser.add_argument("--batch-max-fills", type=int, default=default.batch_max_fills)
    parser.add_argument("--batch-max-age", type=float, default=default.batch_max_age_s)
    parser.add_argument("--tick", type=float, default=default.settlement_tick_s)
    parser.add_argument("--max-in-flight", type=int, default=default.max_in_flight_txs)
    args = parser.parse_args()
    if args.quick:
        args.rate, args.duration = 50.0, 5.0
    tuning = Tuning(
        batch_max_fills=args.batch_max_fills,
        batch_max_age_s=args.batch_max_age,
        settlement_tick_s=args.tick,
        max_in_flight_txs=args.max_in_flight,
    )
    result = run(args.rate, args.duration, args.drain_timeout, args.seed, tuning)
    print_machine()
    print(f"anvil block time {BLOCK_TIME_S} s; {tuning.describe()}")
    print(f"{'figure':<24}{'value':>14}  target")
    targets = {
        "latency_p99_blocks": f"≤ {TARGET['latency_p99_blocks']} at {TARGET['rate']} fills/s",
        "gas_per_fill": "≤ 30000 (repeat traders, 200-fill batch)",
    }
    for key, value in result.items():
        print(f"{key:<24}{value!s:>14}  {targets.get(key, '')}")
    if args.json:
        print(json.dumps({**result, "tuning": asdict(tuning), "machine": machine()}))


if __name__ == "__main__":
    main()
