"""Reconciliation of many accounts: `hybridex reconcile`'s code against its own reads alone.

A fresh PostgreSQL database holds N traders' ledger balances; anvil holds the same balances
inside a real Exchange (written straight into its storage with `anvil_setStorageAt`, so the
set-up takes seconds, not N deposits), and the token's balance of the Exchange covers them.
The run must find zero discrepancies. The floor is what no reconciliation can skip: one read of
the ledger rows and one `balanceOf` per account at the block, batched the same way.

    .venv/bin/python bench/reconcile.py            # 100k accounts
    .venv/bin/python bench/reconcile.py --quick    # 2k accounts (smoke)
    .venv/bin/python bench/reconcile.py --json     # table, then one JSON object last

Needs PostgreSQL (HYBRIDEX_BENCH_PG_ADMIN_URL, default the local server as `postgres`); the
database it creates is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import insert, select
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _db import fresh_database
from _machine import machine, print_machine

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS
from backend.db.models import Balance, EngineCursor, IndexerCursor, Market, Token
from backend.db.session import make_engine
from backend.devstack.chain import deploy_demo_tokens, deploy_dev_exchange
from backend.reconcile.chain import ChainReader
from backend.reconcile.reads import CONFIRMED_CURSOR, snapshot
from backend.reconcile.run import reconcile
from indexer.rpc import RpcClient

SET_BATCH = 1_000


def _word(value: int | str) -> bytes:
    if isinstance(value, str):
        return bytes(12) + bytes.fromhex(value.removeprefix("0x"))
    return value.to_bytes(32, "big")


def find_slot(rpc: RpcClient, contract: str, key_of: object, want: int) -> int:
    """The declaration slot of a mapping, found by where a known value sits (the layout of
    the compiled contract, not a guess)."""
    assert callable(key_of)
    for slot in range(64):
        got = rpc.call("eth_getStorageAt", [contract, "0x" + key_of(slot).hex(), "latest"])
        if int(got, 16) == want:
            return slot
    raise RuntimeError(f"no mapping slot of {contract} holds {want}")


def setup(node: Anvil, accounts: int, db_url: str) -> tuple[RpcClient, str, int]:
    w3 = Web3(Web3.HTTPProvider(node.url))
    rpc = RpcClient(node.url, timeout_s=60)
    exchange = deploy_dev_exchange(w3)
    demo = {t.spec.symbol: t for t in deploy_demo_tokens(w3, fund_accounts=1)}
    usdc, weth = demo["USDC"], demo["WETH"]
    me = Sender.from_key(w3, DEV_PRIVATE_KEYS[0])
    token = w3.eth.contract(address=usdc.address, abi=load("DemoToken").abi)
    ex = w3.eth.contract(address=Web3.to_checksum_address(exchange), abi=load("Exchange").abi)
    seed = 1_000
    me.transact(token.functions.approve(ex.address, seed))
    me.transact(ex.functions.deposit(usdc.address, seed))

    def balance_key(slot: int, trader: str = me.address) -> bytes:
        return keccak(_word(usdc.address) + keccak(_word(trader) + _word(slot)))

    def held_key(slot: int) -> bytes:
        return keccak(_word(exchange) + _word(slot))

    exchange_slot = find_slot(rpc, exchange, balance_key, seed)
    token_slot = find_slot(rpc, usdc.address, held_key, seed)

    rng = random.Random(7)
    traders = [to_checksum_address(keccak(b"trader%d" % i)[12:]) for i in range(accounts)]
    amounts = [rng.randrange(1, 10**12) for _ in traders]
    writes = [
        [exchange, "0x" + balance_key(exchange_slot, t).hex(), "0x" + _word(a).hex()]
        for t, a in zip(traders, amounts, strict=True)
    ]
    writes.append(
        [usdc.address, "0x" + held_key(token_slot).hex(), "0x" + _word(seed + sum(amounts)).hex()]
    )
    for i in range(0, len(writes), SET_BATCH):
        rpc.batch("anvil_setStorageAt", writes[i : i + SET_BATCH])
    rpc.call("anvil_mine", ["0x1"])
    block = int(rpc.call("eth_blockNumber"), 16)

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            insert(Token),
            [{"address": t.address, "symbol": t.spec.symbol, "decimals": t.spec.decimals}
             for t in (usdc, weth)],
        )  # fmt: skip
        conn.execute(
            insert(Market),
            [{"id": "WETH-USDC", "base_token": weth.address, "quote_token": usdc.address,
              "tick_size": 1, "lot_size": 1, "min_amount": 1, "maker_fee_bps": 0,
              "taker_fee_bps": 0}],
        )  # fmt: skip
        rows = [
            {"trader": t, "token": usdc.address, "total": a, "locked": 0, "updated_seq": 1}
            for t, a in [(me.address, seed), *zip(traders, amounts, strict=True)]
        ]
        for i in range(0, len(rows), 10_000):
            conn.execute(insert(Balance), rows[i : i + 10_000])
        conn.execute(insert(EngineCursor), [{"name": "persister", "seq": 1}])
        conn.execute(
            insert(IndexerCursor),
            [{"name": CONFIRMED_CURSOR, "chain_id": 31337, "block_number": block,
              "block_hash": bytes(32)}],
        )  # fmt: skip
    engine.dispose()
    return rpc, exchange, block


def floor(db_url: str, reader: ChainReader, block: int) -> float:
    """Seconds for the reads alone: every ledger row, then every balance at the block."""
    engine = make_engine(db_url)
    started = time.perf_counter()
    with snapshot(engine) as session:
        pairs = [(b.trader, b.token) for b in session.scalars(select(Balance))]
    reader.internal_balances(pairs, block)
    took = time.perf_counter() - started
    engine.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2k accounts (smoke)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    accounts = 2_000 if args.quick else args.accounts
    print_machine()
    with fresh_database("reconcile") as db_url, Anvil() as node:
        started = time.perf_counter()
        rpc, exchange, block = setup(node, accounts, db_url)
        print(f"    setup: {accounts:,} accounts in {time.perf_counter() - started:.1f} s")
        reader = ChainReader(rpc, exchange)
        floor_s = floor(db_url, reader, block)
        engine = make_engine(db_url)
        started = time.perf_counter()
        report = reconcile(engine, reader, fallback_fee_recipient=None)
        took = time.perf_counter() - started
        engine.dispose()
        rpc.close()
    if report.discrepancies or report.accounts != accounts + 1:
        raise SystemExit(f"reconciliation is not clean: {report.as_json()}")
    result = {
        "accounts": report.accounts,
        "reconcile_s": round(took, 3),
        "accounts_per_s": round(report.accounts / took),
        "floor_s": round(floor_s, 3),
        "floor_accounts_per_s": round(report.accounts / floor_s),
        "ratio_to_floor": round(floor_s / took, 3),
        "minutes_per_100k": round(took / report.accounts * 100_000 / 60, 2),
        "machine": machine(),
    }
    print(
        f"reconcile: {report.accounts:,} accounts in {took:.2f} s ({result['accounts_per_s']:,}/s)"
    )
    print(f"    floor: {floor_s:.2f} s ({result['floor_accounts_per_s']:,}/s), reads alone")
    print(
        f"    ratio: {result['ratio_to_floor']}× the floor; {result['minutes_per_100k']} min/100k"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
