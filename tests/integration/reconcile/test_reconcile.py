"""`hybridex reconcile` against a running dev stack on anvil, after the demo's round trip:
clean, then each injected discrepancy reported with its kind and amounts."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.chain.deploy import Sender
from backend.config import DEV_PRIVATE_KEYS, dev_engine_key
from backend.db.models import Balance, SettlementBatch
from backend.db.session import make_engine, session_factory, unit_of_work
from backend.devstack.chain import dev_accounts
from backend.devstack.stack import DEV_JOURNAL_DIR
from backend.engine.auth import Role
from backend.engine.tcp_client import TcpEngineClient
from backend.matching.commands import Command, Credit, Debit
from tests.integration.e2e.test_round_trip import DevStack, _env

pytestmark = pytest.mark.integration

DEV_ENGINE_SOCKET = DEV_JOURNAL_DIR / "engine.sock"  # relative to the stack's working directory
SELLER_KEY = DEV_PRIVATE_KEYS[1]  # the demo's seller: ends with USDC inside the Exchange
ADMIN_TOKEN = "operator-only-" + "x" * 24


def _admin_report(stack: DevStack, after_id: int = 0) -> dict[str, Any]:
    """The stack's own periodic reconciliation, as the operator endpoint serves it: the first
    one that ran after `after_id` (its `runAt` order)."""
    url = f"{stack.api}/v1/admin/reconciliation"
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        if answer.status_code == 200 and answer.json()["runId"] > after_id:
            body: dict[str, Any] = answer.json()
            return body
        assert answer.status_code in (200, 404), answer.text
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.3)


@pytest.fixture
def external_anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


def _reconcile(
    tmp_path: Path, stack: DevStack, exchange: str, database_url: str
) -> tuple[int, dict[str, Any]]:
    env = _env(
        tmp_path,
        stack.api_port,
        HYBRIDEX_DATABASE_URL=database_url,
        HYBRIDEX_RPC_URL=stack.rpc,
        HYBRIDEX_EXCHANGE_ADDRESS=exchange,
        HYBRIDEX_FEE_RECIPIENT=dev_accounts(1)[0],
        HYBRIDEX_MODE="dev",  # the dev stack's well-known accounts (and engine keys)
        HYBRIDEX_ENGINE_SOCKET=str(DEV_ENGINE_SOCKET),  # the dev stack's engine port
    )
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "reconcile", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert result.stdout.startswith("{"), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _engine_submit(tmp_path: Path, command: Command) -> int:
    """Submit straight to the dev stack's engine port as the indexer role (what a compromised
    or buggy indexer could do); returns the command's seq."""

    async def go() -> int:
        key = dev_engine_key(Role.INDEXER.value).encode()
        client = TcpEngineClient(tmp_path / DEV_ENGINE_SOCKET, role=Role.INDEXER, key=key)
        try:
            return (await client.submit(command, timeout=10)).seq
        finally:
            await client.close()

    return asyncio.run(go())


def _exchange_of(stack: DevStack) -> str:
    found = re.search(r"Exchange  (0x[0-9a-fA-F]{40})", stack.banner)
    assert found
    return found.group(1)


def _until_block(
    tmp_path: Path, stack: DevStack, exchange: str, database_url: str, block: int
) -> dict[str, Any]:
    """The first report read at or above `block` (the indexer confirms as blocks come)."""
    deadline = time.monotonic() + 60
    while True:
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        if report["block"] >= block or time.monotonic() > deadline:
            return {"exit": code, **report}
        time.sleep(0.5)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dev.db'}"
    url: str = request.getfixturevalue("db_url")
    return url


