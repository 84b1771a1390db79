"""Indexer backfill against a local anvil (SPEC §12: ≥ 5k blocks/s sparse, ≥ 20k events/s dense).

Scenarios (issue 5), each on its own anvil, indexed from block 0 into a fresh PostgreSQL
database with the real engine (journal on disk) receiving every credit:
  sparse  50k blocks holding 10k deposits (25 deposits in one block every 125 blocks)
  dense   2k blocks holding 100k deposits (50 per block)
The chain is built fast and is not timed: one `BenchFunder.depositForAll` transaction per
busy block (automine; calldata encoded by hand, web3's encoder costs more than anvil's
execution), `anvil_mine` for the empty ones. anvil's cost per mined block grows with the
state's size (it re-derives the state root each block: ~1.8 ms per empty block with 1,000
funded traders, ~0.2 ms with 100), so the sparse chain's deposits go to 100 traders and the
dense chain's (2k blocks only) to 1,000. The timed part is `Indexer` from an
empty database to the head: `eth_getLogs` chunks, decoding, events + deposits + outbox rows +
cursor per chunk, confirmations, and the outbox drain that credits the engine (shown apart).
Each scenario's indexing is bounded by --budget-s (default 30 s); the figures are then rates
over the blocks and events indexed within it.

Floor (dense only, after the indexing): the same chain fetched with the indexer's own
`RpcClient.get_logs` and decoded with its `EventCodec`, in ranges of FLOOR_RANGE blocks, with
nothing stored or credited. No indexer on that node can go faster than this.

    .venv/bin/python bench/indexer.py            # table
    .venv/bin/python bench/indexer.py --json     # table, then one JSON object on the last line
    .venv/bin/python bench/indexer.py --quick    # smoke run: 5k/1k sparse, 200/10k dense
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import structlog
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.exchange import deploy_exchange
from backend.db import make_engine, session_factory, unit_of_work
from backend.db.migrate import upgrade
from backend.db.models.reference import Token
from backend.engine.inprocess import InProcessEngineClient
from backend.engine.service import EngineService
from bench._machine import machine
from indexer.daemon import Indexer, IndexerConfig
from indexer.engine_sink import EngineClientSink, JournalDirLookup
from indexer.events import EventCodec
from indexer.projection import Outbox
from indexer.rpc import RpcClient, parse_log

PG_ADMIN_URL = os.environ.get(
    "HYBRIDEX_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TARGETS = {"sparse_blocks_per_s": 5_000, "dense_events_per_s": 20_000}
CONFIRMATIONS, REORG_WINDOW = 12, 64
TRADERS = 1_000
FLOOR_RANGE = 100  # blocks per eth_getLogs in the floor pass (5,000 dense logs)
DEPOSIT_FOR_ALL = keccak(text="depositForAll(address,address,address[],uint256)")[:4]


@dataclass(frozen=True)
class Scenario:
    name: str
    blocks: int
    deposits: int
    per_busy_block: int
    traders: int = TRADERS

    @property
    def busy_blocks(self) -> int:
        return self.deposits // self.per_busy_block


class ChainBuilder:
    """An Exchange, a token and a BenchFunder on `node`; busy and empty blocks on demand."""

    def __init__(self, node: Anvil) -> None:
        self.url = node.url
        self.w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        self.admin = self.w3.eth.accounts[0]
        address = deploy_exchange(
            self.w3,
            deployer=self.admin,
            admin=self.admin,
            operator=self.admin,
            fee_recipient=self.admin,
            exit_delay=100,
        )
        self.exchange = self.w3.eth.contract(address=address, abi=load("Exchange").abi)
        self.token = self._deploy("DemoToken", "Wrapped Ether", "WETH", 18)
        self.funder = self._deploy("BenchFunder")
        self._send(self.token.functions.mint(self.funder.address, 10**40))
        self.traders = [
            to_checksum_address(keccak(b"hybridex-bench-indexer-%d" % i)[:20])
            for i in range(TRADERS)
        ]
        self.http = httpx.Client(timeout=120)
        self._id = 0

    def _deploy(self, name: str, *args: Any) -> Any:
        art = load(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(*args).transact({"from": self.admin, "gas": 5_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)

    def _send(self, fn: Any) -> None:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": self.admin, "gas": 1_000_000})
        )
        assert receipt["status"] == 1

    def _rpc(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        reply = self.http.post(self.url, json=body).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def deposit_for_all(self, traders: Sequence[str], amount: int) -> str:
        """Calldata of `BenchFunder.depositForAll(exchange, token, traders, amount)`."""

        def word(value: int | str) -> bytes:
            return (int(value, 16) if isinstance(value, str) else value).to_bytes(32, "big")

        head = word(self.exchange.address) + word(self.token.address) + word(4 * 32)
        body = word(amount) + word(len(traders)) + b"".join(word(t) for t in traders)
        return "0x" + (DEPOSIT_FOR_ALL + head + body).hex()

    def build(self, s: Scenario) -> int:
        """Mines `s.blocks` blocks (after the set-up ones) holding `s.deposits` deposits.

        Automine is off while building: each busy block is one `eth_sendTransaction` into the
        pool, then `anvil_mine` of that block and the empty ones after it — the layout does
        not depend on how fast anvil mines (with automine, quick sends share a block).
        """
        start: int = self.w3.eth.block_number
        gap = s.blocks // s.busy_blocks - 1
        gas = hex(100_000 + 90_000 * s.per_busy_block)
        nonce = self.w3.eth.get_transaction_count(self.admin)
        self._rpc("evm_setAutomine", [False])
        for b in range(s.busy_blocks):
            first = (b * s.per_busy_block) % s.traders
            chunk = [self.traders[(first + i) % s.traders] for i in range(s.per_busy_block)]
            tx = {
                "from": self.admin,
                "to": self.funder.address,
                "data": self.deposit_for_all(chunk, 1_000 + b),
                "gas": gas,
                "nonce": hex(nonce + b),
            }
            self._rpc("eth_sendTransaction", [tx])
            self._rpc("anvil_mine", [hex(gap + 1)])
        rest = s.blocks - s.busy_blocks * (gap + 1)
        if rest > 0:
            self._rpc("anvil_mine", [hex(rest)])
        self._rpc("evm_setAutomine", [True])
        head: int = self.w3.eth.block_number
        if head - start != s.blocks:
            raise RuntimeError(f"{s.name}: built {head - start} blocks, expected {s.blocks}")
        return head


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"hybridex_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def index(chain: ChainBuilder, db_url: str, journal: Path, budget_s: float) -> dict[str, float]:
    """Indexes the chain from block 0 to the head, or for `budget_s` (the figures are then
    rates over the part indexed); returns timings and counts."""
    upgrade(db_url)
    engine = make_engine(db_url)
    factory = session_factory(engine)
    with unit_of_work(factory) as session:
        session.add(Token(address=chain.token.address, symbol="WETH", decimals=18))
    loop = asyncio.new_event_loop()
    service = loop.run_until_complete(EngineService.open(journal_dir=journal, sweep_interval=3600))
    client = InProcessEngineClient(service)
    rpc = RpcClient(chain.url, timeout_s=60)
    outbox = Outbox(
        factory, EngineClientSink(client, loop, timeout_s=60), JournalDirLookup(journal)
    )
    drain_s = 0.0
    real_drain = outbox.drain

    def timed_drain() -> int:
        nonlocal drain_s
        t = time.perf_counter()
        try:
            return real_drain()
        finally:
            drain_s += time.perf_counter() - t

    outbox.drain = timed_drain  # type: ignore[method-assign]
    config = IndexerConfig(
        exchange_address=chain.exchange.address,
        chain_id=31337,
        confirmations=CONFIRMATIONS,
        reorg_window=REORG_WINDOW,
        poll_interval_s=0.01,
    )
    daemon = Indexer(config, rpc, factory, outbox)
    try:
        daemon.check_chain()
        steps = 0
        t0 = time.perf_counter()
        complete = False
        while time.perf_counter() - t0 < budget_s:
            if not daemon.step():
                complete = True
                break
            steps += 1
        total_s = time.perf_counter() - t0
        with engine.connect() as conn:
            # Deposits only: the chain also carries the Exchange's own set-up events (its
            # constructor's FeeRecipientSet), which the indexer follows too.
            events = conn.execute(
                text("SELECT count(*) FROM chain_events WHERE event = 'Deposited'")
            ).scalar_one()
            indexed = conn.execute(
                text("SELECT block_number FROM indexer_cursors WHERE name = 'exchange'")
            ).scalar_one()
            credited = conn.execute(
                text("SELECT count(*) FROM deposits WHERE status = 'credited'")
            ).scalar_one()
        credited_total = sum(total for _, total in service.engine.token_totals())
        return {
            "seconds": total_s,
            "drain_seconds": drain_s,
            "steps": steps,
            "events": int(events),
            "indexed_blocks": int(indexed) + 1,
            "complete": complete,
            "credited": int(credited),
            "engine_total": credited_total,
            "final_range": daemon.ranges.size,
        }
    finally:
        rpc.close()
        loop.run_until_complete(client.close())
        loop.close()
        engine.dispose()


def fetch_and_decode(chain: ChainBuilder, head: int) -> tuple[int, float, float]:
    """(logs, fetch seconds, parse + decode seconds) for every followed log up to `head`, with
    the indexer's own RPC client and codec; nothing stored."""
    rpc = RpcClient(chain.url, timeout_s=60)
    codec = EventCodec.exchange()
    topics = [["0x" + t.hex() for t in codec.topics]]
    n, fetch_s, decode_s = 0, 0.0, 0.0
    try:
        for start in range(0, head + 1, FLOOR_RANGE):
            flt = {
                "address": chain.exchange.address,
                "topics": topics,
                "fromBlock": hex(start),
                "toBlock": hex(min(head, start + FLOOR_RANGE - 1)),
            }
            t0 = time.perf_counter()
            raws = rpc.call("eth_getLogs", [flt])  # the node, HTTP, JSON
            t1 = time.perf_counter()
            n += sum(1 for raw in raws if codec.decode(parse_log(raw)) is not None)
            fetch_s, decode_s = fetch_s + t1 - t0, decode_s + time.perf_counter() - t1
        return n, fetch_s, decode_s
    finally:
        rpc.close()


