"""The whole dev stack (indexer, settlement, withdrawals, reconciliation) behind a JSON-RPC
proxy that injects timeouts, 429/5xx answers, JSON-RPC errors and truncated bodies, while the
demo trades and withdraws: nothing is lost, nothing settles twice, and the books balance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from web3 import Web3

from backend.chain.anvil import Anvil
from backend.chain.artifacts import load
from backend.db.models import (
    Fill,
    FillSettlement,
    ReconciliationRun,
    SettlementBatch,
    WithdrawalSettlement,
)
from backend.db.session import make_engine
from backend.domain.types import BatchStatus, FillStatus, WithdrawalStatus
from tests.integration.e2e.test_round_trip import DevStack
from tests.integration.indexer.faulty_proxy import FAULTS, FaultyProxy
from tests.integration.reconcile.test_reconcile import _exchange_of, _reconcile

pytestmark = pytest.mark.integration


def test_rpc_faults_lose_nothing_double_nothing_and_reconcile_clean(
    tmp_path: Path, node: Anvil
) -> None:
    database_url = f"sqlite:///{tmp_path / 'dev.db'}"
    with FaultyProxy(node.url, fault_rate=0.0, seed=11, timeout_delay_s=1.5) as proxy:
        stack = DevStack(
            tmp_path,
            node.port,  # the demo talks to the node directly; the stack only through the proxy
            HYBRIDEX_RPC_URL=proxy.url,
            HYBRIDEX_RPC_TIMEOUT_S="1.0",
            HYBRIDEX_DATABASE_URL=database_url,
            HYBRIDEX_RECONCILE_INTERVAL_S="0.2",  # the stack reconciles all along the demo
        )
        try:
            proxy.fault_rate = 0.2  # deployed cleanly; from here on, one request in five fails
            demo = stack.demo(tmp_path)
            assert demo.returncode == 0, demo.stdout + demo.stderr
            proxy.fault_rate = 0.0
            assert set(FAULTS) <= set(proxy.injected), proxy.injected
            exchange = _exchange_of(stack)
            code, report = _reconcile(tmp_path, stack, exchange, database_url)
            assert report["discrepancies"] == [], report
            assert code == 0
        finally:
            stack.stop()

    w3 = Web3(Web3.HTTPProvider(node.url))
    on_chain = w3.eth.contract(address=Web3.to_checksum_address(exchange), abi=load("Exchange").abi)
    engine = make_engine(database_url)
    with engine.connect() as db:
        settled = db.scalar(
            select(func.count()).where(SettlementBatch.status == BatchStatus.SETTLED)
        )
        fills = db.scalar(select(func.count()).select_from(Fill))
        fills_settled = db.scalar(
            select(func.count()).where(FillSettlement.status == FillStatus.SETTLED)
        )
        withdrawals = db.execute(select(WithdrawalSettlement.status)).scalars().all()
        runs = db.execute(
            select(ReconciliationRun.clean, ReconciliationRun.report).order_by(ReconciliationRun.id)
        ).all()
    engine.dispose()
    # While deposits, fills and the withdrawal were in flight, no run raised a false alarm.
    assert len(runs) >= 5
    assert [r.report for r in runs if not r.clean] == []
    in_flight = [json.loads(r.report)["inFlight"] for r in runs]
    assert any(f["fills"] or f["chainEffects"] for f in in_flight), in_flight
    # Every batch applied exactly once (batch ids are sequential on chain), every fill settled.
    assert on_chain.functions.lastBatchId().call() == settled >= 1
    assert fills_settled == fills >= 1
    assert withdrawals == [WithdrawalStatus.CONFIRMED]