def test_round_trip_reconciles_then_each_injected_fault_is_reported(
    tmp_path: Path, external_anvil: Anvil, database_url: str
) -> None:
    stack = DevStack(
        tmp_path,
        external_anvil.port,
        HYBRIDEX_RPC_URL=external_anvil.url,
        HYBRIDEX_DATABASE_URL=database_url,
        HYBRIDEX_RECONCILE_INTERVAL_S="0.5",
        HYBRIDEX_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        demo = stack.demo(tmp_path)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        found = re.search(r"Exchange  (0x[0-9a-fA-F]{40})", stack.banner)
        usdc_found = re.search(r"USDC\s+(0x[0-9a-fA-F]{40})", stack.banner)
        assert found
        assert usdc_found
        exchange, usdc_address = found.group(1), Web3.to_checksum_address(usdc_found.group(1))

        # Straight after the demo (its withdrawal may still be in flight): nothing disagrees.
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        assert report["discrepancies"] == [], report
        assert code == 0
        assert report["accounts"] >= 3  # buyer, seller, fee recipient
        # The live engine's ledger was read and every balance equals the database's.
        assert report["engine"]["skipped"] is None, report["engine"]
        assert report["engine"]["compared"] >= 6, report["engine"]
        held = {t: int(v["held"]) for t, v in report["tokens"].items()}
        assert held[usdc_address] > 0
        assert all(v["unattributed"] == "0" for v in report["tokens"].values())

        # The stack's periodic run agrees, behind the operator's token only.
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(f"{stack.api}/v1/admin/reconciliation", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "ADMIN_UNAUTHORIZED"
        periodic = _admin_report(stack)
        assert periodic["clean"] is True
        assert periodic["discrepancies"] == []
        assert periodic["engine"]["skipped"] is None  # the dev stack's own engine

        # Tokens sent to the contract without a deposit: unattributed, not a ledger error.
        w3 = Web3(Web3.HTTPProvider(stack.rpc))
        usdc = w3.eth.contract(address=usdc_address, abi=load("DemoToken").abi)
        seller = Sender.from_key(w3, SELLER_KEY)
        seller.transact(usdc.functions.transfer(Web3.to_checksum_address(exchange), 12_345))
        report = _until_block(tmp_path, stack, exchange, database_url, int(w3.eth.block_number))
        assert report["exit"] == 0, report
        assert report["discrepancies"] == []
        assert report["tokens"][usdc_address]["unattributed"] == "12345"

        # An engine credit without a deposit (straight to the engine port): the engine and the
        # database agree, the chain does not, by exactly that amount.
        _engine_submit(tmp_path, Credit(0, 0, seller.address, usdc_address, 1_000))
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        assert code == 1
        (d,) = report["discrepancies"]
        assert d["kind"] == "balance_mismatch"
        assert (d["trader"], d["token"]) == (seller.address, usdc_address)
        assert int(d["difference"]) == 1_000
        _engine_submit(tmp_path, Debit(0, 0, seller.address, usdc_address, 1_000, None))
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        assert (code, report["discrepancies"]) == (0, [])

        # A ledger row changed behind the engine's back: that trader and token, those amounts,
        # against the chain and against the live engine.
        engine = make_engine(database_url)
        with unit_of_work(session_factory(engine)) as session:
            row = session.get(Balance, (seller.address, usdc_address))
            assert row is not None
            total = row.total
            row.total = total + 7
        engine.dispose()
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        assert code == 1
        d, e = sorted(report["discrepancies"], key=lambda x: str(x["kind"]))
        assert (d["kind"], e["kind"]) == ("balance_mismatch", "engine_mismatch")
        assert (e["trader"], e["token"]) == (seller.address, usdc_address)
        assert (int(e["engine"]), int(e["database"]), int(e["difference"])) == (total, total + 7, 7)
        assert (d["trader"], d["token"]) == (seller.address, usdc_address)
        assert int(d["ledger"]) == int(total) + 7
        assert int(d["difference"]) == 7
        assert int(d["expected"]) == int(total)
        periodic = _admin_report(stack, after_id=periodic["runId"])
        while periodic["block"] < report["block"]:
            periodic = _admin_report(stack, after_id=periodic["runId"])
        assert periodic["clean"] is False
        assert sorted(x["kind"] for x in periodic["discrepancies"]) == [
            "balance_mismatch",
            "engine_mismatch",
        ]

        # The worker's record of the settled batch no longer matches what the chain applied.
        engine = make_engine(database_url)
        with unit_of_work(session_factory(engine)) as session:
            batch = session.get(SettlementBatch, 1)
            assert batch is not None
            assert batch.fills_hash is not None
            batch.fills_hash = bytes(32)
        engine.dispose()
        code, report = _reconcile(tmp_path, stack, exchange, database_url)
        assert code == 1
        kinds = sorted(x["kind"] for x in report["discrepancies"])
        assert kinds == ["balance_mismatch", "batch_mismatch", "engine_mismatch"]
        (b,) = [x for x in report["discrepancies"] if x["kind"] == "batch_mismatch"]
        assert b["batchId"] == 1
        assert b["recordedFillsHash"] == "0x" + "00" * 32
    finally:
        stack.stop()


def test_reconcile_bench_reads_every_account_and_finds_them_balanced() -> None:
    bench = Path(__file__).resolve().parents[3] / "bench" / "reconcile.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--accounts", "300", "--json"],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["accounts"] == 301  # and the bench itself exits non-zero unless clean
    assert result["accounts_per_s"] > 0
    assert result["floor_accounts_per_s"] > 0