def run(s: Scenario, budget_s: float, floor: bool = False) -> dict[str, Any]:
    with Anvil() as node:
        chain = ChainBuilder(node)
        t = time.perf_counter()
        head = chain.build(s)
        build_s = time.perf_counter() - t
        with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
            r = index(chain, url, Path(tmp) / "journal", budget_s)
        floor_logs, fetch_s, decode_s = fetch_and_decode(chain, head) if floor else (0, 0.0, 0.0)
    if r["complete"] and r["events"] != s.deposits:
        raise RuntimeError(f"{s.name}: indexed {r['events']} events, expected {s.deposits}")
    blocks, events = int(r["indexed_blocks"]), int(r["events"])
    return {
        "chain_blocks": head + 1,
        "chain_events": s.deposits,
        "complete": bool(r["complete"]),
        "blocks": blocks,
        "events": events,
        "credited": r["credited"],
        "build_s": round(build_s, 1),
        "index_s": round(r["seconds"], 2),
        "drain_s": round(r["drain_seconds"], 2),
        "steps": int(r["steps"]),
        "blocks_per_s": round(blocks / r["seconds"]),
        "events_per_s": round(events / r["seconds"]),
        "events_per_s_without_drain": round(events / max(1e-9, r["seconds"] - r["drain_seconds"])),
        **(
            {
                "floor_fetch_decode_events_per_s": round(floor_logs / (fetch_s + decode_s)),
                "floor_fetch_us_per_event": round(1e6 * fetch_s / floor_logs, 1),
                "floor_decode_us_per_event": round(1e6 * decode_s / floor_logs, 1),
            }
            if floor and floor_logs
            else {}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 10x smaller chains")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop indexing a scenario after this long (default 30 s, --quick 10 s) and "
        "report rates over what was indexed",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings+
    k = 10 if args.quick else 1
    if args.budget_s is None:
        args.budget_s = 10.0 if args.quick else 30.0
    scenarios = [
        Scenario("sparse", 50_000 // k, 10_000 // k, 25, traders=100),
        Scenario("dense", 2_000 // k, 100_000 // k, 50),
    ]
    results = {s.name: run(s, args.budget_s, floor=s.name == "dense") for s in scenarios}
    m = machine()
    print(f"Hybridex indexer backfill benchmark — {m['date']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}")
    print(
        f"anvil (local, --prune-history 64), PostgreSQL, in-process engine; "
        f"confirmations {CONFIRMATIONS}, reorg window {REORG_WINDOW}{', QUICK' if k > 1 else ''}"
    )
    print()
    header = (
        f"{'scenario':<9}{'blocks':>15}{'events':>17}{'build s':>9}{'index s':>9}"
        f"{'drain s':>9}{'blocks/s':>10}{'events/s':>10}{'ev/s no drain':>15}  target"
    )
    print(header)
    for name, r in results.items():
        target = "≥ 5,000 blocks/s" if name == "sparse" else "≥ 20,000 events/s"
        print(
            f"{name:<9}{r['blocks']:>7,}/{r['chain_blocks']:<7,}{r['events']:>8,}/"
            f"{r['chain_events']:<8,}{r['build_s']:>9}{r['index_s']:>9}"
            f"{r['drain_s']:>9}{r['blocks_per_s']:>10,}{r['events_per_s']:>10,}"
            f"{r['events_per_s_without_drain']:>15,}  {target}"
        )
    dense = results["dense"]
    floor_rate = dense.get("floor_fetch_decode_events_per_s")
    if floor_rate:
        print(
            f"floor: the dense chain fetched ({FLOOR_RANGE} blocks per eth_getLogs) and decoded, "
            f"nothing stored: {floor_rate:,} events/s "
            f"(node + HTTP + JSON {dense['floor_fetch_us_per_event']} µs/event, "
            f"parse + decode {dense['floor_decode_us_per_event']} µs/event)"
        )
    print()
    print("blocks, events: indexed / on the chain (less when the --budget-s ran out first).")
    print("drain = the outbox sending every credit to the engine (windows of journaled commands).")
    print("2 cores shared with other work: figures are indicative.")
    out = {
        "machine": m,
        "quick": bool(args.quick),
        "sparse_blocks_per_s": results["sparse"]["blocks_per_s"],
        "dense_events_per_s": results["dense"]["events_per_s"],
        "floor_dense_fetch_decode_events_per_s": floor_rate,
        "targets": TARGETS,
        "scenarios": results,
    }
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
